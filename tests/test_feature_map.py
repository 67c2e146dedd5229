import pytest
import torch
from torch_geometric.loader import DataLoader

import graphs


@pytest.mark.parametrize('shape', [(1, 3, 1, 1), (2, 4, 1, 5), (3, 2, 6, 1), (2, 5, 4, 7)])
def test_round_trip_is_exact(shape):
    x = torch.randn(*shape)
    batch = graphs.feature_map_to_batch(x)
    b, c, h, w = shape
    assert batch.x.shape == (b * h * w, c)
    assert batch.num_graphs == b
    assert torch.equal(batch.batch, torch.arange(b).repeat_interleave(h * w))
    assert torch.equal(graphs.batch_to_feature_map(batch), x)
    # node (b, row, col) holds x[b, :, row, col]
    assert torch.equal(batch.x[(b - 1) * h * w + (h - 1) * w + (w - 1)], x[b - 1, :, h - 1, w - 1])


def test_batch_edges_are_per_image_grids():
    x = torch.randn(3, 2, 4, 5)
    batch = graphs.feature_map_to_batch(x)
    single = graphs.grid_graph(4, 5)
    assert batch.edge_index.size(1) == 3 * single.edge_index.size(1)
    graph_of = batch.batch
    assert torch.equal(graph_of[batch.edge_index[0]], graph_of[batch.edge_index[1]])
    second = batch.get_example(1)
    assert torch.equal(second.edge_index, single.edge_index)
    assert torch.equal(second.x, graphs.feature_map_to_nodes(x)[1])


def test_layer_output_back_to_map():
    x = torch.randn(2, 3, 4, 4)
    batch = graphs.feature_map_to_batch(x)
    out = batch.x * 2
    assert torch.equal(graphs.batch_to_feature_map(batch, out), 2 * x)


def test_static_form_shares_one_edge_index():
    x = torch.randn(2, 3, 4, 5)
    nodes = graphs.feature_map_to_nodes(x)
    assert nodes.shape == (2, 20, 3)
    assert torch.equal(nodes[1, 6], x[1, :, 1, 1])
    assert torch.equal(graphs.nodes_to_feature_map(nodes, 4, 5), x)


def test_loader_collates_grid_sizes():
    maps = [graphs.feature_map_to_batch(torch.randn(1, 2, 3, 3)).get_example(0) for _ in range(4)]
    batch = next(iter(DataLoader(maps, batch_size=4)))
    assert batch.grid_size.tolist() == [[3, 3]] * 4
    assert graphs.batch_to_feature_map(batch).shape == (4, 2, 3, 3)


def test_mixed_sizes_cannot_stack():
    a = graphs.feature_map_to_batch(torch.randn(1, 2, 3, 3)).get_example(0)
    b = graphs.feature_map_to_batch(torch.randn(1, 2, 4, 3)).get_example(0)
    batch = next(iter(DataLoader([a, b], batch_size=2)))
    with pytest.raises(ValueError, match='different sizes'):
        graphs.batch_to_feature_map(batch)


@pytest.mark.parametrize('bad,error', [
    (torch.randn(3, 4, 4), ValueError),
    (torch.zeros(1, 2, 3, 3, dtype=torch.long), TypeError),
    ([[1.0]], TypeError),
])
def test_feature_map_bad_input(bad, error):
    with pytest.raises(error, match="'x'"):
        graphs.feature_map_to_batch(bad)


def test_batch_to_feature_map_bad_input():
    batch = graphs.feature_map_to_batch(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="'x' must have shape"):
        graphs.batch_to_feature_map(batch, torch.randn(31, 3))
    g = graphs.point_cloud_to_data(torch.randn(5, 2), k=2)
    with pytest.raises(ValueError, match='grid_size'):
        graphs.batch_to_feature_map(g)
    with pytest.raises(ValueError, match="'x' must have shape"):
        graphs.nodes_to_feature_map(torch.randn(2, 7, 3), 2, 3)

import pytest
import torch

import graphs


def test_grid_round_trip_with_positions_and_values():
    g = graphs.grid_graph(3, 4)
    values = torch.arange(g.edge_index.size(1), dtype=torch.float)
    G = graphs.to_networkx(g, edge_attrs=['edge_attr'], edge_values={'weight': values})
    assert G.number_of_nodes() == 12 and G.number_of_edges() == g.edge_index.size(1)
    assert G.nodes[5]['pos'] == (1.0, 1.0)
    src, dst = g.edge_index[:, 10].tolist()
    assert G.edges[src, dst]['weight'] == 10.0
    assert G.graph['grid_size'] == [[3, 4]]
    back = graphs.from_networkx(G)
    order = torch.argsort(back.edge_index[1] * 12 + back.edge_index[0])
    assert torch.equal(back.edge_index[:, order], g.edge_index)
    assert torch.equal(back.pos, g.pos)
    assert torch.equal(back.edge_attr[order], g.edge_attr)
    assert torch.equal(back.weight[order], values)
    assert torch.equal(back.grid_size, g.grid_size)


def test_knn_round_trip():
    data = graphs.point_cloud_to_data(torch.rand(20, 3), torch.randn(20, 2), k=3)
    G = graphs.to_networkx(data, node_attrs=['x'])
    back = graphs.from_networkx(G)
    as_set = lambda e: set(map(tuple, e.t().tolist()))  # noqa: E731
    assert as_set(back.edge_index) == as_set(data.edge_index)
    assert torch.allclose(back.x, data.x) and torch.allclose(back.pos, data.pos)


def test_edge_values_given_with_their_own_order():
    g = graphs.grid_graph(3, 3)
    perm = torch.randperm(g.edge_index.size(1))
    values = torch.rand(g.edge_index.size(1))
    G = graphs.to_networkx(g, edge_values={'alpha': (g.edge_index[:, perm], values[perm])})
    for e, (s, t) in enumerate(g.edge_index.t().tolist()):
        assert G.edges[s, t]['alpha'] == pytest.approx(float(values[e]))
    with pytest.raises(ValueError, match='misses some edges'):
        graphs.to_networkx(g, edge_values={'alpha': (g.edge_index[:, :5], values[:5])})
    with pytest.raises(ValueError, match='first dimension'):
        graphs.to_networkx(g, edge_values={'alpha': values[:5]})


@pytest.mark.parametrize('hops', [0, 1, 2, 3])
@pytest.mark.parametrize('pixel', [(4, 4), (0, 0), (1, 7)])
def test_receptive_field_is_square_or_diamond(hops, pixel):
    h, w = 9, 9
    rows = torch.arange(h).view(-1, 1)
    cols = torch.arange(w).view(1, -1)
    dr, dc = (rows - pixel[0]).abs(), (cols - pixel[1]).abs()
    assert torch.equal(graphs.receptive_field(h, w, pixel, hops), torch.maximum(dr, dc) <= hops)
    assert torch.equal(graphs.receptive_field(h, w, pixel, hops, connectivity=4),
                       dr + dc <= hops)


def test_receptive_field_bad_pixel():
    with pytest.raises(ValueError, match="'pixel'"):
        graphs.receptive_field(3, 3, (3, 0), 1)

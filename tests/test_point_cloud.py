import pytest
import torch

import graphs


def test_single_cloud_knn_data():
    pos = torch.rand(30, 3)
    x = torch.randn(30, 5)
    data = graphs.point_cloud_to_data(pos, x, k=4)
    assert data.num_nodes == 30 and torch.equal(data.x, x)
    assert torch.equal(data.edge_index, graphs.knn_graph(pos, 4))
    assert torch.equal(data.edge_attr, pos[data.edge_index[0]] - pos[data.edge_index[1]])


def test_batched_clouds_with_an_empty_one():
    pos = torch.rand(50, 2)
    batch = torch.tensor([0] * 20 + [2] * 30)
    data = graphs.point_cloud_to_data(pos, k=5, batch=batch)
    assert data.num_graphs == 3
    parts = data.to_data_list()
    assert [p.num_nodes for p in parts] == [20, 0, 30]
    assert torch.equal(parts[2].edge_index, graphs.knn_graph(pos[20:], 5))
    assert torch.equal(data.edge_index, graphs.knn_graph(pos, 5, batch))


def test_radius_cloud_and_flow():
    pos = torch.rand(40, 3)
    batch = torch.tensor([0] * 15 + [1] * 25)
    data = graphs.point_cloud_to_data(pos, r=0.4, batch=batch, flow='target_to_source',
                                      max_num_neighbors=8)
    assert torch.equal(data.edge_index,
                       graphs.radius_graph(pos, 0.4, batch, max_num_neighbors=8,
                                           flow='target_to_source'))
    assert torch.equal(data.edge_attr, pos[data.edge_index[0]] - pos[data.edge_index[1]])


def test_high_dimensional_points():
    pos = torch.rand(20, 7)
    assert graphs.point_cloud_to_data(pos, k=3).edge_attr.shape == (60, 7)


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(), ValueError, 'exactly one'),
    (dict(k=3, r=1.0), ValueError, 'exactly one'),
    (dict(k=3, x=torch.rand(9, 2)), ValueError, "'x' must have shape"),
    (dict(k=-1), ValueError, "'k'"),
    (dict(r=0.0), ValueError, "'r'"),
])
def test_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        graphs.point_cloud_to_data(torch.rand(10, 3), **kwargs)

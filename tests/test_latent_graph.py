import pytest
import torch
from torch_geometric.data import Batch, Data

from graphs import LatentGraph, latent_edge_index, latent_graph, latent_to_networkx


def _batch_vector(sizes):
    return torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))


def test_complete_single_graph_counts_and_order():
    g = latent_graph(5, 3)
    assert isinstance(g, LatentGraph)
    assert g.edge_index.shape == (2, 15)
    assert g.num_nodes == 5 and g.num_latent_nodes == 3 and g.latent_dim == 3
    assert torch.equal(g.edge_index[0], torch.arange(5).repeat_interleave(3))
    assert torch.equal(g.edge_index[1], torch.arange(3).repeat(5))
    assert torch.equal(g.latent_batch, torch.zeros(3, dtype=torch.long))
    assert 'edge_weight' not in g


def test_complete_batch_vector_stays_within_graphs():
    sizes = [3, 0, 4, 2]
    batch = _batch_vector(sizes)
    d = 4
    g = latent_graph(batch, d)
    assert g.edge_index.size(1) == sum(sizes) * d
    assert g.num_latent_nodes == len(sizes) * d
    row, col = g.edge_index
    assert torch.equal(col // d, batch[row])
    # every visible node reaches each latent node of its graph exactly once
    deg_v = torch.bincount(row, minlength=batch.numel())
    assert torch.all(deg_v == d)
    deg_l = torch.bincount(col, minlength=len(sizes) * d)
    assert torch.equal(deg_l, torch.tensor(sizes).repeat_interleave(d))
    assert torch.equal(g.latent_batch, torch.arange(4).repeat_interleave(d))


def test_num_graphs_adds_trailing_empty_graphs():
    g = latent_graph(torch.tensor([0, 0, 1]), 2, num_graphs=4)
    assert g.num_latent_nodes == 8
    assert g.edge_index.size(1) == 6
    with pytest.raises(ValueError, match='num_graphs'):
        latent_graph(torch.tensor([0, 0, 3]), 2, num_graphs=2)


def test_batching_increments_latent_indices():
    torch.manual_seed(0)
    sizes = [3, 1, 4]
    d = 3
    parts = [latent_graph(n, d) for n in sizes]
    batched = Batch.from_data_list(parts)
    direct = latent_graph(_batch_vector(sizes), d)
    assert torch.equal(batched.edge_index, direct.edge_index)
    assert torch.equal(batched.latent_batch, direct.latent_batch)
    assert int(batched.num_latent_nodes.sum()) == direct.num_latent_nodes
    assert batched.num_nodes == direct.num_nodes

    # sparse graphs with weights batch the same way
    affs = [torch.rand(n, d) for n in sizes]
    parts = [latent_graph(n, d, affinity=a, top_m=2) for n, a in zip(sizes, affs)]
    batched = Batch.from_data_list(parts)
    direct = latent_graph(_batch_vector(sizes), d, affinity=torch.cat(affs), top_m=2)
    assert torch.equal(batched.edge_index, direct.edge_index)
    assert torch.equal(batched.edge_weight, direct.edge_weight)
    # and batches of already-batched latent graphs nest
    nested = Batch.from_data_list([latent_graph(_batch_vector([2, 1]), d),
                                   latent_graph(_batch_vector([1, 3]), d)])
    flat = latent_graph(_batch_vector([2, 1, 1, 3]), d)
    assert torch.equal(nested.edge_index, flat.edge_index)
    assert torch.equal(nested.latent_batch, flat.latent_batch)


def test_data_input_uses_its_batch():
    data = Batch.from_data_list([Data(x=torch.randn(2, 1)), Data(x=torch.randn(5, 1))])
    g = latent_graph(data, 2)
    assert torch.equal(g.edge_index, latent_graph(data.batch, 2).edge_index)
    assert latent_graph(Data(num_nodes=4), 2).edge_index.size(1) == 8


@pytest.mark.parametrize('m', [1, 2, 4])
def test_top_m_matches_brute_force(m):
    torch.manual_seed(1)
    sizes = [4, 0, 3]
    batch = _batch_vector(sizes)
    d = 5
    aff = torch.randn(batch.numel(), d)
    g = latent_graph(batch, d, affinity=aff, top_m=m)
    assert g.edge_index.size(1) == batch.numel() * m
    expected_edges, expected_w = [], []
    for i in range(batch.numel()):
        order = sorted(range(d), key=lambda k: -float(aff[i, k]))[:m]
        for k in sorted(order):
            expected_edges.append((i, int(batch[i]) * d + k))
            expected_w.append(float(aff[i, k]))
    assert g.edge_index.t().tolist() == [list(e) for e in expected_edges]
    assert torch.allclose(g.edge_weight, torch.tensor(expected_w))


def test_top_m_equal_to_d_is_the_complete_graph():
    aff = torch.rand(6, 4)
    batch = torch.tensor([0, 0, 1, 1, 1, 2])
    full = latent_graph(batch, 4, affinity=aff)
    top = latent_graph(batch, 4, affinity=aff, top_m=4)
    assert torch.equal(full.edge_index, top.edge_index)
    assert torch.equal(full.edge_weight, aff.reshape(-1))
    assert torch.equal(top.edge_weight, aff.reshape(-1))
    assert torch.equal(latent_graph(batch, 4).edge_index, full.edge_index)


def test_empty_graph():
    g = latent_graph(0, 3)
    assert g.edge_index.shape == (2, 0) and g.num_latent_nodes == 3
    ei, w = latent_edge_index(None, 0, 3, affinity=torch.zeros(0, 3), top_m=2)
    assert ei.shape == (2, 0) and w.shape == (0,)


def test_networkx_export():
    aff = torch.rand(3, 2)
    g = latent_graph(3, 2, affinity=aff, top_m=1)
    G = latent_to_networkx(g)
    assert G.number_of_nodes() == 5 and G.number_of_edges() == 3
    for (i, k), w in zip(g.edge_index.t().tolist(), g.edge_weight.tolist()):
        assert G.edges[('visible', i), ('latent', k)]['weight'] == pytest.approx(w)
    assert G.nodes[('latent', 1)]['bipartite'] == 1


def test_bad_input():
    with pytest.raises(ValueError, match='num_latent'):
        latent_graph(3, 0)
    with pytest.raises(TypeError, match='num_latent'):
        latent_graph(3, 2.0)
    with pytest.raises(TypeError, match='nodes'):
        latent_graph(3.0, 2)
    with pytest.raises(ValueError, match='nodes'):
        latent_graph(torch.zeros(2, 2, dtype=torch.long), 2)
    with pytest.raises(ValueError, match='sorted'):
        latent_graph(torch.tensor([1, 0]), 2)
    with pytest.raises(TypeError, match='integer'):
        latent_graph(torch.tensor([0.0, 1.0]), 2)
    with pytest.raises(ValueError, match='affinity'):
        latent_graph(3, 2, top_m=1)
    with pytest.raises(ValueError, match=r"'affinity' must have shape \(3, 2\)"):
        latent_graph(3, 2, affinity=torch.rand(3, 3))
    with pytest.raises(TypeError, match='affinity'):
        latent_graph(3, 2, affinity=torch.ones(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match='NaN'):
        latent_graph(2, 2, affinity=torch.tensor([[0.0, float('nan')], [1.0, 2.0]]))
    with pytest.raises(ValueError, match='top_m'):
        latent_graph(3, 2, affinity=torch.rand(3, 2), top_m=0)


def test_collated_latent_graphs_export_and_batch_again():
    import graphs
    from torch_geometric.data import Batch
    a = graphs.latent_graph(3, 2)
    b = graphs.latent_graph(4, 3)
    batch = Batch.from_data_list([a, b])
    G = graphs.latent_to_networkx(batch)
    assert G.number_of_nodes() == 7 + 5 and G.number_of_edges() == 3 * 2 + 4 * 3
    # a collated batch can be collated again with a fresh graph
    again = Batch.from_data_list([batch.to_data_list()[1], a])
    assert again.edge_index[1].max().item() == 3 + 2 - 1
    assert again.latent_batch.tolist() == [0, 0, 0, 1, 1]

"""Graphs a user can build that the kernels once got wrong or crashed on (issue 23).

Each test reproduces one finding and compares against an independent reference
(:mod:`lga_reference`'s loops over edges, or the message-passing path) in float64:
values, attention weights and gradients.
"""
import pytest
import torch
from torch_geometric import EdgeIndex
from torch_geometric.nn import GATConv

import graphs
from graphattn import LGA, LatentGNN, LGAConv
from graphattn.neighbor_attention import NeighborWeightedSum
from lga_reference import brute_force, table_edges

DT = torch.float64


def _grads(module, *inputs):
    return [t.grad for t in inputs] + [p.grad for p in module.parameters()]


def _run(module, x, pos, **graph):
    module.zero_grad()
    x = x.clone().requires_grad_()
    pos = pos.clone().requires_grad_()
    out = module(x, pos=pos, **graph)
    (out * torch.arange(out.numel(), dtype=DT).view_as(out).sin()).sum().backward()
    return out, _grads(module, x, pos)


# --- 1. repeated neighbours on the table path ---------------------------------------------

def test_issue_reproducer_repeated_neighbours_train_on_the_table_path():
    torch.manual_seed(0)
    lga = LGA(4, 8, 1, edge_dim=2, edge_encoder='mlp').double()
    x, pos = torch.randn(2, 4, dtype=DT), torch.randn(2, 2, dtype=DT)
    table = torch.tensor([[0, 0, 0, 0], [1, 1, 1, 1]])
    out, grads = _run(lga, x, pos, neighbors=table)
    ref, ref_grads = _run(lga, x, pos, edge_index=table_edges(table))
    torch.testing.assert_close(out, ref)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r)


@pytest.mark.parametrize('score', ['center', 'neighbor', 'pair'])
def test_ball_query_tables_equal_brute_force_with_duplicates_counted(score):
    # PointNet++'s query_ball_point pads a row by repeating its first neighbour;
    # an edge list with duplicate edges gives the same rows through to_neighbor_table.
    torch.manual_seed(1)
    table = torch.tensor([[0, 2, 0, 0], [1, 1, 1, 1], [2, 0, 3, 2], [3, -1, 3, -1]])
    conv = LGAConv(5, 3, 2, heads=2, score=score, edge_encoder='mlp').double()
    x, pos = torch.randn(4, 5, dtype=DT), torch.randn(4, 2, dtype=DT)
    edges = table_edges(table)
    attr = pos[edges[0]] - pos[edges[1]]
    ref, ref_alpha = brute_force(conv, x, x, edges, attr)
    out, (ei, alpha) = conv(x, neighbors=table, pos=pos, return_attention_weights=True)
    torch.testing.assert_close(out, ref)
    assert torch.equal(ei, edges)
    torch.testing.assert_close(alpha, ref_alpha)
    out, grads = _run(conv, x, pos, neighbors=table)
    _, ref_grads = _run(conv, x, pos, edge_index=edges)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r)


@pytest.mark.parametrize('num_nodes, table', [
    (1, [[0, 0, 1]]),                       # a repeated neighbour
    (2, [[2, 1, 1, 1], [1, 1, 2, 1]]),
    (2, [[1, 2, 2, 2], [1, 1, 2, 2]]),      # index M = 2 is padding: repeated padding alone
    (1, [[0, 1, 1], [1, 1, 1]]),            # a row of padding only
])
def test_weighted_sum_kernel_with_repeated_columns_equals_brute_force(num_nodes, table):
    # These tables made torch.sparse.sampled_addmm fail in the CPU backward (found by
    # fuzzing): whether it fails depends on the pattern, so several are pinned here.
    index = torch.tensor(table)
    g = torch.Generator().manual_seed(2)
    alpha = torch.rand(1, *index.shape, generator=g, dtype=DT, requires_grad=True)
    value = torch.randn(1, num_nodes, 3, generator=g, dtype=DT, requires_grad=True)
    out = NeighborWeightedSum.apply(alpha, value, index, 1)
    padded = torch.cat([value, value.new_zeros(1, 1, 3)], dim=1)
    ref = (alpha.unsqueeze(-1) * padded[:, index]).sum(2)
    torch.testing.assert_close(out, ref)
    w = torch.randn(out.shape, generator=g, dtype=DT)
    grads = torch.autograd.grad((out * w).sum(), (alpha, value))
    ref_grads = torch.autograd.grad((ref * w).sum(), (alpha, value))
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want)


# --- 6. source indices of to_neighbor_table ---------------------------------------------------

def test_to_neighbor_table_rejects_sources_beyond_num_nodes():
    with pytest.raises(ValueError, match='source index'):
        graphs.to_neighbor_table(torch.tensor([[7, 1], [0, 1]]), num_nodes=2)
    with pytest.raises(ValueError, match='source index'):
        graphs.to_neighbor_table(torch.tensor([[7, 1], [0, 1]]), size=(3, 2))


def test_to_neighbor_table_counts_nodes_as_pyg_does():
    # A node that only sends still is a node: one row (empty) for it, as maybe_num_nodes.
    table, _ = graphs.to_neighbor_table(torch.tensor([[3, 1], [0, 1]]))
    assert table.tolist() == [[3], [1], [-1], [-1]]
    table, _ = graphs.to_neighbor_table(torch.tensor([[3, 1], [0, 1]]), size=(4, 2))
    assert table.tolist() == [[3], [1]]

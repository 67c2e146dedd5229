"""Sparse adjacency inputs (PyG's adj_t) give the same results as edge_index.

torch.sparse tensors are always available; torch_sparse.SparseTensor is tested
when torch-sparse is installed (``pip install .[sparse]``, the second CI
configuration) and skipped otherwise.
"""
import ast
import pathlib

import pytest
import torch
import torch_geometric.typing as pyg_typing
from torch_geometric import EdgeIndex

import graphs
from graphattn import LGA, LGAConv
from graphattn.adjacency import adjacency_to_edge_index

ROOT = pathlib.Path(__file__).resolve().parents[1]
needs_torch_sparse = pytest.mark.skipif(not pyg_typing.WITH_TORCH_SPARSE,
                                        reason='torch-sparse is not installed')


def _graph(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, 3, generator=g, dtype=torch.float64)
    x = torch.randn(n, 8, generator=g, dtype=torch.float64)
    edge_index = graphs.knn_graph(pos, 5, loop=True)
    edge_attr = torch.randn(edge_index.size(1), 4, generator=g, dtype=torch.float64)
    return pos, x, edge_index, edge_attr


def _coo_adj_t(edge_index, values, n):
    """Transposed adjacency: entry (i, j) is the edge j -> i."""
    size = (n, n) + tuple(values.shape[1:])
    return torch.sparse_coo_tensor(edge_index.flip(0), values, size,
                                   check_invariants=True).coalesce()


def test_adjacency_to_edge_index_keeps_edges_and_values_aligned():
    pos, _, edge_index, edge_attr = _graph()
    ei, values = adjacency_to_edge_index(_coo_adj_t(edge_index, edge_attr, pos.size(0)))
    expected = {tuple(e): v for e, v in zip(edge_index.t().tolist(), edge_attr.tolist())}
    got = {tuple(e): v for e, v in zip(ei.t().tolist(), values.tolist())}
    assert got == expected


def test_adjacency_to_edge_index_rejects_dense_tensors():
    with pytest.raises(TypeError, match='adj_t'):
        adjacency_to_edge_index(torch.ones(3, 3))


def test_lgaconv_on_coo_adj_t_with_edge_attributes_as_values():
    pos, x, edge_index, edge_attr = _graph()
    conv = LGAConv(8, 8, 4, edge_encoder='mlp').double()
    expected = conv(x, edge_index, edge_attr)
    torch.testing.assert_close(conv(x, _coo_adj_t(edge_index, edge_attr, 40)), expected)


def test_lgaconv_on_csr_adj_t_with_positions():
    pos, x, edge_index, _ = _graph()
    adj_t = _coo_adj_t(edge_index, torch.ones(edge_index.size(1), dtype=x.dtype),
                       40).to_sparse_csr()
    conv = LGAConv(8, 8, 3, edge_encoder='mlp').double()
    torch.testing.assert_close(conv(x, adj_t, pos=pos), conv(x, edge_index, pos=pos))


def test_lga_stack_on_adj_t_equals_edge_index_with_gradients():
    pos, x, edge_index, _ = _graph()
    adj_t = _coo_adj_t(edge_index, torch.ones(edge_index.size(1), dtype=x.dtype), 40)
    model = LGA(8, 6, num_layers=2, edge_dim=3, edge_encoder='mlp').double()
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_a, out_b = model(xa, adj_t, pos=pos), model(xb, edge_index, pos=pos)
    torch.testing.assert_close(out_a, out_b)
    out_a.pow(2).sum().backward()
    out_b.pow(2).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)


def test_lgaconv_on_pyg_edge_index_class():
    pos, x, edge_index, edge_attr = _graph()
    conv = LGAConv(8, 8, 4).double()
    wrapped = EdgeIndex(edge_index, sparse_size=(40, 40), sort_order='col')
    torch.testing.assert_close(conv(x, wrapped, edge_attr), conv(x, edge_index, edge_attr))


@needs_torch_sparse
def test_lgaconv_and_lga_on_torch_sparse_tensor():
    from torch_geometric.typing import SparseTensor
    pos, x, edge_index, edge_attr = _graph()
    adj_t = SparseTensor.from_edge_index(edge_index, edge_attr, sparse_sizes=(40, 40)).t()
    conv = LGAConv(8, 8, 4, edge_encoder='mlp').double()
    torch.testing.assert_close(conv(x, adj_t), conv(x, edge_index, edge_attr))
    model = LGA(8, 6, num_layers=2, edge_dim=3, edge_encoder='mlp').double()
    plain = SparseTensor.from_edge_index(edge_index, sparse_sizes=(40, 40)).t()
    torch.testing.assert_close(model(x, plain, pos=pos), model(x, edge_index, pos=pos))


def test_our_modules_never_import_the_optional_extensions():
    """torch-scatter / torch-sparse stay optional: only PyG may import them."""
    for path in list((ROOT / 'graphs').glob('*.py')) + list((ROOT / 'graphattn').glob('*.py')):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ''] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.split('.')[0] in ('torch_sparse', 'torch_scatter'), path


@needs_torch_sparse
def test_sparse_tensor_attention_comes_back_as_a_weighted_adjacency():
    from torch_sparse import SparseTensor
    pos, x, edge_index, edge_attr = _graph()
    conv = LGAConv(8, 4, 4, heads=2).double()
    out, (ei, alpha) = conv(x, edge_index, edge_attr, return_attention_weights=True)
    adj_t = SparseTensor(row=edge_index[1], col=edge_index[0], value=edge_attr,
                         sparse_sizes=(40, 40))
    out2, adj_w = conv(x, adj_t, return_attention_weights=True)
    torch.testing.assert_close(out2, out)
    row, col, value = adj_w.coo()
    assert value.shape == (edge_index.size(1), 2)
    lookup = {(int(i), int(j)): a for i, j, a in zip(row, col, value)}
    for e in range(edge_index.size(1)):
        torch.testing.assert_close(lookup[(int(ei[1, e]), int(ei[0, e]))], alpha[e])

"""The LatentGNN kernel functions against their graph-by-graph reference, and
the dense layout they run on."""
import pytest
import torch

from graphattn.dense_layout import DenseLayout
from graphattn.latent_kernels import (bipartite_convs, fused_latent_kernel,
                                      latent_kernel_reference, message_passing_latent_kernel)

SIZES = [4, 0, 7, 1, 5]   # graph 1 has no nodes, graph 3 a single node
D, C = 3, 6


def _inputs(sizes=SIZES, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    xv = torch.randn(n, C, generator=g, dtype=torch.float64)
    # raw affinities come after a ReLU: non-negative, with zeros
    psi_v = torch.randn(n, D, generator=g, dtype=torch.float64).relu()
    psi_l = torch.randn(n, D, generator=g, dtype=torch.float64).relu()
    if requires_grad:
        # finite differences need no ReLU zeros and no ties in the top-m ranking
        psi_v = torch.rand(n, D, generator=g, dtype=torch.float64) + 0.1
        psi_l = torch.rand(n, D, generator=g, dtype=torch.float64) + 0.1
        for t in (xv, psi_v, psi_l):
            t.requires_grad_()
    return xv, psi_v, psi_l, batch


def _fused(xv, psi_v, psi_l, batch, num_graphs, symmetric):
    layout = DenseLayout(xv.size(0), batch, num_graphs, xv.device)
    out, adj, _ = fused_latent_kernel(layout.to_dense(xv), layout.to_dense(psi_v),
                                      layout.to_dense(psi_l), symmetric=symmetric)
    return layout.to_flat(out)


def _message_passing(xv, psi_v, psi_l, batch, num_graphs, symmetric, top_m=None):
    v2l, l2v = bipartite_convs()
    out, _ = message_passing_latent_kernel(xv, psi_v, psi_l, batch, num_graphs, v2l=v2l,
                                           l2v=l2v, symmetric=symmetric, top_m=top_m)
    return out


@pytest.mark.parametrize('symmetric', [False, True])
def test_fused_kernel_equals_reference(symmetric):
    xv, psi_v, psi_l, batch = _inputs()
    if symmetric:   # one Psi, passed twice
        psi_l = psi_v
    expected = latent_kernel_reference(xv, psi_v, psi_l, batch, symmetric=symmetric)
    out = _fused(xv, psi_v, psi_l, batch, len(SIZES), symmetric)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize('top_m', [None, 1, 2, D])
@pytest.mark.parametrize('symmetric', [False, True])
def test_message_passing_kernel_equals_reference(symmetric, top_m):
    xv, psi_v, psi_l, batch = _inputs(seed=1)
    if symmetric:
        psi_l = psi_v
    expected = latent_kernel_reference(xv, psi_v, psi_l, batch, symmetric=symmetric,
                                       top_m=top_m)
    out = _message_passing(xv, psi_v, psi_l, batch, len(SIZES), symmetric, top_m)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)


def test_reference_is_per_graph():
    # The reference itself: one graph's rows do not depend on another graph.
    xv, psi_v, psi_l, batch = _inputs(seed=2)
    out = latent_kernel_reference(xv, psi_v, psi_l, batch)
    sel = batch == 2
    alone = latent_kernel_reference(xv[sel], psi_v[sel], psi_l[sel],
                                    torch.zeros(int(sel.sum()), dtype=torch.long))
    torch.testing.assert_close(out[sel], alone, atol=1e-12, rtol=0)


@pytest.mark.parametrize('kernel', ['fused', 'message_passing'])
def test_kernels_gradcheck(kernel):
    xv, psi_v, psi_l, batch = _inputs(sizes=[3, 2], seed=3, requires_grad=True)
    if kernel == 'fused':
        def fn(a, b, c):
            return _fused(a, b, c, batch, 2, False)
    else:
        def fn(a, b, c):
            return _message_passing(a, b, c, batch, 2, False, top_m=2)
    assert torch.autograd.gradcheck(fn, (xv, psi_v, psi_l))


def test_fused_kernel_weights_are_the_normalised_affinities():
    xv, psi_v, psi_l, batch = _inputs(sizes=[5], seed=4)
    out, adj, (w_v, w_l) = fused_latent_kernel(xv[None], psi_v[None], psi_l[None],
                                               return_weights=True)
    torch.testing.assert_close(w_v[0], torch.nn.functional.normalize(psi_v, dim=0))
    torch.testing.assert_close(w_l[0], torch.nn.functional.normalize(psi_l, dim=1))
    torch.testing.assert_close(adj.sum(-1), torch.ones(1, D, dtype=torch.float64))
    # out = W_l F W_v^T X
    torch.testing.assert_close(out[0], w_l[0] @ adj[0] @ w_v[0].t() @ xv)


def test_bipartite_convs_are_hidden_from_explainers():
    assert all(conv.explain is False for conv in bipartite_convs())


def test_dense_layout_round_trip_and_zero_padding():
    batch = torch.tensor([0, 0, 2, 2, 2, 3])
    x = torch.randn(6, 2)
    layout = DenseLayout(6, batch, 5, x.device)
    dense = layout.to_dense(x)
    assert dense.shape == (5, 3, 2)
    assert torch.equal(dense[0, :2], x[:2]) and torch.equal(dense[2], x[2:5])
    assert torch.equal(dense[1], torch.zeros(3, 2)) and torch.equal(dense[4], torch.zeros(3, 2))
    assert torch.equal(dense[0, 2], torch.zeros(2)) and torch.equal(dense[3, 1:], torch.zeros(2, 2))
    assert torch.equal(layout.to_flat(dense), x)
    assert torch.equal(layout.batch_vector(), batch)
    padded = DenseLayout(6, batch, 5, x.device, max_nodes=4)
    assert padded.to_dense(x).shape == (5, 4, 2)
    with pytest.raises(ValueError, match="'max_num_nodes'"):
        DenseLayout(6, batch, 5, x.device, max_nodes=2)
    # equal graphs: a free view, and the batch vector is built
    equal = DenseLayout(6, None, 2, x.device)
    assert equal.to_dense(x).data_ptr() == x.data_ptr()
    assert torch.equal(equal.batch_vector(), torch.tensor([0, 0, 0, 1, 1, 1]))

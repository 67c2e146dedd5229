"""Float64 gradcheck and gradgradcheck of every layer, inputs and parameters.

First-order checks of the inputs already exist for LGAConv, LGA, LGA2d's fast
path and LatentGNN (in their own test files); here are the missing ones (LGA2d's
message-passing path, LatentGNN2d, LGALoss), first-order checks with respect to
every parameter, and second-order checks (gradgradcheck) of everything,
including the custom autograd Function of LGA2d's fast path, whose backward is
made of differentiable torch ops (no ``once_differentiable``), so that double
backward (gradient penalties, higher-order methods) works through it.
"""
import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck
from torch.func import functional_call

import graphs
from graphattn import LGA, LGA2d, LGAConv, LGALoss, LatentGNN, LatentGNN2d
from graphattn.grid_attention import ShiftedWeightedSum, shifted_weighted_sum_reference

DT = torch.float64


# Thousands of tiny ops: run them on one intra-op thread (see conftest.one_thread).
pytestmark = pytest.mark.usefixtures('one_thread')


def _randn(*shape, grad=True):
    return torch.randn(*shape, dtype=DT, requires_grad=grad)


def _active(module):
    """Random parameters around the defaults (gamma = 0 would hide LatentGNN)."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn_like(p))
        if hasattr(module, 'gamma'):
            module.gamma.fill_(1.0)
    return module


def _cases():
    """name -> (module, fn(module, *inputs), inputs); small float64 problems."""
    torch.manual_seed(0)
    grid = graphs.grid_graph(2, 3)
    pos = torch.rand(5, 2, dtype=DT)
    knn = graphs.knn_graph(pos, 3, loop=True)
    batch = torch.tensor([0, 0, 1, 1, 1])
    target_map = torch.tensor([[[0, 0, 1, 1], [0, 2, 1, 1]]])
    target_nodes = torch.tensor([0, 1, 0, 1, 1])
    cases = {
        'LGAConv[grid]': (LGAConv(3, 2, 9, act='tanh'),
                          lambda m, x: m(x, grid.edge_index, grid.edge_attr),
                          (_randn(6, 3),)),
        'LGAConv[points, mlp, sigmoid]': (
            LGAConv(3, 2, 2, edge_encoder='mlp', att_channels=3, normalize='sigmoid', act=None),
            lambda m, x, p: m(x, knn, pos=p), (_randn(5, 3), pos.clone().requires_grad_())),
        'LGA': (LGA(3, 2, num_layers=2, act='tanh', fuse=True),
                lambda m, x: m(x, grid.edge_index, grid.edge_attr), (_randn(6, 3),)),
        'LGA2d[fast]': (LGA2d(2, 3, num_layers=2, act='tanh', fuse=True),
                        lambda m, x: m(x, path='fused'), (_randn(1, 2, 2, 3),)),
        'LGA2d[message_passing]': (LGA2d(2, 3, num_layers=2, act='tanh', fuse=True),
                                   lambda m, x: m(x, path='message_passing'),
                                   (_randn(1, 2, 2, 3),)),
        'LatentGNN[fused]': (LatentGNN(4, [2], channel_stride=2, graph_conv=True),
                             lambda m, x: m(x, batch, path='fused'), (_randn(5, 4),)),
        'LatentGNN[message_passing]': (LatentGNN(4, [2], channel_stride=2, graph_conv=True),
                                       lambda m, x: m(x, batch, path='message_passing'),
                                       (_randn(5, 4),)),
        'LatentGNN2d[fused]': (LatentGNN2d(4, [2], channel_stride=2, mode='symmetric'),
                               lambda m, x: m(x), (_randn(2, 4, 2, 2),)),
        'LatentGNN2d[message_passing]': (LatentGNN2d(4, [2], channel_stride=2, norm='layer'),
                                         lambda m, x: m(x, path='message_passing'),
                                         (_randn(2, 4, 2, 2),)),
        'LGALoss[sym_kl, map]': (LGALoss(), lambda m, z: m(z, target_map),
                                 (_randn(1, 3, 2, 2),)),
        'LGALoss[js, map]': (LGALoss(divergence='js', margin=0.3), lambda m, z: m(z, target_map),
                             (_randn(1, 3, 2, 2),)),
        # Random pairs draw from the global RNG: reseed so every evaluation sees the same pairs.
        'LGALoss[sym_kl, nodes, random pairs]': (
            LGALoss(num_random_pairs=3),
            lambda m, z: (torch.manual_seed(0), m(z, target_nodes, knn, batch))[1],
            (_randn(5, 3),)),
    }
    return {name: (_active(module.to(DT)), fn, inputs)
            for name, (module, fn, inputs) in cases.items()}


CASES = list(_cases())


@pytest.mark.parametrize('name', CASES)
def test_gradcheck_and_gradgradcheck_of_the_inputs(name):
    module, fn, inputs = _cases()[name]
    assert gradcheck(lambda *xs: fn(module, *xs), inputs)
    assert gradgradcheck(lambda *xs: fn(module, *xs), inputs)


@pytest.mark.parametrize('name', [n for n in CASES if not n.startswith('LGALoss')])
def test_gradcheck_of_the_parameters(name):
    module, fn, inputs = _cases()[name]
    names = [n for n, _ in module.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for _, p in module.named_parameters())
    xs = tuple(x.detach() for x in inputs)

    def with_params(*ps):
        return fn(lambda *a, **kw: functional_call(module, dict(zip(names, ps)), a, kw), *xs)
    assert gradcheck(with_params, params)


@pytest.mark.parametrize('connectivity, dilation, h, w', [(8, 1, 3, 4), (4, 2, 3, 2),
                                                          (8, 1, 1, 4)])
def test_shifted_weighted_sum_double_backward(connectivity, dilation, h, w):
    # The custom Function's backward is built from differentiable ops, so its own
    # gradient exists and equals the one of the plain-autograd reference.
    torch.manual_seed(0)
    offsets = tuple(map(tuple, graphs.grid_stencil(connectivity, dilation).tolist()))
    weight, value = _randn(2, h, w, len(offsets)), _randn(2, h, w, 3)

    def fast(a, b):
        return ShiftedWeightedSum.apply(a, b, offsets)
    assert gradgradcheck(fast, (weight, value))
    # Second derivatives agree with the reference's (a Hessian-vector product).
    grad_out, direction = torch.randn(2, h, w, 3, dtype=DT), _randn(2, h, w, 3, grad=False)
    results = []
    for f in (fast, lambda a, b: shifted_weighted_sum_reference(a, b, offsets)):
        gw, gv = torch.autograd.grad(f(weight, value), (weight, value), grad_out,
                                     create_graph=True)
        hvp = torch.autograd.grad((gw.sum() + (gv * direction).sum()), (weight, value))
        results.append(hvp)
    for a, b in zip(*results):
        assert torch.allclose(a, b, atol=1e-12)


def test_gradient_penalty_trains_through_the_fast_path():
    # A WGAN-GP style penalty: backward through a gradient of LGA2d's fast path.
    torch.manual_seed(0)
    block = LGA2d(3, 4, num_layers=2, fuse=True)
    x = torch.randn(2, 3, 5, 5, requires_grad=True)
    (gx,) = torch.autograd.grad(block(x).square().sum(), x, create_graph=True)
    penalty = (gx.flatten(1).norm(dim=1) - 1).square().mean()
    penalty.backward()
    grads = [p.grad for p in block.parameters()]
    assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)


@pytest.mark.parametrize('path', ['fused', 'message_passing'])
@pytest.mark.parametrize('mode', ['asymmetric', 'symmetric'])
def test_double_backward_is_finite_at_all_zero_nodes(path, mode):
    # An all-zero node (zero padding, a dead ReLU pixel) has zero-norm rows in
    # every L2 normalisation; the norms' double backward must not turn them into NaN.
    torch.manual_seed(0)
    node = _active(LatentGNN(8, [4], channel_stride=2, norm='none', mode=mode))
    grid = _active(LatentGNN2d(8, [4], channel_stride=2, norm='none', mode=mode))
    x = torch.randn(6, 8)
    x[2] = 0.0
    fmap = torch.randn(1, 8, 2, 3)
    fmap[..., 1, 1] = 0.0
    for module, inp in ((node, x), (grid, fmap)):
        inp = inp.clone().requires_grad_()
        (g,) = torch.autograd.grad(module(inp, path=path).square().sum(), inp,
                                   create_graph=True)
        g.square().sum().backward()
        assert bool(torch.isfinite(inp.grad).all())
        assert all(bool(torch.isfinite(p.grad).all()) for p in module.parameters())

import io

import pytest
import torch

from graphattn import LGA2d
from graphattn.grid_attention import (ShiftedWeightedSum, grid_neighbor_mask,
                                      shifted_weighted_sum, shifted_weighted_sum_reference)
import graphs

DT = torch.float64


def _compare_paths(model, x):
    grads = {}
    outs = {}
    for path in ('fused', 'message_passing'):
        model.zero_grad()
        xi = x.clone().requires_grad_()
        out, latent, maps = model(xi, path=path, return_latent=True,
                                  return_attention_weights=True)
        w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
        ((out * w).sum() + (latent ** 2).sum()).backward()
        outs[path] = (out.detach(), latent.detach(), [m.detach() for m in maps])
        grads[path] = [xi.grad] + [p.grad.clone() for p in model.parameters()]
    (a, la, ma), (b, lb, mb) = outs['fused'], outs['message_passing']
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(la, lb, atol=1e-5)
    for p, q in zip(ma, mb):
        assert torch.allclose(p, q, atol=1e-5)
    for g1, g2 in zip(grads['fused'], grads['message_passing']):
        assert torch.allclose(g1, g2, atol=1e-5)


@pytest.mark.parametrize('size', [(5, 6), (1, 7), (6, 1), (1, 1), (2, 2)])
def test_fast_equals_message_passing(size):
    torch.manual_seed(0)
    model = LGA2d(4, 6, num_layers=2).to(DT)
    _compare_paths(model, torch.randn(3, 4, *size, dtype=DT))


@pytest.mark.parametrize('kwargs', [dict(normalize='sigmoid', groups=2, fuse=True),
                                    dict(connectivity=4, act='tanh'),
                                    dict(dilation=2, act=None)])
def test_fast_equals_message_passing_options(kwargs):
    torch.manual_seed(1)
    model = LGA2d(4, 6, num_layers=2, **kwargs).to(DT)
    _compare_paths(model, torch.randn(2, 4, 5, 4, dtype=DT))


def test_fast_equals_message_passing_float32():
    torch.manual_seed(2)
    model = LGA2d(8, num_layers=3)
    _compare_paths(model, torch.randn(2, 8, 9, 7))


def test_auto_uses_fast_path_and_shapes():
    model = LGA2d(4, 8, num_layers=2)
    assert str(model) == 'LGA2d(4, latent_channels=8, num_layers=2)'
    assert model.path == 'auto'
    x = torch.randn(2, 4, 5, 3)
    out = model(x)
    assert out.shape == (2, 12, 5, 3)
    assert torch.equal(out, model(x, path='fused'))
    assert LGA2d(4, 8, fuse=True)(x).shape == (2, 4, 5, 3)


@pytest.mark.parametrize('path', ['fused', 'message_passing'])
def test_receptive_field(path):
    torch.manual_seed(0)
    num_layers = 2
    model = LGA2d(3, 4, num_layers=num_layers, act='tanh').to(DT)
    x = torch.randn(1, 3, 9, 8, dtype=DT, requires_grad=True)
    r0, c0 = 3, 5
    _, latent = model(x, path=path, return_latent=True)
    grad, = torch.autograd.grad(latent[0, :, r0, c0].sum(), x)
    support = grad[0].abs().sum(0) > 0
    rows = torch.arange(9).view(-1, 1)
    cols = torch.arange(8).view(1, -1)
    cheb = torch.maximum((rows - r0).abs(), (cols - c0).abs())
    assert torch.equal(support, cheb <= num_layers)


def test_attention_maps():
    torch.manual_seed(0)
    model = LGA2d(4, num_layers=1)
    _, (alpha,) = model(torch.randn(2, 4, 4, 5), return_attention_weights=True)
    assert alpha.shape == (2, 1, 9, 4, 5)   # (B, heads, S, H, W)
    alpha = alpha[:, 0]
    assert torch.allclose(alpha.sum(1), torch.ones(2, 4, 5), atol=1e-6)
    assert bool((alpha >= 0).all() and (alpha <= 1).all())
    mask = grid_neighbor_mask(4, 5, model.offsets).permute(2, 0, 1)
    assert bool((alpha[:, ~mask] == 0).all())
    # Top-left pixel: no neighbour up or left.
    assert bool((alpha[:, [0, 1, 2, 3, 6], 0, 0] == 0).all())


def test_shifted_weighted_sum_gradcheck():
    torch.manual_seed(0)
    offsets = graphs.grid_stencil().tolist()
    w = torch.randn(2, 3, 4, 9, dtype=DT, requires_grad=True)
    v = torch.randn(2, 3, 4, 3, dtype=DT, requires_grad=True)
    assert torch.allclose(shifted_weighted_sum(w, v, offsets),
                          shifted_weighted_sum_reference(w, v, offsets))
    assert torch.autograd.gradcheck(lambda a, b: shifted_weighted_sum(a, b, offsets), (w, v))
    offsets2 = graphs.grid_stencil(4, 2).tolist()
    w2 = torch.randn(1, 3, 2, 5, dtype=DT, requires_grad=True)
    v2 = torch.randn(1, 3, 2, 2, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: ShiftedWeightedSum.apply(a, b, tuple(
        map(tuple, offsets2))), (w2, v2))


def test_gradcheck_module():
    torch.manual_seed(0)
    model = LGA2d(2, 3, num_layers=2, act='tanh', fuse=True).to(DT)
    x = torch.randn(2, 2, 3, 2, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(model, (x,))


def test_state_dict_round_trip_across_paths():
    torch.manual_seed(0)
    a = LGA2d(4, 4, num_layers=2, groups=2, path='fused')
    b = LGA2d(4, 4, num_layers=2, groups=2, path='message_passing')
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b.load_state_dict(torch.load(buf))
    x = torch.randn(1, 4, 3, 5)
    assert torch.allclose(a(x), b(x), atol=1e-5)


def test_bad_input():
    model = LGA2d(4, num_layers=1)
    with pytest.raises(ValueError, match=r"'x'.*\(B, 4, H, W\)"):
        model(torch.randn(4, 5, 5))
    with pytest.raises(ValueError, match="'x'"):
        model(torch.randn(1, 3, 5, 5))
    with pytest.raises(TypeError, match="'x'"):
        model('image')
    with pytest.raises(ValueError, match="'path'"):
        model(torch.randn(1, 4, 5, 5), path='slow')
    with pytest.raises(ValueError, match="'path'"):
        LGA2d(4, path='gpu')
    with pytest.raises(ValueError, match="'connectivity'"):
        LGA2d(4, connectivity=6)
    with pytest.raises(ValueError, match="'normalize'"):
        LGA2d(4, normalize='l1')


def test_no_graph_breaks():
    model = LGA2d(4, num_layers=2, fuse=True)
    explanation = torch._dynamo.explain(model)(torch.randn(2, 4, 5, 3))
    assert explanation.graph_break_count == 0


def test_integer_or_empty_maps_are_refused_by_every_path():
    from graphattn import LGA, LGA2d, LGAConv
    block = LGA2d(4, num_layers=1)
    for path in ('fused', 'message_passing'):
        with pytest.raises(TypeError, match="'x' must be a floating-point"):
            block(torch.zeros(1, 4, 3, 3, dtype=torch.long), path=path)
        with pytest.raises(ValueError, match='non-empty map'):
            block(torch.zeros(1, 4, 0, 3), path=path)
    g = graphs.grid_graph(2, 2)
    with pytest.raises(TypeError, match="'x' must be a floating-point"):
        LGA(4, num_layers=1)(torch.zeros(4, 4, dtype=torch.long), g.edge_index, g.edge_attr)
    with pytest.raises(TypeError, match="'x' must be a floating-point"):
        LGAConv(4, 4, 9)(torch.zeros(4, 4, dtype=torch.long), g.edge_index, g.edge_attr)

"""The compiled grid kernel (path='compiled') against independent references.

Each distinct configuration (normalisation, stencil, ReLU, dtype) compiles
once (seconds), so the cases below share configurations where they can.
"""
import pytest
import torch

import graphs
from graphattn import LGA2d, LGAConv, LatentGNN
from graphattn.compiled_grid_attention import (_backward, _forward, _score_backward,
                                               _value_backward, compiled_grid_attention)
from graphattn.grid_attention import grid_attention

DT = torch.float64


def _offsets(connectivity=8, dilation=1):
    return tuple((int(dx), int(dy)) for dx, dy in
                 graphs.grid_stencil(connectivity, dilation, True).tolist())


def _run(fn, scores, value, grad_alpha, *args):
    scores = scores.clone().requires_grad_()
    value = value.clone().requires_grad_()
    out, alpha = fn(scores, value, *args)
    w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    ((out * w).sum() + (alpha * grad_alpha).sum()).backward()
    return out.detach(), alpha.detach(), scores.grad, value.grad


@pytest.mark.parametrize('normalize,connectivity,dilation', [
    ('softmax', 8, 1), ('sigmoid', 4, 2)])
def test_equals_eager_kernel_values_and_gradients(normalize, connectivity, dilation):
    """Every output and gradient, also through the returned weights, on maps
    small enough for the stencil to leave the image on every side."""
    torch.manual_seed(0)
    offsets = _offsets(connectivity, dilation)
    scores = 3 * torch.randn(2, 5, 7, 2, len(offsets), dtype=DT)
    value = torch.randn(2, 5, 7, 2, 3, dtype=DT)
    grad_alpha = torch.randn(2, 5, 7, 2, len(offsets), dtype=DT)
    got = _run(compiled_grid_attention, scores, value, grad_alpha, offsets, normalize)
    want = _run(grid_attention, scores, value, grad_alpha, offsets, normalize)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('normalize', ['softmax', 'sigmoid'])
@pytest.mark.parametrize('relu', [False, True])
@pytest.mark.parametrize('through_alpha', [False, True])
def test_split_backward_equals_the_eager_kernel(normalize, relu, through_alpha):
    """The two-function schedule of the backward against the eager kernel (with
    the ReLU applied after it), with and without a gradient through the weights."""
    torch.manual_seed(3)
    offsets = _offsets(8, 1)
    scores = 3 * torch.randn(2, 4, 6, 2, 9, dtype=DT)
    value = torch.randn(2, 4, 6, 2, 3, dtype=DT)
    grad_alpha = torch.randn(2, 4, 6, 2, 9, dtype=DT) if through_alpha else torch.zeros(())

    def eager(s, v):
        out, alpha = grid_attention(s, v, offsets, normalize)
        return (torch.relu(out) if relu else out), alpha

    got = _run(lambda s, v: compiled_grid_attention(s, v, offsets, normalize, relu,
                                                    backward='split'),
               scores, value, grad_alpha)
    want = _run(eager, scores, value, grad_alpha)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('backward', ['fused', 'split'])
def test_gradcheck(backward):
    torch.manual_seed(2)
    offsets = _offsets()
    scores = torch.randn(1, 3, 4, 2, 9, dtype=DT, requires_grad=True)
    value = torch.randn(1, 3, 4, 2, 2, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda s, v: compiled_grid_attention(s, v, offsets, 'softmax', backward=backward),
        (scores, value))
    with pytest.raises(ValueError, match="'backward' must be one of"):
        compiled_grid_attention(scores, value, offsets, backward='two')


@pytest.mark.parametrize('score', ['center', 'neighbor', 'pair'])
@pytest.mark.parametrize('concat', [True, False])
def test_every_reading_equals_message_passing(score, concat):
    """The layer on a grid: the compiled path against message passing on the
    grid's edge list (an independent computation), values, attention and every
    gradient. ``concat=True`` fuses the ReLU into the kernel (the test checks
    that it is active somewhere); ``concat=False`` (heads averaged before the
    activation) does not."""
    torch.manual_seed(3)
    conv = LGAConv(6, 4, edge_dim=9, heads=2, concat=concat, score=score).to(DT)
    assert conv._relu_fusable() == concat
    x = torch.randn(2, 5 * 4, 6, dtype=DT)
    results = {}
    for path in ('message_passing', 'compiled'):
        xi = x.clone().requires_grad_()
        out, (edge_index, alpha) = conv(xi, grid=(5, 4), path=path,
                                        return_attention_weights=True)
        ((out ** 2).sum() + (alpha ** 2).sum()).backward()
        results[path] = [out.detach(), alpha.detach(), xi.grad] + [
            p.grad.clone() for p in conv.parameters()]
        conv.zero_grad(set_to_none=True)
    out = results['compiled'][0]
    assert (out == 0).any() and (out > 0).any()
    for g, w in zip(results['compiled'], results['message_passing']):
        torch.testing.assert_close(g, w, rtol=1e-8, atol=1e-10)


def test_lga2d_compiled_equals_fused_and_shares_the_state_dict():
    torch.manual_seed(4)
    fused = LGA2d(4, 6, num_layers=2, path='fused').to(DT)
    compiled = LGA2d(4, 6, num_layers=2, path='compiled').to(DT)
    compiled.load_state_dict(fused.state_dict())
    x = torch.randn(2, 4, 9, 8, dtype=DT)
    outs = []
    for model in (fused, compiled):
        xi = x.clone().requires_grad_()
        out, latent = model(xi, return_latent=True)
        (out.square().sum() + latent.sum()).backward()
        outs.append([out.detach(), xi.grad] + [p.grad for p in model.parameters()])
    for g, w in zip(*outs):
        torch.testing.assert_close(g, w, rtol=1e-8, atol=1e-10)
    assert "path='compiled'" in repr(compiled)


def test_kernels_have_no_graph_breaks():
    """Both passes trace to one graph each, so inductor sees the whole loop."""
    offsets = _offsets()
    s, v = torch.randn(1, 3, 3, 1, 9), torch.randn(1, 3, 3, 1, 4)
    alpha = torch.rand(1, 3, 3, 1, 9)
    assert torch._dynamo.explain(_forward)(s, v, offsets, 'softmax', True).graph_break_count == 0
    assert torch._dynamo.explain(_backward)(v, None, alpha, v, v, offsets,
                                            'softmax').graph_break_count == 0
    assert torch._dynamo.explain(_score_backward)(v, alpha, alpha, v, v, offsets,
                                                  'sigmoid').graph_break_count == 0
    assert torch._dynamo.explain(_value_backward)(v, alpha, v, offsets).graph_break_count == 0


def test_double_backward_is_refused_clearly():
    offsets = _offsets()
    s = torch.randn(1, 3, 4, 2, 9, dtype=DT, requires_grad=True)
    v = torch.randn(1, 3, 4, 2, 2, dtype=DT, requires_grad=True)
    out, _ = compiled_grid_attention(s, v, offsets, 'softmax')
    with pytest.raises(RuntimeError, match="path='compiled' does not support double backward"):
        torch.autograd.grad(out.sum(), v, create_graph=True)


def test_compiled_needs_a_grid_or_a_table():
    """An edge list has no compiled kernel (a table has its own: see
    tests/test_compiled_neighbor_attention.py)."""
    conv = LGAConv(4, 4, edge_dim=3, path='compiled')
    x = torch.randn(5, 4)
    with pytest.raises(ValueError, match="path='compiled'.*'grid'.*'neighbors'"):
        conv(x, torch.tensor([[0, 1], [1, 0]]), torch.randn(2, 3))
    with pytest.raises(ValueError, match="'path' must be one of"):
        LatentGNN(4, latent_dims=[2], path='compiled')


def test_whole_module_traces_without_graph_breaks():
    """A user's ``torch.compile(model)`` over a compiled-path LGA2d sees one graph."""
    model = LGA2d(4, num_layers=2, path='compiled')
    x = torch.randn(1, 4, 5, 6)
    assert torch._dynamo.explain(model)(x).graph_break_count == 0

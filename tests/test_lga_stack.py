"""The LGA stack's form: a pre-norm residual stack whose fused output starts as the identity
(``residual``, ``norm``, ``output_init``), and the 0.1/0.2 plain stack by arguments.

Each of the first tests fails on the plain stack (graphattn 0.2's defaults): there the
fused output is a random re-mixing of the input at initialisation, the gradient reaching
the first layer is 1e-3 (8 layers) to 1e-6 (16 layers) of the last layer's, and the
latent forgets the input as the stack deepens (docs/lga.md, "Why the stack collapsed").
"""
import pathlib

import pytest
import torch

from graphattn import LGA, LGA2d

DT = torch.float64
OLD = dict(residual=False, norm='none', output_init='default')   # the 0.1/0.2 stack
GOLDEN = pathlib.Path(__file__).parent / 'data' / 'lga_v0_1_golden.pt'


def _first_over_last_gradient(model, x):
    """Gradient norm at the first layer's value map over the last's, for a fixed random
    projection of the stack's output h^(L) (benchmarks/lga_depth_gradients.py)."""
    _, latent = model(x, return_latent=True)
    weight = torch.randn(latent.shape, generator=torch.Generator().manual_seed(7),
                         dtype=latent.dtype)
    (latent * weight).sum().backward()
    first = model.convs[0].lin_value.weight.grad.norm()
    last = model.convs[-1].lin_value.weight.grad.norm()
    return float(first / last)


def test_fused_block_is_the_identity_at_initialisation():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 5, 6)
    for layers in (1, 4):
        assert torch.equal(LGA2d(8, 12, num_layers=layers, fuse=True)(x), x)
    nodes = torch.randn(10, 8)
    lga = LGA(8, num_layers=3, edge_dim=3, edge_encoder='mlp', fuse=True)
    centre = torch.arange(10).repeat_interleave(3)
    edge_index = torch.stack([(centre + torch.arange(3).repeat(10)) % 10, centre])  # self-loops
    assert torch.equal(lga(nodes, edge_index, pos=torch.randn(10, 3)), nodes)
    # ... and not a frozen identity: the stack's parameters get a gradient after one step
    block = LGA2d(8, num_layers=2, fuse=True)
    block(x).pow(2).sum().backward()
    assert block.lin_fuse.weight.grad[:, 8:].abs().sum() > 0
    # the 0.2 fusion re-mixes the input at random
    assert not torch.allclose(LGA2d(8, num_layers=2, fuse=True, **OLD)(x), x, atol=0.1)


@pytest.mark.parametrize('layers', [8, 16])
def test_every_layer_gets_a_gradient_at_any_depth(layers, one_thread):
    torch.manual_seed(1)
    x = torch.randn(2, 16, 8, 8)
    ratio = _first_over_last_gradient(LGA2d(16, num_layers=layers, fuse=True), x)
    assert 0.25 < ratio < 4, ratio
    torch.manual_seed(1)
    old = _first_over_last_gradient(LGA2d(16, num_layers=layers, fuse=True, **OLD), x)
    assert old < 1e-2, old                        # what the residual form fixes


@pytest.mark.parametrize('layers', [1, 4, 16])
def test_the_latent_keeps_the_input_at_any_depth(layers):
    """The part of h^(L) that depends on the input does not vanish as the stack deepens
    (the plain stack's falls to 3e-3 of the input's scale at 4 layers, 4e-8 at 16)."""
    torch.manual_seed(0)
    model = LGA2d(16, num_layers=layers, fuse=True)
    a, b = torch.randn(2, 2, 16, 8, 8)
    with torch.no_grad():
        change = (model(a, return_latent=True)[1] - model(b, return_latent=True)[1]).std()
    assert change > 0.3 * a.std()


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(norm='batch', fuse=True, output_init='default'),
    dict(norm='none', residual=True, heads=2, score='pair', fuse=True, output_init='default'),
    dict(norm='layer', residual=False, concat=False, heads=2),
])
def test_paths_agree_for_every_stack_form(kwargs):
    torch.manual_seed(2)
    model = LGA2d(4, 6, num_layers=3, **kwargs).to(DT)
    results = {}
    for path in ('fused', 'message_passing'):
        model.zero_grad()
        x = torch.randn(2, 4, 5, 6, dtype=DT, generator=torch.Generator().manual_seed(3))
        x.requires_grad_()
        out, latent = model(x, path=path, return_latent=True)
        w = torch.linspace(-1, 1, out.numel(), dtype=DT).view_as(out)
        ((out * w).sum() + latent.pow(2).sum()).backward()
        results[path] = [out.detach(), latent.detach(), x.grad] + [
            p.grad.clone() for p in model.parameters()]
    for a, b in zip(results['fused'], results['message_passing']):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)


def test_node_level_table_and_edge_list_agree_in_the_residual_form():
    torch.manual_seed(4)
    model = LGA(5, 6, num_layers=2, edge_dim=3, edge_encoder='mlp', fuse=True,
                output_init='default').to(DT)
    x, pos = torch.randn(12, 5, dtype=DT), torch.randn(12, 3, dtype=DT)
    table = torch.stack([torch.arange(12), (torch.arange(12) + 1) % 12,
                         (torch.arange(12) + 5) % 12], dim=1)
    edge_index = torch.stack([table.flatten(), torch.arange(12).repeat_interleave(3)])
    a = model(x, pos=pos, neighbors=table)
    b = model(x, edge_index, pos=pos)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize('kwargs', [dict(fuse=True, output_init='default'),
                                    dict(norm='batch', heads=2)])
def test_gradcheck_float64(kwargs, one_thread):
    torch.manual_seed(5)
    model = LGA2d(3, 4, num_layers=2, **kwargs).to(DT)
    x = torch.randn(2, 3, 3, 4, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: model(t, return_latent=True), (x,))


def test_reset_parameters_restores_the_identity_and_the_norms():
    torch.manual_seed(6)
    model = LGA2d(6, num_layers=2, fuse=True)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    x = torch.randn(1, 6, 4, 4)
    assert not torch.equal(model(x), x)
    model.reset_parameters()
    assert torch.equal(model(x), x)
    assert torch.equal(model.norms[0].weight, torch.ones(6))


def test_reprs_name_the_stack_form():
    assert str(LGA2d(64, num_layers=4, fuse=True)) == (
        'LGA2d(64, latent_channels=64, num_layers=4, fuse=True)')
    assert str(LGA2d(64, num_layers=4, fuse=True, **OLD)) == (
        "LGA2d(64, latent_channels=64, num_layers=4, fuse=True, residual=False, norm='none', "
        "output_init='default')")
    assert str(LGA(8, norm='batch')) == (
        "LGA(8, latent_channels=8, num_layers=3, edge_dim=9, norm='batch')")


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(residual='yes'), TypeError, "'residual' must be a bool"),
    (dict(norm='group'), ValueError,
     r"'norm' must be one of \('layer', 'batch', 'none'\) \(got 'group'\)"),
    (dict(norm=None), ValueError, "'norm' must be one of"),
    (dict(output_init='zeros'), ValueError,
     r"'output_init' must be one of \('identity', 'default'\) \(got 'zeros'\)"),
])
def test_bad_stack_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        LGA2d(4, **kwargs)
    with pytest.raises(error, match=match):
        LGA(4, **kwargs)


@pytest.mark.skipif(not GOLDEN.exists(), reason='golden file missing')
def test_an_old_state_dict_loads_into_the_old_form_and_says_how_otherwise():
    """A 0.1 state dict (tests/data/lga_v0_1_golden.pt) loads strictly into the module
    built with the old-form arguments and reproduces its outputs; into the new default
    it fails with the arguments to use."""
    golden = torch.load(GOLDEN, weights_only=True)['lga2d']
    model = LGA2d(4, 6, num_layers=2, fuse=True, groups=2, **OLD).to(DT)
    model.load_state_dict(golden['state'])
    torch.testing.assert_close(model(golden['x']), golden['out'])
    with pytest.raises(RuntimeError, match="residual=False, norm='none', "
                                           "output_init='default'"):
        LGA2d(4, 6, num_layers=2, fuse=True, groups=2).to(DT).load_state_dict(golden['state'])
    # a new-form state dict round-trips
    new = LGA2d(4, 6, num_layers=2, fuse=True, norm='batch')
    again = LGA2d(4, 6, num_layers=2, fuse=True, norm='batch')
    again.load_state_dict(new.state_dict())

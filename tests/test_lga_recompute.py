"""``recompute=True`` (activation checkpointing of each layer): the same maths, less kept.

The memory test counts the bytes the forward pass leaves for the backward pass through
:func:`torch.autograd.graph.saved_tensors_hooks` (deterministic; the checkpoint's own
inputs are saved through the same mechanism, so they are counted too), not timings or RSS.
"""
import pytest
import torch

from graphattn import LGA, LGA2d
from graphattn.compiled_kernel import compile_kernels

DT = torch.float64

pytestmark = pytest.mark.usefixtures('one_thread')

PLAIN = dict(residual=False, norm='none')      # the stack of the performance tables


def _step(model, x, path, extras=True):
    """Outputs and every gradient of a loss through out, latent and attention."""
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    if extras:
        out, latent, maps = model(x, path=path, return_latent=True,
                                  return_attention_weights=True)
    else:
        out, latent, maps = model(x, path=path), None, []
    w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    loss = (out * w).sum()
    if latent is not None:
        loss = loss + (latent ** 2).sum()
    for i, m in enumerate(maps):
        loss = loss + (i + 1) * (m * torch.arange(m.numel(), dtype=m.dtype).view_as(m)).sum()
    loss.backward()
    values = [out.detach()] + ([latent.detach()] if latent is not None else []) + [
        m.detach() for m in maps]
    grads = [x.grad] + [p.grad for p in model.parameters()]
    return values, grads


def _twins(kwargs, seed=0):
    torch.manual_seed(seed)
    base = LGA2d(4, 6, num_layers=3, **kwargs).to(DT)
    twin = LGA2d(4, 6, num_layers=3, recompute=True, **kwargs).to(DT)
    twin.load_state_dict(base.state_dict())
    return base, twin


@pytest.mark.parametrize('path', ['fused', 'message_passing'])
@pytest.mark.parametrize('kwargs', [
    {}, PLAIN,
    dict(heads=2, score='pair', normalize='sigmoid', groups=2, fuse=True),
    dict(score='neighbor', connectivity=4, dilation=2, act='tanh'),
], ids=['default', 'plain', 'pair-sigmoid-groups-fuse', 'neighbor-4-tanh'])
def test_same_values_and_gradients(path, kwargs):
    """Bit for bit in float64: the recomputation runs the same ops on the same inputs."""
    base, twin = _twins(kwargs)
    x = torch.randn(2, 4, 5, 7, dtype=DT)
    (v0, g0), (v1, g1) = _step(base, x, path), _step(twin, x, path)
    assert len(v0) == len(v1) == 5 and len(g0) == len(g1)
    for a, b in zip(v0 + g0, v1 + g1):
        assert torch.equal(a, b)


def test_batch_norm_updates_running_statistics_once():
    """A batch norm is kept out of the recomputation: running statistics as without it."""
    base, twin = _twins(dict(norm='batch'), seed=3)
    x = torch.randn(2, 4, 5, 6, dtype=DT)
    for _ in range(2):
        (v0, g0), (v1, g1) = _step(base, x, 'fused'), _step(twin, x, 'fused')
        for a, b in zip(v0 + g0, v1 + g1):
            assert torch.equal(a, b)
    for key, value in base.state_dict().items():
        assert torch.equal(value, twin.state_dict()[key]), key


def test_gradcheck_tiny():
    torch.manual_seed(4)
    model = LGA2d(2, 3, num_layers=2, recompute=True).to(DT)
    params = dict(model.named_parameters())
    names = ['proj.weight', 'convs.0.lin_value.weight', 'convs.1.lin_att.bias']
    x = torch.randn(1, 2, 3, 4, dtype=DT, requires_grad=True)

    def f(x, *ps):
        return torch.func.functional_call(model, {**params, **dict(zip(names, ps))}, (x,))

    assert torch.autograd.gradcheck(f, (x, *(params[n].detach().clone().requires_grad_()
                                            for n in names)))
    assert torch.autograd.gradgradcheck(model, (x,))   # double backward (fused path)


def test_no_grad_and_eval_run_plainly():
    """Under no_grad nothing is recomputed (there is no backward): same output."""
    base, twin = _twins({})
    x = torch.randn(1, 4, 4, 5, dtype=DT)
    with torch.no_grad():
        assert torch.equal(base(x), twin(x))


def test_lga_on_points_and_tables():
    """The option lives in the stack LGA and LGA2d share: a table with its own chunk
    checkpoints inside and message passing give the same values and gradients."""
    torch.manual_seed(5)
    pos = torch.rand(30, 3, dtype=DT)
    table = torch.cdist(pos, pos).topk(5, largest=False).indices
    base = LGA.for_points(4, 6, num_layers=2, att_channels=8).to(DT)
    twin = LGA.for_points(4, 6, num_layers=2, att_channels=8, recompute=True).to(DT)
    twin.load_state_dict(base.state_dict())
    x = torch.randn(30, 4, dtype=DT)
    grads = []
    for model in (base, twin):
        out = model(x, neighbors=table, pos=pos)
        (out * torch.linspace(-1, 1, out.numel(), dtype=DT).view_as(out)).sum().backward()
        grads.append([out.detach()] + [p.grad for p in model.parameters()])
    for a, b in zip(*grads):
        assert torch.equal(a, b)


def _saved_bytes(model, x):
    """Bytes of the distinct storages the forward pass saves for the backward pass, x's
    own storage left out: the caller holds x anyway, while a copy of it is the layer's."""
    seen = {}

    def pack(t):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    seen.pop(x.untyped_storage().data_ptr(), None)
    return sum(seen.values())


@pytest.mark.parametrize('path', ['fused', 'compiled'])
@pytest.mark.parametrize('kwargs', [{}, PLAIN], ids=['default', 'plain'])
def test_keeps_only_each_layers_input(kwargs, path, monkeypatch):
    """Without the option a layer keeps its input, its value map, its weights and its
    output (and with the default stack its normalised input): at least two maps per layer.
    With it: one map per layer (each layer's input) and the weights; the projection keeps
    x itself, not a channels-last copy of it."""
    if path == 'compiled':   # the compiled kernel's functions, traced without inductor's build
        from graphattn import compiled_grid_attention as cga
        torch._dynamo.reset()
        monkeypatch.setattr(cga, '_KERNELS', compile_kernels(cga._FUNCTIONS, 'aot_eager'))
    torch.manual_seed(6)
    layers, c = 4, 16
    x = torch.randn(2, c, 12, 10, requires_grad=True)
    one_map = x.numel() * x.element_size()
    params = sum(p.numel() * p.element_size() for p in LGA2d(c, num_layers=layers).parameters())
    without = _saved_bytes(LGA2d(c, num_layers=layers, path=path, **kwargs), x)
    with_ = _saved_bytes(LGA2d(c, num_layers=layers, path=path, recompute=True, **kwargs), x)
    assert without >= 2 * layers * one_map
    assert with_ <= layers * one_map + params
    assert with_ < 0.6 * without
    torch._dynamo.reset()


def test_compiled_path_same_values_and_gradients(monkeypatch):
    from graphattn import compiled_grid_attention as cga
    torch._dynamo.reset()
    monkeypatch.setattr(cga, '_KERNELS', compile_kernels(cga._FUNCTIONS, 'aot_eager'))
    base, twin = _twins({})
    x = torch.randn(2, 4, 5, 7, dtype=DT)
    (v0, g0), (v1, g1) = _step(base, x, 'compiled'), _step(twin, x, 'compiled')
    for a, b in zip(v0 + g0, v1 + g1):
        assert torch.equal(a, b)
    torch._dynamo.reset()


@pytest.mark.filterwarnings('error::UserWarning')
@pytest.mark.parametrize('recompute', [False, True])
def test_compiled_path_traces_without_a_torch_warning(recompute, monkeypatch):
    """The compiled kernel's functions get detached tensors: Dynamo reads the .grad of each
    input as it traces (torch/_subclasses/meta_utils.py, safe_grad), which for a non-leaf
    input that requires grad is a UserWarning that torch hides from the output but that
    ``-W error`` turns into an InternalTorchDynamoError. A fresh cache, so it really traces."""
    from graphattn import compiled_grid_attention as cga
    torch._dynamo.reset()
    kernels = compile_kernels(cga._FUNCTIONS, 'aot_eager')
    monkeypatch.setattr(cga, '_KERNELS', kernels)
    torch.manual_seed(0)
    model = LGA2d(4, 6, num_layers=2, recompute=recompute, path='compiled')
    x = torch.randn(1, 4, 5, 6, requires_grad=True)
    model(x).sum().backward()
    traced = {name for name, kernel in kernels.items() if kernel._compiled is not None}
    assert x.grad is not None and traced == {'forward', 'backward'}
    torch._dynamo.reset()


@pytest.mark.parametrize('path', ['fused', 'compiled'])
def test_user_torch_compile(path):
    """A user's torch.compile over the module traces the checkpoints without graph
    breaks and computes the same values and gradients."""
    torch._dynamo.reset()
    base, twin = _twins({})
    x = torch.randn(1, 4, 5, 6, dtype=DT)
    assert torch._dynamo.explain(twin)(x).graph_break_count == 0
    torch._dynamo.reset()
    compiled = torch.compile(twin, backend='aot_eager', fullgraph=True)
    (v0, g0) = _step(base, x, path, extras=False)
    (v1, g1) = _step(compiled, x, path, extras=False)
    for a, b in zip(v0 + g0, v1 + g1):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch._dynamo.reset()


def test_flag_is_checked_and_shown_in_repr():
    with pytest.raises((TypeError, ValueError), match="'recompute'"):
        LGA2d(4, recompute='yes')
    assert repr(LGA2d(4, recompute=True)) == (
        'LGA2d(4, latent_channels=4, num_layers=3, recompute=True)')
    assert 'recompute' not in repr(LGA2d(4))

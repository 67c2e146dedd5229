"""How the compiled paths compile their kernels (graphattn/compiled_kernel.py)."""
import pytest
import torch
import torch._dynamo

from graphattn.compiled_kernel import RECOMPILE_LIMIT, CompiledKernel, _limit_name


def _limit() -> int:
    return getattr(torch._dynamo.config, _limit_name())


def _scale(x, name: str):
    return x * len(name)   # a string is a constant of the trace: one entry per value


def test_more_configurations_than_dynamos_default_limit():
    """Each Python constant is one cache entry of the same function; past Dynamo's default
    of 8 a ``fullgraph=True`` compile is a hard error, which a network with a few layer
    configurations can reach. The kernel raises the limit for its own calls only."""
    torch._dynamo.reset()
    kernel = CompiledKernel(_scale, backend='eager')
    x = torch.ones(3)
    for k in range(12):
        assert torch.equal(kernel(x, 'a' * k), x * k)
    assert _limit() < 12 <= RECOMPILE_LIMIT
    plain = torch.compile(_scale, backend='eager', fullgraph=True)   # the limit outside
    # Dynamo's 'recompile limit' error ('cache_size_limit reached' before torch 2.6)
    with pytest.raises(Exception, match='fullgraph|cache_size_limit'):
        for k in range(12, 24):
            plain(x, 'a' * k)
    torch._dynamo.reset()


def test_traced_into_a_users_compile_and_lazy():
    """Nothing compiles before the first call; inside a user's ``torch.compile`` the plain
    function is traced into their graph (no nested compile)."""
    torch._dynamo.reset()
    kernel = CompiledKernel(_scale, backend='eager')
    assert kernel._compiled is None
    outer = torch.compile(lambda x: kernel(x, 'abc') + 1, backend='eager', fullgraph=True)
    assert torch.equal(outer(torch.ones(2)), torch.full((2,), 4.0))
    assert kernel._compiled is None
    torch._dynamo.reset()


def test_the_users_limit_is_put_back_and_never_lowered():
    """The limit is raised around our calls only: put back after a call and after an error
    inside one, and a user's higher limit is kept during our calls. (The user's settings are
    made with config.patch: pytest's monkeypatch hides a Dynamo config entry on undo.)"""
    torch._dynamo.reset()
    config, name = torch._dynamo.config, _limit_name()
    default = _limit()
    seen = []

    def spy(x, name: str):
        return x * len(name)

    kernel = CompiledKernel(spy, backend='eager')
    with config.patch(name, 5):
        kernel(torch.ones(2), 'ab')
        assert _limit() == 5
        kernel._compiled = lambda *a: seen.append(_limit()) or 1 / 0
        with pytest.raises(ZeroDivisionError):
            kernel(torch.ones(2), 'ab')
        assert seen == [RECOMPILE_LIMIT] and _limit() == 5
    with config.patch(name, 10 * RECOMPILE_LIMIT):
        with pytest.raises(ZeroDivisionError):
            kernel(torch.ones(2), 'ab')
        assert seen[-1] == 10 * RECOMPILE_LIMIT
        assert _limit() == 10 * RECOMPILE_LIMIT
    assert _limit() == default
    torch._dynamo.reset()

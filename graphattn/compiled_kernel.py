"""How the library's own kernels are compiled (the layers' ``path='compiled'``).

:mod:`graphattn.compiled_grid_attention` and
:mod:`graphattn.compiled_neighbor_attention` write their loops as plain torch
functions; :class:`CompiledKernel` compiles one on first use (never at import
time) and runs it.
"""
from __future__ import annotations

import functools
from typing import Callable, Dict, Optional

import torch

__all__ = ['CompiledKernel', 'compile_kernels', 'RECOMPILE_LIMIT']

#: Cache entries allowed per kernel. Every static configuration of a kernel (offsets,
#: normalisation, fused ReLU, dtype, the first change of shape) is one more entry of the
#: same Python function, and Dynamo's default of 8 is a hard error under
#: ``fullgraph=True``: a network with a few layer configurations, float64 checks beside
#: float32 training, or autocast beside full precision passes it
#: (``tests/test_compiled_grid_attention.py`` did). Each entry is one small kernel, so the
#: only cost of a higher limit is compile time for configurations a program really runs.
RECOMPILE_LIMIT = 64


@functools.lru_cache(maxsize=None)
def _limit_name() -> str:
    # Dynamo's cache_size_limit became recompile_limit between torch 2.6 and 2.8 (2.4
    # and 2.6 know only the old name; 2.8, 2.11 and 2.13 have the new one).
    config = torch._dynamo.config
    return 'recompile_limit' if hasattr(config, 'recompile_limit') else 'cache_size_limit'


class CompiledKernel:
    """``fn`` compiled whole (``fullgraph=True``) on its first call.

    ``backend`` and ``dynamic`` are :func:`torch.compile`'s (the tests trace the
    same functions with ``'aot_eager'``, without inductor's C++ build). Inside a user's :func:`torch.compile` the plain function runs, so that it is
    traced into their graph (the branch is static there, and no global state is
    touched).
    """

    def __init__(self, fn: Callable, backend: str = 'inductor',
                 dynamic: Optional[bool] = None) -> None:
        self.fn, self.backend, self.dynamic = fn, backend, dynamic
        self._compiled: Optional[Callable] = None

    def __call__(self, *args):
        if torch.compiler.is_compiling():
            return self.fn(*args)
        # The kernel's autograd.Function is the autograd node of these tensors, so they
        # go in detached: Dynamo reads every input's .grad while tracing, which for a
        # non-leaf that requires grad is torch's "The .grad attribute of a Tensor that is
        # not a leaf Tensor" UserWarning (hidden by torch, an error under -W error).
        args = tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args)
        if self._compiled is None:
            self._compiled = torch.compile(self.fn, backend=self.backend, fullgraph=True,
                                           dynamic=self.dynamic)
        # Dynamo's limit is a process-wide setting: raised only around our own calls. Set
        # and put back by hand: config.patch costs about 20 us a call, four times this
        # (measured with torch 2.13 on the CPU), and a kernel runs per layer and pass.
        config, name = torch._dynamo.config, _limit_name()
        saved = getattr(config, name)
        setattr(config, name, max(saved, RECOMPILE_LIMIT))
        try:
            return self._compiled(*args)
        finally:
            setattr(config, name, saved)


def compile_kernels(functions: Dict[str, Callable], backend: str = 'inductor',
                    dynamic: Optional[bool] = None) -> Dict[str, CompiledKernel]:
    """A :class:`CompiledKernel` for each named function."""
    return {name: CompiledKernel(fn, backend, dynamic) for name, fn in functions.items()}

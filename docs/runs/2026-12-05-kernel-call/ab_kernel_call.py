"""A/B in one process: CompiledKernel.__call__ raising Dynamo's recompile limit through
torch._dynamo.config.patch (before) against setting and putting back the attribute (after), on
a small compiled LGA2d step (batch 32, 8x8, C = 64, 4 layers: the collage demo's block size).
Alternates the two 7 times, 50 forward + backward steps each; prints the medians.
Usage: OMP_NUM_THREADS=1 PYTHONPATH=. python docs/runs/2026-12-05-kernel-call/ab_kernel_call.py"""
import statistics
import time

import torch

from graphattn import LGA2d
from graphattn.compiled_kernel import RECOMPILE_LIMIT, CompiledKernel

torch.set_num_threads(1)
new_call = CompiledKernel.__call__


def old_call(self, *args):
    if torch.compiler.is_compiling():
        return self.fn(*args)
    args = tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args)
    if self._compiled is None:
        self._compiled = torch.compile(self.fn, backend=self.backend, fullgraph=True,
                                       dynamic=self.dynamic)
    with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
        return self._compiled(*args)


torch.manual_seed(0)
m = LGA2d(64, num_layers=4, path='compiled')
x = torch.randn(32, 64, 8, 8, requires_grad=True)


def step():
    m(x).sum().backward()


for _ in range(5):
    step()
res = {'config.patch (before)': [], 'set and put back (after)': []}
for rep in range(7):
    for name, call in zip(res, (old_call, new_call)):
        CompiledKernel.__call__ = call
        t = time.perf_counter()
        for _ in range(50):
            step()
        res[name].append((time.perf_counter() - t) / 50 * 1e3)
for k, v in res.items():
    print(f'{k}: {statistics.median(v):.3f} ms/step', [round(a, 3) for a in v])

# The overhead alone: one CompiledKernel call of a trivial function, both ways, interleaved.
kernel = CompiledKernel(lambda a: a + 1, backend='eager')
tiny = torch.ones(4)
over = {'config.patch (before)': [], 'set and put back (after)': []}
for rep in range(7):
    for name, call in zip(over, (old_call, new_call)):
        CompiledKernel.__call__ = call
        kernel(tiny)
        t = time.perf_counter()
        for _ in range(5000):
            kernel(tiny)
        over[name].append((time.perf_counter() - t) / 5000 * 1e6)
for k, v in over.items():
    print(f'one call of a trivial kernel, {k}: {statistics.median(v):.1f} us', [round(a, 1) for a in v])

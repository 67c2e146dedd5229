"""The one prepared device check of issue 22: the CUDA tests, then the benchmark rows.

On a lent GPU machine (bare ``python3`` with torch, PyG, triton, pytest; nothing
installed; our packages from ``PYTHONPATH``), in this order and within
``--budget`` seconds (default 360: the issue's 6 minutes; a case already started
finishes past it):

1. the environment: torch, CUDA, the GPU, and which optional packages import;
2. ``pytest tests/test_cuda_parity.py --device cuda`` in a subprocess (at most
   ``--test-budget`` seconds, default 200, mostly inductor compiles: the compiled grid
   kernel's first call took 14.7 s on the H200 of 2026-11-30, in
   docs/runs/2026-11-30-gpu/early_check.log; its log is ``tests.log``);
3. the rows of the issue's table, each with its rivals in this same process:
   LGA2d (C = 64, L = 4, batch 8; 256² and 512²: ``'auto'`` and ``'compiled'``, each
   also with ``recompute=True``, the depthwise-separable stack, the unfold LGA), LGA on point clouds (100k and 1M
   points, k = 16, C = 64: the table kernel, eager and compiled
   (``path='compiled'``, :mod:`graphattn.compiled_neighbor_attention`), eager with its
   weighted sum as CSR products (the CPU's form, cuSPARSE there), message passing, PyG's
   ``PointTransformerConv`` and ``GATv2Conv`` on the same graph), LatentGNN2d
   (128², 256², batch 8: fused, the authors' bmm code, a non-local block), the
   kNN graph of 1M points (``graphs.knn_graph``'s torch engine against chunked
   ``torch.cdist`` + ``topk``) and one training step of the demo's image network
   (``examples/models.py``'s SegNet at the demo's batch 32 of 64² images) with each
   context block against the base alone; last, the grid kernel alone (``grid_kernel.py``:
   forward + backward with the backward's ``'fused'`` and ``'split'`` schedules and with
   the eager kernel, then each compiled backward alone).

Forward + backward per case, median of at most ``--repeats`` timed passes after one
warm-up (fewer where one more would take the case over ``--case-budget`` s), the
device synchronised around each; peak memory is ``torch.cuda.max_memory_allocated``
during the timed passes above what was allocated before the case (the module, its
inputs and one step). The warm-up is left out of it: a compiled case's first call
compiles and autotunes, and inductor's autotuning clones the buffers a kernel writes,
which is not the memory a training step needs; where that first call peaked more than
10% higher, the row's note says by how much. A case that runs out of memory or time is
a row with a note, never a crash; ``gpu_check.json`` and ``gpu_check.md`` are
rewritten after every row, so a run stopped from outside still leaves what it did.

The call for a session with a device: the ``run`` tool with ``timeout_s=540`` (the
check's 360 s, the interpreter's start, and room for a last long case) and this
``command`` (docs/performance.md, "GPU check", has the same)::

    set -o pipefail; nvidia-smi -L; PYTHONUNBUFFERED=1 ./tasks.sh gpu 2>&1 | tee $OUT/gpu_check.log

Rehearsal on the CPU (what ``tests/test_gpu_check.py`` runs in CI): ``--dry-run``
takes one tiny size per row on the CPU and one timed pass, runs one of the CUDA
tests (with ``--device cpu``), and runs the compiled grid kernel through
``aot_eager`` (inductor's C++ build takes a minute per shape on a CPU); every
row, ratio, target and file is made as on the GPU.
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import operator
import os
import platform
import re
import subprocess
import sys
import time
import traceback
from typing import Callable, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT, os.path.join(ROOT, 'examples')]

import torch  # noqa: E402

from common import median_time  # noqa: E402
from layers import RECOMPUTE  # noqa: E402  (an impl name ending: recompute=True)

#: Sizes of the rows: the issue's on the GPU, tiny ones for the rehearsal.
SIZES = {
    'gpu': dict(lga=[256, 512], lga_batch=8, points=[100_000, 1_000_000], latent=[128, 256],
                latent_batch=8, knn=1_000_000, train_batch=32, train_size=64),
    'dry': dict(lga=[12], lga_batch=2, points=[300], latent=[8], latent_batch=2, knn=500,
                train_batch=2, train_size=32),
}
CHANNELS, LAYERS, K = 64, 4, 16
LGA_LABELS = {'fused': 'auto (= fused, eager)', 'fused' + RECOMPUTE: 'auto, recompute=True',
              'compiled' + RECOMPUTE: 'compiled, recompute=True'}
#: The one CUDA test the dry run runs (on the CPU): the command, the --device option and
#: the parsing of pytest's summary are rehearsed; CI runs the whole module anyway.
DRY_TEST = 'test_int32_table_and_an_empty_cloud'
OPTIONAL = ('numpy', 'scipy', 'networkx', 'pytest', 'hypothesis', 'triton', 'torch_geometric',
            'torch_scatter', 'torch_sparse', 'torch_cluster', 'pyg_lib')


class Budget:
    """Wall-clock budget of the whole check: each case runs only while time is left."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds
        self.seconds = seconds

    def left(self) -> float:
        return self.end - time.monotonic()


class Report:
    """Rows and notes, written as JSON and markdown after every row."""

    def __init__(self, out: str, info: Dict[str, object]):
        self.out, self.info = out, info
        self.rows: List[Dict[str, object]] = []
        self.targets: List[Dict[str, object]] = []
        self.tests: Dict[str, object] = {}
        os.makedirs(out, exist_ok=True)

    def add(self, row: Dict[str, object]) -> None:
        self.rows.append(row)
        print('  ' + ', '.join(f'{k}={v}' for k, v in row.items()), flush=True)
        self.write()

    def write(self) -> None:
        data = {'info': self.info, 'tests': self.tests, 'rows': self.rows,
                'targets': self.targets}
        with open(os.path.join(self.out, 'gpu_check.json'), 'w') as f:
            json.dump(data, f, indent=2)
        with open(os.path.join(self.out, 'gpu_check.md'), 'w') as f:
            f.write(markdown(data))


def markdown(data: Dict[str, object]) -> str:
    info = data['info']
    lines = [f"# Device check, {info['date']} ({info['device_name']})", '',
             f"torch {info['torch']}, CUDA {info['cuda']}, torch-geometric "
             f"{info['torch_geometric']}, triton {info['triton']}; mode: {info['mode']}.", '']
    if info.get('missing'):
        lines += [f"Not importable there: {', '.join(info['missing'])}.", '']
    tests = data['tests']
    if tests:
        lines += [f"CUDA tests (`{tests.get('command', '')}`): {tests.get('summary', '')} "
                  f"in {tests.get('seconds', '?')} s.", '']
    keys = ['row', 'size', 'impl', 'ms', 'peak MiB', 'time / ours', 'memory / ours', 'note']
    lines += ['| ' + ' | '.join(keys) + ' |', '|' + '---|' * len(keys)]
    for row in data['rows']:
        lines.append('| ' + ' | '.join(str(row.get(k, '')) for k in keys) + ' |')
    if data['targets']:
        lines += ['', '| row | target | measured | met |', '|---|---|---|---|']
        for t in data['targets']:
            lines.append(f"| {t['row']} | {t['target']} | {t['measured']} | {t['met']} |")
    return '\n'.join(lines) + '\n'


# ------------------------------------------------------------------ measuring --
def _sync(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def measure(make: Callable[[], Callable[[], object]], device: torch.device, budget: Budget,
            repeats: int, case_budget: float, warmup: int = 1) -> Dict[str, object]:
    """``make()`` builds a case and returns its step (forward + backward); returns
    ``{'ms', 'peak MiB'}`` or ``{'note'}`` (out of memory, an error, no time left)."""
    if budget.left() <= 0:
        return {'note': f'not run: the check\'s {budget.seconds:.0f} s were spent'}
    _free()
    cuda = device.type == 'cuda'
    try:
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        step = make()
        for _ in range(warmup):
            step()
        _sync(device)()
        first = (torch.cuda.max_memory_allocated() - before) / 2 ** 20 if cuda else None
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        seconds = median_time(step, repeats=repeats, warmup=0, sync=_sync(device),
                              budget=case_budget)
        peak = (torch.cuda.max_memory_allocated() - before) / 2 ** 20 if cuda else None
    except torch.cuda.OutOfMemoryError:
        return {'note': 'out of memory'}
    except Exception as error:  # noqa: BLE001 - a failing case is a row, not the end
        return {'note': f'{type(error).__name__}: {str(error).splitlines()[0][:120]}'}
    finally:
        step = None  # noqa: F841 - drop the case's tensors before the next one
        _free()
    return case_result(seconds, peak, first)


def case_result(seconds: float, peak: Optional[float], first: Optional[float]
                ) -> Dict[str, object]:
    """A measured row's cells; ``peak`` (timed passes) and ``first`` (the build and
    the warm-up) in MiB, None off CUDA. A first call more than 10% above the timed
    peak is noted, not counted."""
    ms = 1000 * seconds
    result = {'ms': round(ms, 2 if ms < 100 else 1),
              'peak MiB': '' if peak is None else round(peak, 1)}
    if peak is not None and first is not None and first > 1.1 * peak:
        result['note'] = f'first call (compile, autotuning) peaked at {first:,.1f} MiB'
    return result


def _backward_step(module: torch.nn.Module, forward: Callable[[], torch.Tensor],
                   leaves: List[torch.Tensor]) -> Callable[[], None]:
    params = list(module.parameters())

    def step():
        forward().float().sum().backward()
        for t in params + leaves:
            t.grad = None
    return step


def ratios(rows: List[Dict[str, object]], ours: str) -> None:
    """``time / ours`` and ``memory / ours`` within each row group and size."""
    base = {(r['row'], r['size']): r for r in rows if r['impl'] == ours and 'ms' in r}
    for r in rows:
        b = base.get((r['row'], r['size']))
        if b is None or 'ms' not in r or r is b:
            continue
        r['time / ours'] = round(r['ms'] / b['ms'], 2)
        if r.get('peak MiB') not in ('', None) and b.get('peak MiB'):
            r['memory / ours'] = round(r['peak MiB'] / b['peak MiB'], 2)


def _value(rows, row, size, impl, key='ms'):
    for r in rows:
        if (r['row'], r['size'], r['impl']) == (row, size, impl) and r.get(key) not in ('', None):
            return r[key]
    return None


def target(report: Report, row: str, text: str, measured: Optional[float], ok: bool,
           unit: str = '×') -> None:
    report.targets.append({'row': row, 'target': text,
                           'measured': 'not measured' if measured is None
                           else f'{measured:.2f}{unit}',
                           'met': '' if measured is None else ('yes' if ok else 'no')})


def ratio_target(report: Report, row: str, text: str, num: Optional[float],
                 den: Optional[float], op: str, bound: float) -> None:
    """A :func:`target` on the ratio ``num / den`` (not measured when either is missing)."""
    r = num / den if num and den else None
    target(report, row, text, r, r is not None and _COMPARE[op](r, bound))


_COMPARE = {'<': operator.lt, '<=': operator.le, '>=': operator.ge, '>': operator.gt}


# ----------------------------------------------------------------------- rows --
def lga_rows(report, sizes, device, budget, args) -> None:
    """LGA2d's paths against the separable stack and the unfold LGA (layers.py)."""
    import layers
    layers.BATCH = sizes['lga_batch']
    name = 'LGA2d'
    for size in sizes['lga']:
        for impl in ('fused', 'compiled', 'fused' + RECOMPUTE, 'compiled' + RECOMPUTE,
                     'separable', 'unfold'):
            def make(impl=impl, size=size):
                torch.manual_seed(0)
                module, x = layers.build('lga', impl, size, str(device))
                return _backward_step(module, lambda: module(x), [x])
            label = LGA_LABELS.get(impl, impl)
            report.add({'row': name, 'size': f'{size}²×{layers.BATCH}', 'impl': label,
                        **measure(make, device, budget, args.repeats, args.case_budget)})
    rows = [r for r in report.rows if r['row'] == name]
    for size in sizes['lga']:
        s = f'{size}²×{layers.BATCH}'
        comp, sep = _value(rows, name, s, 'compiled'), _value(rows, name, s, 'separable')
        eager = _value(rows, name, s, 'auto (= fused, eager)')
        mem_c = _value(rows, name, s, 'compiled', 'peak MiB')
        mem_u = _value(rows, name, s, 'unfold', 'peak MiB')
        row = f'{name} {s}'
        ratio_target(report, row, "'compiled' ≤ 1.0× the separable stack", comp, sep, '<=', 1.0)
        ratio_target(report, row, "'compiled' ≥ 3× faster than eager", eager, comp, '>=', 3.0)
        ratio_target(report, row, 'peak memory ≥ 5× below unfold', mem_u, mem_c, '>=', 5.0)
        for impl in ('fused' + RECOMPUTE, 'compiled' + RECOMPUTE):
            label = LGA_LABELS[impl]
            ratio_target(report, row, f"{label}: peak memory ≥ 5× below unfold", mem_u,
                         _value(rows, name, s, label, 'peak MiB'), '>=', 5.0)


def kernel_rows(report, sizes, device, budget, args) -> None:
    """The grid kernel alone (grid_kernel.py): forward + backward with the backward's
    'fused' and 'split' schedules and the eager kernel, then each compiled backward alone
    (through one forward's graph, kept)."""
    import grid_kernel
    name, b = 'grid kernel', sizes['lga_batch']
    cases = [(impl, 'step') for impl in grid_kernel.IMPLS] + [
        ('compiled, fused', 'backward'), ('compiled, split', 'backward')]
    for size in sizes['lga']:
        s = f'{size}²×{b}'
        for impl, part in cases:
            def make(impl=impl, part=part, size=size):
                return grid_kernel.build(impl, size, b, CHANNELS, str(device))[part]
            label = impl if part == 'step' else f'{impl}, backward only'
            report.add({'row': name, 'size': s, 'impl': label,
                        **measure(make, device, budget, args.repeats, args.case_budget)})
        rows = [r for r in report.rows if r['row'] == name and r['size'] == s]
        fused, split = (_value(rows, name, s, f'compiled, {k}, backward only')
                        for k in ('fused', 'split'))
        ratio_target(report, f'{name} {s}', "backward: 'split' / 'fused' (keep 'split' if < 1)",
                     split, fused, '<', 1.0)


def _cloud(n: int, device: torch.device):
    """A uniform cloud, its kNN table (k = 16, self-loops; built before any timing: by
    scipy's tree on the host's cores, or where scipy is absent, as it may be on a bare
    device image, by the torch engine on the device: on the host's CPU that is a
    brute-force search, hours at 1M points) and its edge index."""
    import graphs
    g = torch.Generator().manual_seed(n)
    pos = torch.rand(n, 3, generator=g)
    if 'scipy' in graphs.available_engines():
        table, _ = graphs.nearest_neighbors(pos, K, loop=True, num_workers=-1, engine='scipy')
        table, pos = table.to(device), pos.to(device)
    else:
        pos = pos.to(device)
        table, _ = graphs.nearest_neighbors(pos, K, loop=True, engine='torch')
    return pos, table, graphs.neighbors_to_edge_index(table)


def _with_sparse_products(device: torch.device, step: Callable[[], None]) -> Callable[[], None]:
    """``step`` with the table's weighted sum as CSR products on ``device`` too (cuSPARSE on
    a GPU; the CPU's default), set for each call only."""
    from graphattn import neighbor_attention

    def run():
        saved = neighbor_attention.SPARSE_DEVICES
        neighbor_attention.SPARSE_DEVICES = ('cpu', device.type)
        try:
            step()
        finally:
            neighbor_attention.SPARSE_DEVICES = saved
    return run


def point_rows(report, sizes, device, budget, args) -> None:
    from torch_geometric.nn import GATv2Conv, PointTransformerConv

    from graphattn import LGA
    name = 'LGA on points'
    for n in sizes['points']:
        if budget.left() <= 0:
            pos = table = edge_index = None
        else:
            pos, table, edge_index = _cloud(n, device)
        for impl in ('table', 'table, compiled', 'table, CSR products', 'message_passing',
                     'PointTransformerConv', 'GATv2Conv'):
            def make(impl=impl):
                torch.manual_seed(0)
                x = torch.randn(n, CHANNELS, device=device, requires_grad=True)
                if impl == 'PointTransformerConv':
                    m = PointTransformerConv(CHANNELS, CHANNELS).to(device)
                    return _backward_step(m, lambda: m(x, pos, edge_index), [x])
                if impl == 'GATv2Conv':
                    m = GATv2Conv(CHANNELS, CHANNELS).to(device)
                    return _backward_step(m, lambda: m(x, edge_index), [x])
                m = LGA(CHANNELS, CHANNELS, num_layers=2, edge_dim=3,
                        edge_encoder='mlp').to(device)
                if impl == 'table, CSR products':
                    return _with_sparse_products(device, _backward_step(
                        m, lambda: m(x, pos=pos, neighbors=table), [x]))
                if impl.startswith('table'):   # the compile is in measure's warm-up pass
                    path = 'compiled' if impl == 'table, compiled' else 'auto'
                    return _backward_step(
                        m, lambda: m(x, pos=pos, neighbors=table, path=path), [x])
                return _backward_step(m, lambda: m(x, edge_index, pos=pos), [x])
            report.add({'row': name, 'size': f'{n:,} points', 'impl': impl,
                        **measure(make, device, budget, args.repeats, args.case_budget)})
        pos = table = edge_index = None
    rows = [r for r in report.rows if r['row'] == name]
    for n in sizes['points']:
        s = f'{n:,} points'
        t, mp = _value(rows, name, s, 'table'), _value(rows, name, s, 'message_passing')
        pt = _value(rows, name, s, 'PointTransformerConv')
        mt, mm = (_value(rows, name, s, i, 'peak MiB') for i in ('table', 'message_passing'))
        tc = _value(rows, name, s, 'table, compiled')
        mc = _value(rows, name, s, 'table, compiled', 'peak MiB')
        row = f'{name} {s}'
        ratio_target(report, row, 'table ≥ 3× faster than message passing', mp, t, '>=', 3.0)
        ratio_target(report, row, 'table ≥ 5× less peak memory than message passing', mm, mt,
                     '>=', 5.0)
        ratio_target(report, row, 'table faster than PointTransformerConv (its time / ours > 1)',
                     pt, t, '>', 1.0)
        ratio_target(report, row, 'table, compiled ≥ 3× faster than message passing', mp, tc,
                     '>=', 3.0)
        ratio_target(report, row, 'table, compiled ≥ 5× less peak memory than message passing',
                     mm, mc, '>=', 5.0)
        ratio_target(report, row, "table, CSR products / table (< 1: make CSR the device's "
                     "eager path)", _value(rows, name, s, 'table, CSR products'), t, '<', 1.0)


def latent_rows(report, sizes, device, budget, args) -> None:
    import layers
    layers.BATCH = sizes['latent_batch']
    name = 'LatentGNN2d'
    memory = torch.cuda.get_device_properties(device).total_memory if device.type == 'cuda' \
        else 16 << 30
    for size in sizes['latent']:
        for impl in ('fused', 'authors', 'nonlocal'):
            s = f'{size}²×{layers.BATCH}'
            need = layers.planned_bytes('latentgnn', impl, size)
            if need > 0.8 * memory:
                report.add({'row': name, 'size': s, 'impl': impl,
                            'note': f'not run: its N x N attention needs '
                                    f'{need / 2 ** 30:.0f} GiB'})
                continue

            def make(impl=impl, size=size):
                torch.manual_seed(0)
                module, x = layers.build('latentgnn', impl, size, str(device))
                return _backward_step(module, lambda: module(x), [x])
            report.add({'row': name, 'size': s, 'impl': impl,
                        **measure(make, device, budget, args.repeats, args.case_budget)})
    rows = [r for r in report.rows if r['row'] == name]
    for size in sizes['latent']:
        s = f'{size}²×{layers.BATCH}'
        f, a = _value(rows, name, s, 'fused'), _value(rows, name, s, 'authors')
        ratio_target(report, f'{name} {s}', "fused ≤ 1.0× the authors' bmm code", f, a, '<=',
                     1.0)


def knn_rows(report, sizes, device, budget, args) -> None:
    import graphs
    import knn  # the chunked cdist + topk of the CPU benchmark, on any device
    n = sizes['knn']
    name = 'kNN graph'
    g = torch.Generator().manual_seed(0)
    pos = torch.rand(n, 3, generator=g).to(device)
    warm = pos[:1000]
    graphs.knn_graph(warm, K, engine='torch')   # kernels and allocator warm, untimed
    knn.brute_force(warm, warm, K)
    for impl, fn in (('graphs.knn_graph (torch engine)',
                      lambda: graphs.knn_graph(pos, K, engine='torch')),
                     ('torch.cdist + topk, chunked', lambda: knn.brute_force(pos, pos, K))):
        def make(fn=fn):
            return fn
        # One pass each, no warm-up at this size (the small call above warmed the
        # kernels): a pass over 1M points is seconds of chunked searches.
        result = measure(make, device, budget, 1, args.case_budget, warmup=0)
        report.add({'row': name, 'size': f'{n:,} points, k={K}', 'impl': impl, **result})
    rows = [r for r in report.rows if r['row'] == name]
    s = f'{n:,} points, k={K}'
    ours = _value(rows, name, s, 'graphs.knn_graph (torch engine)')
    rival = _value(rows, name, s, 'torch.cdist + topk, chunked')
    target(report, f'{name} {s}', 'state the ratio (rival time / ours)',
           rival / ours if ours and rival else None, True)


def train_rows(report, sizes, device, budget, args) -> None:
    import torch.nn.functional as F

    from graphattn import LGALoss
    from models import SegNet
    name = 'demo training step'
    b, size = sizes['train_batch'], sizes['train_size']
    for context in ('none', 'lga', 'lga+loss', 'latentgnn', 'nonlocal'):
        def make(context=context):
            torch.manual_seed(0)
            model = SegNet(context).to(device).train()
            opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
            x = torch.rand(b, 1, size, size, device=device)
            y = torch.randint(0, 11, (b, size, size), device=device)
            loss_fn = LGALoss() if context == 'lga+loss' else None

            def step():
                if loss_fn is not None:
                    logits, latent = model(x, return_latent=True)
                    loss = F.cross_entropy(logits, y) + 0.1 * loss_fn(latent, y)
                else:
                    loss = F.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            return step
        report.add({'row': name, 'size': f'batch {b}, {size}²', 'impl': context,
                    **measure(make, device, budget, args.repeats, args.case_budget)})
    ratios_of = [r for r in report.rows if r['row'] == name]
    base = _value(ratios_of, name, f'batch {b}, {size}²', 'none')
    for context in ('lga', 'lga+loss', 'latentgnn', 'nonlocal'):
        t = _value(ratios_of, name, f'batch {b}, {size}²', context)
        target(report, f'{name} base + {context}', 'state the ratio (step time / base alone)',
               t / base if t and base else None, True)


GROUPS = {'lga': lga_rows, 'points': point_rows, 'latentgnn': latent_rows, 'knn': knn_rows,
          'train': train_rows, 'kernel': kernel_rows}
OURS = {'LGA2d': 'compiled', 'LGA on points': 'table', 'LatentGNN2d': 'fused',
        'kNN graph': 'graphs.knn_graph (torch engine)', 'demo training step': 'none',
        'grid kernel': 'compiled, fused'}


# ---------------------------------------------------------------------- steps --
def environment(device: torch.device, dry: bool) -> Dict[str, object]:
    found = {m: importlib.util.find_spec(m) is not None for m in OPTIONAL}

    def version(module: str) -> str:
        return getattr(__import__(module), '__version__', '?') if found[module] else 'absent'
    return {
        'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
        'mode': 'dry run (CPU, tiny sizes)' if dry else 'device check',
        'device_name': torch.cuda.get_device_name(device) if device.type == 'cuda'
        else f'CPU ({platform.processor() or platform.machine()})',
        'torch': torch.__version__, 'cuda': torch.version.cuda,
        'torch_geometric': version('torch_geometric'), 'triton': version('triton'),
        'python': sys.version.split()[0], 'cpu_count': os.cpu_count(),
        'packages': found, 'missing': [m for m, ok in found.items() if not ok],
    }


def run_tests(report: Report, device: torch.device, dry: bool, seconds: float) -> None:
    """The CUDA tests in a subprocess, their log in ``tests.log``; the summary line kept."""
    # Each test's time on its line (pytest >= 8.4; older ones ignore the style) and the
    # slowest at the end: inductor's compiles dominate on a GPU, and a run cut by the
    # budget should still say where its time went.
    cmd = [sys.executable, '-m', 'pytest', 'tests/test_cuda_parity.py', '-p', 'no:cacheprovider',
           '-rfEs', '--device', device.type, '-v', '-o', 'console_output_style=times',
           '--durations=25'] + (['-k', DRY_TEST] if dry else [])
    report.tests['command'] = ' '.join(['python3', *cmd[1:]])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + ([os.environ['PYTHONPATH']] if os.environ.get('PYTHONPATH') else [])))
    log = os.path.join(report.out, 'tests.log')
    start = time.monotonic()
    with open(log, 'w') as f:
        try:
            done = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env,
                                  timeout=max(seconds, 1))
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = 'timeout'
    report.tests['seconds'] = round(time.monotonic() - start, 1)
    with open(log) as f:
        text = f.read()
    last = [ln for ln in text.splitlines() if re.search(r'\d+ (passed|failed|error|skipped|'
                                                        r'tests? collected)', ln)]
    summary = last[-1].strip(' =') if last else 'no summary line'
    if code == 'timeout':
        done_n = len(re.findall(r' (PASSED|FAILED|SKIPPED|ERROR)', text))
        summary = f'stopped after {seconds:.0f} s with {done_n} tests done'
    report.tests.update({'exit_code': code, 'summary': summary})
    print(f'tests: {summary} ({report.tests["seconds"]} s; log {log})', flush=True)
    report.write()


def run_group(report: Report, group: str, sizes, device: torch.device, budget: Budget,
              args) -> None:
    """One row group; an error outside its cases (a missing module, a graph that cannot be
    built) is a row with a note and the traceback in the log, and the next group runs: a
    lent device's minutes are too few to lose the rest of the check to one group."""
    try:
        GROUPS[group](report, sizes, device, budget, args)
    except Exception as error:  # noqa: BLE001 - one group's failure is a row, not the end
        traceback.print_exc()
        report.add({'row': group, 'size': '', 'impl': '',
                    'note': f'group stopped: {type(error).__name__}: '
                            f'{str(error).splitlines()[0][:160] if str(error) else ""}'})
        _free()


def _aot_eager_compiled_kernel() -> None:
    """The dry run's ``path='compiled'`` (grid and table): the same functions through
    ``aot_eager``."""
    from graphattn import compiled_grid_attention, compiled_neighbor_attention
    from graphattn.compiled_kernel import compile_kernels
    for kernel in (compiled_grid_attention, compiled_neighbor_attention):
        kernel._KERNELS = compile_kernels(kernel._FUNCTIONS, 'aot_eager')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=os.environ.get('OUT') or
                        os.path.join(ROOT, 'benchmarks', 'results', 'gpu'),
                        help='folder of gpu_check.json, gpu_check.md and tests.log '
                             '(default: $OUT, else benchmarks/results/gpu)')
    parser.add_argument('--dry-run', action='store_true',
                        help='rehearse on the CPU: tiny sizes, one pass, one of the tests')
    parser.add_argument('--budget', type=float, default=360.0,
                        help='seconds for the whole check (tests and rows)')
    parser.add_argument('--test-budget', type=float, default=200.0,
                        help='seconds at most for the CUDA tests')
    parser.add_argument('--repeats', type=int, default=5, help='timed passes per case, at most')
    parser.add_argument('--case-budget', type=float, default=3.0,
                        help='seconds of timed passes per case before repeats are cut')
    parser.add_argument('--groups', nargs='+', default=list(GROUPS), choices=list(GROUPS),
                        help='row groups to run, in this order')
    parser.add_argument('--skip-tests', action='store_true')
    args = parser.parse_args(argv)
    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        print(f'gpu_check: torch.cuda.is_available() is False (torch {torch.__version__}, '
              f'CUDA {torch.version.cuda}); use --dry-run to rehearse on the CPU',
              file=sys.stderr)
        return 2
    device = torch.device('cpu' if dry else 'cuda')
    if dry:
        torch.set_num_threads(1)
        _aot_eager_compiled_kernel()
        args.repeats = 1
    budget = Budget(args.budget)
    report = Report(args.out, environment(device, dry))
    print(f"gpu_check: {report.info['mode']} on {report.info['device_name']}; missing: "
          f"{report.info['missing'] or 'none'}", flush=True)
    if not args.skip_tests:
        run_tests(report, device, dry, min(args.test_budget, budget.left()))
    sizes = SIZES['dry' if dry else 'gpu']
    for group in args.groups:
        print(f'rows: {group} ({budget.left():.0f} s left)', flush=True)
        run_group(report, group, sizes, device, budget, args)
        for row, ours in OURS.items():
            ratios([r for r in report.rows if r['row'] == row], ours)
        report.write()
    print(f"wrote {os.path.join(args.out, 'gpu_check.md')} and gpu_check.json", flush=True)
    failed = report.tests.get('exit_code') not in (None, 0)
    stopped = any(str(r.get('note', '')).startswith('group stopped') for r in report.rows)
    return 1 if failed or stopped else 0


if __name__ == '__main__':
    sys.exit(main())

"""Forward+backward time and peak memory of the 2-D modules against their peers.

Each case runs in a fresh subprocess (so its peak memory is its own), once per
allocator configuration (``--allocs``; see :func:`common.allocator_env`):
``default`` (glibc malloc as it comes), ``kept`` (glibc with the three
``MALLOC_*_`` thresholds at 1 GiB, so freed tensors stay in the heap) and
``jemalloc`` (``LD_PRELOAD``; skipped with a note where the library is absent).
In each, the module and input are built, one untimed forward+backward warms up,
then the median of ``--repeats`` timed passes is taken (fewer where one more
would take the timed total over ``--budget`` seconds; at least one). Peak
memory on the CPU is the process's high-water RSS minus its RSS just before the
first pass; on CUDA (``--device cuda``) it is ``torch.cuda.max_memory_allocated``
minus the memory allocated before the first pass, timing synchronises the device
around each pass, and the JSON is written as ``<suite>-cuda.json`` with the
GPU's name.

Suites:
* ``lga``: every path that LGA2d accepts (:func:`lga_paths`: today ``fused``,
  ``compiled`` and ``message_passing``; a new value of its ``path=`` argument is
  picked up without a change here), the kernel paths again with
  ``recompute=True`` (``fused-recompute``, ``compiled-recompute``: each layer
  recomputed in the backward pass, keeping only its input), a depthwise-separable 3x3 convolution stack of the
  same depth and width (``separable``: the cheap local-context baseline), a
  naive ``F.unfold`` implementation of LGA's maths (``unfold``) and a plain
  copy of the layer's input (``copy``: read + write of B*C*H*W floats, the
  memory-bandwidth floor of one layer); C = 64, L = 4, batch 2. LGA2d is the
  plain stack (``residual=False, norm='none'``, the function the unfold
  baseline computes) unless ``--stack default`` asks for its default
  pre-norm residual stack (the baselines are the same either way).
* ``latentgnn``: LatentGNN2d fused path, its message-passing path, the authors'
  computation as batched matrix products (written here from the paper's
  equations, laid out as in their code) and a non-local block (embedded
  Gaussian); C = 256, d = 100, channel_stride 4, batch 2. Where the non-local
  block's N x N attention would not fit, the table says how much it needs.

Tables: every case with its ratios against ours (``time / ours``) and against
the separable stack (``time / separable``) within the same size and allocator;
a side-by-side table (one row per size and implementation, one column per
allocator); and per-4x-pixels scaling ratios (128->256, 256->512, and the
geometric mean per 4x over 128->512).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # the graphattn of this checkout, installed or not
from common import (ALLOCATORS, allocator_env, allocator_in_use,  # noqa: E402
                    check_device, current_rss, geometric_mean, median_time, print_table,
                    run_case_in_subprocess, write_json)


# ---------------------------------------------------------------- baselines --
class UnfoldLGA(nn.Module):
    """LGA's maths, naively: unfold the 3x3 neighbourhoods (a 9x copy of each layer)."""

    def __init__(self, channels: int, num_layers: int):
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, 1)
        self.logits = nn.ModuleList(nn.Conv2d(channels, 9, 1) for _ in range(num_layers))
        self.values = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        ones = torch.ones(1, 1, h, w, dtype=x.dtype, device=x.device)
        inside = F.unfold(ones, 3, padding=1).view(1, 9, h, w)
        hid = self.proj(x)
        for logit, value in zip(self.logits, self.values):
            alpha = torch.softmax(logit(hid).masked_fill(inside == 0, float('-inf')), dim=1)
            patches = F.unfold(value(hid), 3, padding=1).view(b, c, 9, h, w)
            hid = torch.relu((patches * alpha.unsqueeze(1)).sum(2))
        return torch.cat([x, hid], dim=1)

class SeparableStack(nn.Module):
    """The cheap local-context baseline, as deep and wide as LGA2d: a 1x1 input
    projection, then per layer a depthwise 3x3, a 1x1 and a ReLU; the output is
    concatenated with the input, as LGA2d's is."""

    def __init__(self, channels: int, num_layers: int):
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, 1)
        self.depthwise = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
                                       for _ in range(num_layers))
        self.pointwise = nn.ModuleList(nn.Conv2d(channels, channels, 1)
                                       for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hid = self.proj(x)
        for depthwise, pointwise in zip(self.depthwise, self.pointwise):
            hid = torch.relu(pointwise(depthwise(hid)))
        return torch.cat([x, hid], dim=1)


class AuthorsLatentGNN(nn.Module):
    """LatentGNN (asymmetric, K = 1) as the authors compute it: bmm over (B, d, N)."""

    def __init__(self, channels: int, latent: int, stride: int):
        super().__init__()
        inter = channels // stride
        block = lambda cin, cout: nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False),  # noqa: E731
                                                nn.BatchNorm2d(cout))
        self.down_v, self.down_l = block(channels, inter), block(channels, inter)
        self.psi_v = nn.Sequential(block(inter, latent), nn.ReLU())
        self.psi_l = nn.Sequential(block(inter, latent), nn.ReLU())
        self.up = block(inter, channels)
        self.gamma = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        xv = F.normalize(self.down_v(x), dim=1)
        xl = F.normalize(self.down_l(x), dim=1)
        psi_v = F.normalize(self.psi_v(xv).flatten(2), dim=2)              # (B, d, N)
        psi_l = F.normalize(self.psi_l(xl).flatten(2), dim=1)              # (B, d, N)
        z = torch.bmm(psi_v, xv.flatten(2).transpose(1, 2))                # (B, d, C')
        zn = F.normalize(z, dim=-1)
        z = torch.bmm(torch.softmax(torch.bmm(zn, zn.transpose(1, 2)), -1), z)
        y = torch.bmm(z.transpose(1, 2), psi_l).view(b, -1, h, w)          # (B, C', H, W)
        return x + self.gamma * self.up(y)


class NonLocal2d(nn.Module):
    """Non-local block, embedded Gaussian: an N x N softmax attention."""

    def __init__(self, channels: int):
        super().__init__()
        inter = channels // 2
        self.theta, self.phi, self.g = (nn.Conv2d(channels, inter, 1) for _ in range(3))
        self.out = nn.Sequential(nn.Conv2d(inter, channels, 1), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q = self.theta(x).flatten(2).transpose(1, 2)
        attn = torch.softmax(q @ self.phi(x).flatten(2), dim=-1)
        y = (attn @ self.g(x).flatten(2).transpose(1, 2)).transpose(1, 2)
        return x + self.out(y.reshape(b, -1, h, w))


# -------------------------------------------------------------------- cases --
LGA_CHANNELS, LGA_LAYERS, BATCH = 64, 4, 2
CHANNELS_LAST = False  # --channels-last: the LGA inputs in torch.channels_last memory
STACK = 'plain'  # --stack: LGA2d's plain stack (the unfold baseline's function) or 'default'
STACKS = {'plain': dict(residual=False, norm='none'), 'default': {}}
RECOMPUTE = '-recompute'  # an LGA impl name ending so runs that path with recompute=True
LGA_BASELINES = ['separable', 'unfold', 'copy']
LATENT_IMPLS = ['fused', 'message_passing', 'authors', 'nonlocal']


def lga_paths() -> List[str]:
    """Every value of LGA2d's ``path=`` (but ``'auto'``) that it accepts, ours first:
    ``fused``, any new path, then ``message_passing``. Read from the library, so a
    path added there (e.g. ``'compiled'``) is benchmarked without a change here."""
    from graphattn import LGA2d
    from graphattn._checks import PATHS
    candidates = ['fused', 'compiled', *PATHS, 'message_passing']
    order = list(dict.fromkeys(p for p in candidates if p not in ('auto', 'message_passing')))
    accepted = []
    for path in order + ['message_passing']:
        try:
            LGA2d(4, num_layers=1, path=path)
        except ValueError:
            continue
        accepted.append(path)
    return accepted


def impls(suite: str) -> List[str]:
    if suite != 'lga':
        return list(LATENT_IMPLS)
    paths = lga_paths()
    return paths + [p + RECOMPUTE for p in paths if p != 'message_passing'] + LGA_BASELINES


def build(suite: str, impl: str, size: int, device: str = 'cpu'):
    """``(module, x)`` of one case; module None for the copy floor."""
    from graphattn import LatentGNN2d, LGA2d
    if suite == 'lga':
        x = torch.randn(BATCH, LGA_CHANNELS, size, size, device=device)
        if CHANNELS_LAST:
            x = x.contiguous(memory_format=torch.channels_last)
        x.requires_grad_()
        if impl == 'copy':
            return None, x
        if impl == 'unfold':
            module = UnfoldLGA(LGA_CHANNELS, LGA_LAYERS)
        elif impl == 'separable':
            module = SeparableStack(LGA_CHANNELS, LGA_LAYERS)
        else:
            # By default the plain stack, the function the unfold baseline computes: these
            # rows time the attention kernels; the default's per-layer LayerNorm and sum
            # come on top (--stack default).
            path = impl[:-len(RECOMPUTE)] if impl.endswith(RECOMPUTE) else impl
            module = LGA2d(LGA_CHANNELS, num_layers=LGA_LAYERS, path=path,
                           recompute=impl.endswith(RECOMPUTE), **STACKS[STACK])
        return module.to(device), x
    x = torch.randn(BATCH, 256, size, size, device=device, requires_grad=True)
    if impl == 'authors':
        return AuthorsLatentGNN(256, 100, 4).to(device), x
    if impl == 'nonlocal':
        return NonLocal2d(256).to(device), x
    module = LatentGNN2d(256, latent_dims=[100], channel_stride=4, path=impl)
    with torch.no_grad():
        module.gamma.fill_(1.0)  # so the backward pass runs through the whole block
    return module.to(device), x


def run_case(suite: str, impl: str, size: int, repeats: int, device: str = 'cpu',
             budget: Optional[float] = None) -> Dict[str, object]:
    """Time one case here, in this process: seconds per forward+backward, peak bytes,
    and the allocator this process runs with (so the runner can check it)."""
    torch.manual_seed(0)
    module, x = build(suite, impl, size, device)
    if module is None:
        def step():
            x.detach().clone()
    else:
        def step():
            module(x).sum().backward()
            x.grad = None
            for p in module.parameters():
                p.grad = None
    cuda = device == 'cuda'
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = current_rss()
    seconds = median_time(step, repeats=repeats, warmup=1,
                          sync=torch.cuda.synchronize if cuda else None, budget=budget)
    if cuda:
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {'seconds': seconds, 'peak_bytes': max(peak - before, 0),
            'allocator': allocator_in_use()}


def nonlocal_bytes(size: int, batch: int = BATCH) -> int:
    """The N x N attention alone, stored twice for backward (scores and softmax), fp32."""
    n = size * size
    return 2 * batch * n * n * 4


def latent_messages_bytes(size: int, batch: int = BATCH, latent: int = 100,
                          inter: int = 64) -> int:
    """LatentGNN message passing's N*d*C' message tensors (about three live at once), fp32."""
    return 3 * batch * size * size * latent * inter * 4


def planned_bytes(suite: str, impl: str, size: int) -> int:
    if impl == 'nonlocal':
        return nonlocal_bytes(size)
    if suite == 'latentgnn' and impl == 'message_passing':
        return latent_messages_bytes(size)
    return 0


def allocator_mismatch(alloc: str, env: Dict[str, str], seen: Dict[str, object]) -> str:
    """Why the child did not run with allocator ``alloc`` ('' when it did)."""
    if alloc == 'jemalloc' and not seen.get('jemalloc_loaded'):
        return 'jemalloc was not loaded in the case process'
    if seen.get('env') != env:
        return f"case process saw {seen.get('env')}, not {env}"
    return ''


# ------------------------------------------------------------------- runner --
class Settings:
    """What one suite run needs besides suite, sizes and allocators."""

    def __init__(self, repeats: int = 3, timeout: int = 600, memory_limit: int = 16 << 30,
                 budget: Optional[float] = 20.0, device: str = 'cpu', ours: str = 'fused',
                 threads: int = 1):
        self.repeats, self.timeout, self.memory_limit = repeats, timeout, memory_limit
        self.budget, self.device, self.ours, self.threads = budget, device, ours, threads


def case_row(suite: str, impl: str, size: int, alloc: str, env: Dict[str, str],
             s: Settings) -> Dict[str, object]:
    need = planned_bytes(suite, impl, size)
    if need > s.memory_limit:
        what = 'N x N attention' if impl == 'nonlocal' else "N x d x C' messages"
        result: Dict[str, object] = {'error': f'not run: needs > {need / 2 ** 30:.0f} GiB ({what})'}
    else:
        args = [suite, impl, str(size), '--repeats', str(s.repeats), '--device', s.device,
                '--threads', str(s.threads), '--batch', str(BATCH)]
        args += ['--channels-last'] if CHANNELS_LAST else []
        args += ['--stack', STACK] if suite == 'lga' else []
        if s.budget is not None:
            args += ['--budget', str(s.budget)]
        result = run_case_in_subprocess(__file__, args, s.timeout, env=env)
        if 'error' not in result:
            wrong = allocator_mismatch(alloc, env, result['allocator'])
            result = {'error': wrong} if wrong else result
    row: Dict[str, object] = {'size': f'{size}x{size}', 'batch': BATCH,
                              'layout': 'channels_last' if CHANNELS_LAST else 'NCHW', 'alloc': alloc,
                              'impl': impl}
    if suite == 'lga':
        row['stack'] = STACK
    if 'error' in result:
        row.update({'ms': '', 'peak MiB': '', 'note': result['error']})
    else:
        ms = 1000 * result['seconds']
        row.update({'ms': round(ms, 1 if ms >= 10 else 3),
                    'peak MiB': round(result['peak_bytes'] / 2 ** 20, 1), 'note': ''})
    return row


def available_allocators(allocs: Sequence[str], device: str) -> Dict[str, Dict[str, str]]:
    """``{name: env}`` of the configurations to run; absent ones are reported and skipped."""
    if device == 'cuda':
        allocs = [a for a in allocs if a == 'default'] or ['default']  # host malloc: not timed
    found = {}
    for alloc in allocs:
        env = allocator_env(alloc)
        if env is None:
            print(f"note: allocator {alloc!r} skipped: libjemalloc.so.2 not found "
                  "(./tasks.sh bench unpacks Debian's libjemalloc2 into .cache/jemalloc; "
                  "or set GRAPHATTN_JEMALLOC)")
            continue
        found[alloc] = env
    return found


def run_suite(suite: str, sizes: List[int], allocs: Sequence[str], s: Settings, out: str,
              only: Optional[Sequence[str]] = None) -> List[Dict[str, object]]:
    names = [i for i in impls(suite) if not only or i in only]
    configs = available_allocators(allocs, s.device)
    rows = []
    for size in sizes:
        for alloc, env in configs.items():
            for impl in names:
                row = case_row(suite, impl, size, alloc, env, s)
                rows.append(row)
                print_table(f'{suite} {size}x{size} {alloc}', [row])
    add_ratios(rows, s.ours, 'separable' if suite == 'lga' else None)
    note = (f'median of {s.repeats}' + (f' (fewer where they would take over {s.budget:g} s)'
                                        if s.budget else ''))
    print_table(f'{suite} on {s.device}: forward+backward, {note}', rows)
    print_table(f'{suite}: side by side (ms, peak MiB per allocator)',
                side_by_side(rows, list(configs)))
    scaling = scaling_rows(rows)
    print_table(f'{suite}: time (memory) ratio per 4x pixels', scaling)
    name = suite if s.device == 'cpu' else f'{suite}-{s.device}'
    print(f"JSON: {write_json(name, rows, out, s.device, scaling=scaling, settings=vars(s))}")
    return rows


def add_ratios(rows: List[Dict[str, object]], ours: str, baseline: Optional[str]) -> None:
    """Ratios against ours and against the baseline, within each size and allocator."""
    groups: Dict[tuple, Dict[str, Dict[str, object]]] = {}
    for row in rows:
        groups.setdefault((row['size'], row['alloc']), {})[row['impl']] = row
    for group in groups.values():
        for row in group.values():
            for name, ref in (('ours', ours), ('separable', baseline)):
                if ref is None:
                    continue
                base = group.get(ref)
                ok = base and base['ms'] != '' and row['ms'] != '' and row['impl'] != ref
                row[f'time / {name}'] = short(row['ms'] / base['ms']) if ok else ''
                if name == 'ours':
                    ok = ok and base['peak MiB'] and row['peak MiB'] != ''
                    row['memory / ours'] = short(row['peak MiB'] / base['peak MiB']) if ok else ''


def short(x: float) -> float:
    """Two decimals, or two significant digits below 0.1 (the copy floor's ratios)."""
    return round(x, 2) if x >= 0.1 else float(f'{x:.2g}')


def side_by_side(rows: List[Dict[str, object]], allocs: List[str]) -> List[Dict[str, object]]:
    """One row per size and implementation, the allocators side by side."""
    table: Dict[tuple, Dict[str, object]] = {}
    for row in rows:
        out = table.setdefault((row['size'], row['impl']),
                               {'size': row['size'], 'impl': row['impl']})
        cell = (f"{row['ms']:,} ms, {row['peak MiB']:,.0f} MiB" if row['ms'] != ''
                else row['note'])
        out[row['alloc']] = cell
        for key in ('time / ours', 'time / separable'):
            if key in row:
                out.setdefault(key, {})[row['alloc']] = row[key]
    ratios = [k for k in ('time / ours', 'time / separable') if any(k in o for o in table.values())]
    keys = ['size', 'impl', *allocs, *(f'{k} ({", ".join(allocs)})' for k in ratios)]
    for out in table.values():
        for key in ratios:
            out[f'{key} ({", ".join(allocs)})'] = ' / '.join(
                str(out.get(key, {}).get(a, '')) or '-' for a in allocs)
    return [{k: out.get(k, '') for k in keys} for out in table.values()]


def scaling_rows(rows: List[Dict[str, object]]) -> List[Dict[str, object]]:
    """Time and memory ratios per 4x pixels (side 2x), for each implementation and allocator."""
    series: Dict[tuple, Dict[int, Dict[str, object]]] = {}
    for row in rows:
        if row['ms'] != '':
            side = int(str(row['size']).split('x')[0])
            series.setdefault((row['impl'], row['alloc']), {})[side] = row
    out = []
    for (impl, alloc), points in series.items():
        entry: Dict[str, object] = {'impl': impl, 'alloc': alloc}
        for lo, hi in ((64, 128), (128, 256), (256, 512)):
            if lo in points and hi in points:
                entry[f'{lo}->{hi}'] = ratio_cell(points[lo], points[hi])
        if all(s in points for s in (128, 256, 512)):
            # the geometric mean of the two 4x steps, i.e. sqrt(t512 / t128)
            t = geometric_mean([ratio(points[256]['ms'], points[128]['ms']),
                                ratio(points[512]['ms'], points[256]['ms'])])
            m = ratio(points[512]['peak MiB'], points[128]['peak MiB']) ** 0.5
            entry['128->512 per 4x'] = f'{t:.2f} ({m:.2f})' if m else f'{t:.2f}'
        if len(entry) > 2:
            out.append(entry)
    keys = ['impl', 'alloc', '64->128', '128->256', '256->512', '128->512 per 4x']
    return [{k: e.get(k, '') for k in keys} for e in out]


def ratio(a: object, b: object) -> float:
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > 0 else 0.0


def ratio_cell(lo: Dict[str, object], hi: Dict[str, object]) -> str:
    m = ratio(hi['peak MiB'], lo['peak MiB'])
    t = ratio(hi['ms'], lo['ms'])
    return f'{t:.2f} ({m:.2f})' if m else f'{t:.2f}'


def main(argv=None) -> None:
    global BATCH, CHANNELS_LAST, STACK  # the case processes get them as flags
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--suites', nargs='+', default=['lga', 'latentgnn'],
                        choices=['lga', 'latentgnn'])
    parser.add_argument('--sizes', type=int, nargs='+', default=[64, 128, 256, 512])
    parser.add_argument('--allocs', nargs='+', default=list(ALLOCATORS), choices=ALLOCATORS,
                        help='allocator configurations (CPU only; on CUDA only default runs)')
    parser.add_argument('--impls', nargs='+', help='run only these implementations')
    parser.add_argument('--ours', default='fused', help="the implementation 'time / ours' uses")
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    parser.add_argument('--threads', type=int, default=1, help='torch threads per case')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--budget', type=float, default=20.0,
                        help='seconds of timed passes per case before repeats are cut; 0: none')
    parser.add_argument('--timeout', type=int, default=600, help='seconds per case')
    parser.add_argument('--memory-limit', type=float, default=16.0,
                        help='GiB a case may plan to use')
    parser.add_argument('--out', default='benchmarks/results')
    parser.add_argument('--batch', type=int, default=BATCH,
                        help=f'maps per batch (default {BATCH}; the GPU target uses 8)')
    parser.add_argument('--channels-last', action='store_true',
                        help='LGA inputs in torch.channels_last memory (default: NCHW)')
    parser.add_argument('--stack', choices=list(STACKS), default=STACK,
                        help="LGA2d's stack in the lga suite: 'plain' (residual=False, "
                             "norm='none', the unfold baseline's function; default) or "
                             "'default' (the module's defaults)")
    parser.add_argument('--case', nargs=3, metavar=('SUITE', 'IMPL', 'SIZE'),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    BATCH, CHANNELS_LAST, STACK = args.batch, args.channels_last, args.stack
    check_device(args.device)
    budget = args.budget or None
    if args.case:
        suite, impl, size = args.case
        torch.set_num_threads(args.threads)
        print(json.dumps(run_case(suite, impl, int(size), args.repeats, args.device, budget)))
        return
    torch.set_num_threads(args.threads)
    settings = Settings(args.repeats, args.timeout, int(args.memory_limit * 2 ** 30), budget,
                        args.device, args.ours, args.threads)
    for suite in args.suites:
        run_suite(suite, args.sizes, args.allocs, settings, args.out, args.impls)


if __name__ == '__main__':
    main()

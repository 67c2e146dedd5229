"""Shared timing, allocator, device, table and JSON helpers for the benchmarks."""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ------------------------------------------------------------------ timing --


def median_time(fn: Callable[[], object], repeats: int = 3, warmup: int = 1,
                sync: Optional[Callable[[], None]] = None,
                budget: Optional[float] = None) -> float:
    """Median wall time of ``fn()`` in seconds, after ``warmup`` untimed calls.

    ``sync`` (e.g. ``torch.cuda.synchronize``) runs before each clock read, so
    that asynchronous device work is inside the interval. With ``budget``
    (seconds), timing stops before ``repeats`` passes when one more (as long
    as the last) would take the timed total over it; at least one pass is
    timed. The slow cases of a scaling run then take one or two passes, the
    fast ones all; a warm-up that compiles does not count.
    """
    sync = sync or (lambda: None)

    def timed() -> float:
        sync()
        start = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - start

    for _ in range(warmup):
        timed()
    times = [timed()]
    while len(times) < repeats and (budget is None or sum(times) + times[-1] <= budget):
        times.append(timed())
    return statistics.median(times)


def geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


# --------------------------------------------------------------- allocators --
# glibc serves blocks above its (dynamic, <= 32 MiB) mmap threshold with a fresh
# mmap each time and unmaps them on free, so every large tensor costs page faults
# and kernel zeroing again. Raising the thresholds keeps freed memory in the heap.
KEPT_MEMORY_ENV = {'MALLOC_MMAP_THRESHOLD_': '1073741824',
                   'MALLOC_TRIM_THRESHOLD_': '1073741824',
                   'MALLOC_TOP_PAD_': '1073741824'}
# jemalloc, told never to purge freed pages. (The MALLOC_CONF of PyTorch's CPU
# performance-tuning guide - oversize_threshold:1,background_thread:true,... - gained
# nothing over plain jemalloc on our 2-core CPU, 3.07 s against 3.05 s for LGA2d at
# 256^2; this one 1.44-2.10 s, against 3.01 s for glibc as it comes.)
JEMALLOC_CONF = 'dirty_decay_ms:-1,muzzy_decay_ms:-1'
# Where ./tasks.sh bench unpacks Debian's libjemalloc2 (dpkg -x, not installed).
JEMALLOC_GLOBS = [os.path.join(ROOT, '.cache', 'jemalloc', 'usr', 'lib', '*', 'libjemalloc.so.2'),
                  '/usr/lib/*/libjemalloc.so.2', '/usr/lib/libjemalloc.so.2',
                  '/usr/local/lib/libjemalloc.so.2']
ALLOCATOR_VARS = (*KEPT_MEMORY_ENV, 'MALLOC_CONF', 'LD_PRELOAD')


def find_jemalloc() -> Optional[str]:
    """Path of a ``libjemalloc.so.2`` (``$GRAPHATTN_JEMALLOC`` first), or None."""
    candidates = [os.environ.get('GRAPHATTN_JEMALLOC', '')]
    for pattern in JEMALLOC_GLOBS:
        candidates += sorted(glob.glob(pattern))
    return next((c for c in candidates if c and os.path.isfile(c)), None)


def allocator_env(name: str) -> Optional[Dict[str, str]]:
    """The variables that select allocator configuration ``name``; None where it is absent.

    ``'default'``: glibc malloc as it comes; ``'kept'``: glibc with the three
    ``MALLOC_*_`` thresholds at 1 GiB; ``'jemalloc'``: jemalloc through
    ``LD_PRELOAD``, with ``MALLOC_CONF`` set so that it keeps freed pages.
    """
    if name == 'default':
        return {}
    if name == 'kept':
        return dict(KEPT_MEMORY_ENV)
    if name == 'jemalloc':
        lib = find_jemalloc()
        return None if lib is None else {'LD_PRELOAD': lib, 'MALLOC_CONF': JEMALLOC_CONF}
    raise ValueError(f"unknown allocator configuration {name!r}; choose from {ALLOCATORS}")


ALLOCATORS = ('default', 'kept', 'jemalloc')


def child_env(overrides: Dict[str, str]) -> Dict[str, str]:
    """This process's environment with every allocator variable replaced by ``overrides``,
    so that an inherited ``LD_PRELOAD`` or ``MALLOC_*`` cannot leak into ``'default'``."""
    env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_VARS}
    env.update(overrides)
    return env


def allocator_in_use() -> Dict[str, object]:
    """What this process runs with: its allocator variables and whether jemalloc is mapped."""
    with open('/proc/self/maps') as f:
        jemalloc = 'libjemalloc' in f.read()
    return {'jemalloc_loaded': jemalloc,
            'env': {k: os.environ[k] for k in ALLOCATOR_VARS if k in os.environ}}


# ------------------------------------------------------------ command line --
def add_case_arguments(parser, repeats: int, case: Tuple[str, str]) -> None:
    """The options of a suite whose cases run one per subprocess; ``--case`` (hidden, with
    ``case`` as its metavar) is how the suite calls one of them."""
    parser.add_argument('--repeats', type=int, default=repeats)
    parser.add_argument('--timeout', type=int, default=900, help='seconds per case')
    parser.add_argument('--out', default='benchmarks/results')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    parser.add_argument('--threads', type=int, default=1, help='torch threads per case')
    parser.add_argument('--case', nargs=2, metavar=case, help=argparse.SUPPRESS)


def parse_case_arguments(parser, argv=None) -> argparse.Namespace:
    """The parsed options, the device checked and the torch threads set."""
    args = parser.parse_args(argv)
    check_device(args.device)
    torch.set_num_threads(args.threads)
    return args


# ------------------------------------------------------------------ devices --
def check_device(device: str) -> torch.device:
    """``'cpu'`` or ``'cuda'``; a clear error where CUDA is asked for and absent."""
    if device not in ('cpu', 'cuda'):
        raise SystemExit(f"--device must be 'cpu' or 'cuda' (got {device!r})")
    if device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit(f"--device cuda: torch.cuda.is_available() is False (torch "
                         f"{torch.__version__}, built for CUDA {torch.version.cuda}); run on a "
                         "machine with an NVIDIA GPU and a CUDA build of torch, or use "
                         "--device cpu")
    return torch.device(device)


def machine(device: str = 'cpu') -> Dict[str, object]:
    info: Dict[str, object] = {
        'platform': platform.platform(), 'processor': platform.processor(),
        'cpu_count': os.cpu_count(), 'torch': torch.__version__,
        'torch_threads': torch.get_num_threads(), 'device': device}
    if device == 'cuda':
        info.update({'gpu': torch.cuda.get_device_name(), 'cuda': torch.version.cuda})
    return info


# ------------------------------------------------------------ tables, JSON --
def print_table(title: str, rows: List[Dict[str, object]]) -> None:
    if not rows:
        return
    keys = list(rows[0])
    cells = [[str(r.get(k, '')) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print(f"\n{title}")
    print('| ' + ' | '.join(k.ljust(w) for k, w in zip(keys, widths)) + ' |')
    print('|' + '|'.join('-' * (w + 2) for w in widths) + '|')
    for c in cells:
        print('| ' + ' | '.join(v.ljust(w) for v, w in zip(c, widths)) + ' |')


def write_json(name: str, rows: List[Dict[str, object]], out_dir: str,
               device: str = 'cpu', **extra: object) -> str:
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f'{name}.json')
    with open(path, 'w') as f:
        json.dump({'machine': machine(device), **extra, 'rows': rows}, f, indent=2)
    return path


# -------------------------------------------------------------- subprocess --
def current_rss() -> int:
    """This process's resident memory now, in bytes."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def run_case_in_subprocess(script: str, args: Sequence[str], timeout: int,
                           env: Optional[Dict[str, str]] = None) -> Dict[str, object]:
    """Run ``script --case *args`` in a fresh interpreter; its last stdout line is JSON.

    A fresh process per case keeps each case's peak RSS its own, and lets each
    case choose its allocator (``env``: variables set on top of
    :func:`child_env`'s clean environment; None inherits this one unchanged).
    Failures come back as ``{'error': ...}`` (out of memory, timeout, or the
    last line of stderr).
    """
    cmd = [sys.executable, script, '--case', *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=None if env is None else child_env(env))
    except subprocess.TimeoutExpired:
        return {'error': f'over {timeout} s'}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ['killed'])[-1]
        return {'error': 'out of memory' if done.returncode in (-9, 137) else last[:80]}
    return json.loads(done.stdout.strip().splitlines()[-1])

"""Shared timing, table and JSON helpers for the benchmarks."""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Sequence

import torch


def median_time(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> Dict[str, object]:
    return {'platform': platform.platform(), 'processor': platform.processor(),
            'cpu_count': os.cpu_count(), 'torch': torch.__version__,
            'torch_threads': torch.get_num_threads()}


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


def write_json(name: str, rows: List[Dict[str, object]], out_dir: str) -> str:
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f'{name}.json')
    with open(path, 'w') as f:
        json.dump({'machine': machine(), 'rows': rows}, f, indent=2)
    return path


def current_rss() -> int:
    """This process's resident memory now, in bytes."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def run_case_in_subprocess(script: str, args: Sequence[str], timeout: int) -> Dict[str, object]:
    """Run ``script --case *args`` in a fresh interpreter; its last stdout line is JSON.

    A fresh process per case keeps each case's peak RSS its own. Failures come back as
    ``{'error': ...}`` (out of memory, timeout, or the last line of stderr).
    """
    cmd = [sys.executable, script, '--case', *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {'error': f'over {timeout} s'}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ['killed'])[-1]
        return {'error': 'out of memory' if done.returncode in (-9, 137) else last[:80]}
    return json.loads(done.stdout.strip().splitlines()[-1])

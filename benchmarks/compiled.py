"""``torch.compile`` against eager for the 2-D modules, and their graph breaks.

For each module and map size: the graph-break count from
``torch._dynamo.explain``, the first compiled call's time (compilation
included), and the median forward+backward time of the eager and the compiled
module (inductor, default mode). Each case runs in a fresh subprocess, so that
compiled code caches of one case do not help the next.

Modules: LGA2d (C = 64, L = 4, fused path, batch 2) and LatentGNN2d (C = 256,
d = 100, channel stride 4, fused path, batch 2), as in ``layers.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Dict, List

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from common import median_time, print_table, write_json  # noqa: E402

MODULES = ['lga2d', 'latentgnn2d']


def build(name: str, size: int):
    from graphattn import LatentGNN2d, LGA2d
    torch.manual_seed(0)
    if name == 'lga2d':
        return LGA2d(64, num_layers=4, path='fused'), torch.randn(2, 64, size, size,
                                                                 requires_grad=True)
    module = LatentGNN2d(256, latent_dims=[100], channel_stride=4, path='fused')
    with torch.no_grad():
        module.gamma.fill_(1.0)
    return module, torch.randn(2, 256, size, size, requires_grad=True)


def run_case(name: str, size: int, repeats: int) -> Dict[str, float]:
    module, x = build(name, size)
    breaks = torch._dynamo.explain(module)(x).graph_break_count
    torch._dynamo.reset()
    compiled = torch.compile(module)

    def step(fn):
        def run():
            fn(x).sum().backward()
            x.grad = None
            for p in module.parameters():
                p.grad = None
        return run

    start = time.perf_counter()
    step(compiled)()
    first = time.perf_counter() - start
    eager = median_time(step(module), repeats=repeats, warmup=1)
    fast = median_time(step(compiled), repeats=repeats, warmup=1)
    with torch.no_grad():
        err = (compiled(x) - module(x)).abs().max().item()
    return {'graph_breaks': breaks, 'first_call_s': first, 'eager_s': eager,
            'compiled_s': fast, 'max_abs_diff': err}


def main(argv=None) -> List[Dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--modules', nargs='+', default=MODULES, choices=MODULES)
    parser.add_argument('--sizes', type=int, nargs='+', default=[64, 128, 256])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--timeout', type=int, default=900)
    parser.add_argument('--out', default='benchmarks/results')
    parser.add_argument('--case', nargs=2, metavar=('MODULE', 'SIZE'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case[0], int(args.case[1]), args.repeats)))
        return []
    rows = []
    for name in args.modules:
        for size in args.sizes:
            cmd = [sys.executable, __file__, '--case', name, str(size),
                   '--repeats', str(args.repeats)]
            row: Dict[str, object] = {'module': name, 'size': f'{size}x{size}'}
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                if done.returncode != 0:
                    raise RuntimeError((done.stderr.strip().splitlines() or ['failed'])[-1])
                r = json.loads(done.stdout.strip().splitlines()[-1])
                row.update({'graph breaks': r['graph_breaks'],
                            'first call s': round(r['first_call_s'], 1),
                            'eager ms': round(1000 * r['eager_s'], 1),
                            'compiled ms': round(1000 * r['compiled_s'], 1),
                            'speed-up': round(r['eager_s'] / r['compiled_s'], 2),
                            'max |diff|': f"{r['max_abs_diff']:.1e}"})
            except (subprocess.TimeoutExpired, RuntimeError) as err:
                row['note'] = str(err)[:100]
            rows.append(row)
            print_table(f'{name} {size}x{size}', [row])
    print_table('torch.compile (inductor) vs eager: forward+backward, median of '
                f'{args.repeats}', rows)
    print(f"JSON: {write_json('compiled', rows, args.out)}")
    return rows


if __name__ == '__main__':
    main()

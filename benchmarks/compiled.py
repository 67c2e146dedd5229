"""``torch.compile`` against eager for the 2-D modules, and their graph breaks.

For each module and map size: the graph-break count from
``torch._dynamo.explain``, the first compiled call's time (compilation
included), and the median forward+backward time of the eager and the compiled
module (inductor, default mode). Each case runs in a fresh subprocess, so that
compiled code caches of one case do not help the next.

Modules: LGA2d (C = 64, L = 4, fused path, batch 2) and LatentGNN2d (C = 256,
d = 100, channel stride 4, fused path, batch 2), as in ``layers.py``. (A path
of LGA2d's own that compiles internally, if the library has one, is a row of
``layers.py``'s lga suite instead, found there automatically.)

``--device cuda`` runs the cases on the GPU (timing synchronises the device;
JSON ``compiled-cuda.json`` with the GPU's name).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Dict, List

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from common import (add_case_arguments, median_time,  # noqa: E402
                    parse_case_arguments, print_table, run_case_in_subprocess,
                    write_json)

MODULES = ['lga2d', 'latentgnn2d']


def build(name: str, size: int, device: str = 'cpu'):
    from graphattn import LatentGNN2d, LGA2d
    torch.manual_seed(0)
    if name == 'lga2d':
        module, channels = LGA2d(64, num_layers=4, path='fused'), 64
    else:
        module, channels = LatentGNN2d(256, latent_dims=[100], channel_stride=4, path='fused'), 256
        with torch.no_grad():
            module.gamma.fill_(1.0)
    x = torch.randn(2, channels, size, size, device=device, requires_grad=True)
    return module.to(device), x


def run_case(name: str, size: int, repeats: int, device: str = 'cpu') -> Dict[str, float]:
    module, x = build(name, size, device)
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
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

    sync()
    start = time.perf_counter()
    step(compiled)()
    sync()
    first = time.perf_counter() - start
    eager = median_time(step(module), repeats=repeats, warmup=1, sync=sync)
    fast = median_time(step(compiled), repeats=repeats, warmup=1, sync=sync)
    with torch.no_grad():
        err = (compiled(x) - module(x)).abs().max().item()
    return {'graph_breaks': breaks, 'first_call_s': first, 'eager_s': eager,
            'compiled_s': fast, 'max_abs_diff': err}


def main(argv=None) -> List[Dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--modules', nargs='+', default=MODULES, choices=MODULES)
    parser.add_argument('--sizes', type=int, nargs='+', default=[64, 128, 256])
    add_case_arguments(parser, repeats=3, case=('MODULE', 'SIZE'))
    args = parse_case_arguments(parser, argv)
    if args.case:
        print(json.dumps(run_case(args.case[0], int(args.case[1]), args.repeats, args.device)))
        return []
    rows = []
    for name in args.modules:
        for size in args.sizes:
            row: Dict[str, object] = {'module': name, 'size': f'{size}x{size}'}
            r = run_case_in_subprocess(__file__, [name, str(size), '--repeats', str(args.repeats),
                                                  '--device', args.device,
                                                  '--threads', str(args.threads)], args.timeout)
            if 'error' in r:
                row['note'] = str(r['error'])[:100]
            else:
                row.update({'graph breaks': r['graph_breaks'],
                            'first call s': round(r['first_call_s'], 1),
                            'eager ms': round(1000 * r['eager_s'], 1),
                            'compiled ms': round(1000 * r['compiled_s'], 1),
                            'speed-up': round(r['eager_s'] / r['compiled_s'], 2),
                            'max |diff|': f"{r['max_abs_diff']:.1e}"})
            rows.append(row)
            print_table(f'{name} {size}x{size}', [row])
    print_table(f'torch.compile (inductor) vs eager on {args.device}: forward+backward, '
                f'median of {args.repeats}', rows)
    name = 'compiled' if args.device == 'cpu' else f'compiled-{args.device}'
    print(f"JSON: {write_json(name, rows, args.out, args.device)}")
    return rows


if __name__ == '__main__':
    main()

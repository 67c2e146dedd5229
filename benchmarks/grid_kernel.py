"""The grid kernel alone: the backward's two schedules against each other and the eager kernel.

One LGA aggregation on a ``B × H × W`` map, ``C`` channels, one head, the 3×3 stencil,
softmax and the fused ReLU (what ``LGA2d(..., path='compiled')`` runs per layer),
forward and backward against a fixed upstream gradient. Impls:

* ``eager``: :func:`graphattn.grid_attention.grid_attention`, then the ReLU;
* ``compiled, fused``: :func:`graphattn.compiled_grid_attention.compiled_grid_attention`
  with ``backward='fused'`` (both gradients in one compiled function; on CUDA inductor
  makes one persistent reduction of it);
* ``compiled, split``: the same with ``backward='split'`` (the scores' reduction and the
  values' gather as two compiled functions).

Per case: the median times of the forward, of forward + backward, and of the backward
alone (run again through one forward's graph), and the largest difference of the two
gradients from the eager kernel's. Each case runs in a fresh subprocess (compile caches of one case do not help the
next); on CUDA the device is synchronised around each pass and peak memory is
``max_memory_allocated``. ``benchmarks/gpu_check.py`` runs the same cases in its process.

    python benchmarks/grid_kernel.py --sizes 128 256 --batch 2        # CPU, one thread
    python benchmarks/grid_kernel.py --device cuda --sizes 256 512 --batch 8
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable, Dict, List

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
from common import (add_case_arguments, median_time,  # noqa: E402
                    parse_case_arguments, print_table, run_case_in_subprocess,
                    write_json)

IMPLS = ('eager', 'compiled, fused', 'compiled, split')


def build(impl: str, size: int, batch: int, channels: int, device: str = 'cpu'
          ) -> Dict[str, Callable[[], object]]:
    """The passes of one case: ``'forward'``; ``'step'``, forward and backward, which
    returns the gradients of the scores and the values; ``'backward'``, the backward
    alone, again through one forward's graph (kept with ``retain_graph``)."""
    from graphattn.compiled_grid_attention import compiled_grid_attention
    from graphattn.grid_attention import grid_attention
    from graphs import grid_stencil
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS} (got {impl!r})")
    offsets = tuple(map(tuple, grid_stencil(8, 1).tolist()))
    gen = torch.Generator(device=device).manual_seed(0)
    shape = (batch, size, size, 1)
    scores = torch.randn(*shape, len(offsets), device=device, generator=gen,
                         requires_grad=True)
    value = torch.randn(*shape, channels, device=device, generator=gen, requires_grad=True)
    grad = torch.randn(*shape, channels, device=device, generator=gen)

    def forward():
        if impl == 'eager':
            out, _ = grid_attention(scores, value, offsets, 'softmax')
            return torch.relu(out)
        schedule = impl.split(', ')[1]
        out, _ = compiled_grid_attention(scores, value, offsets, 'softmax', relu=True,
                                         backward=schedule)
        return out

    def step():
        scores.grad = value.grad = None
        forward().backward(grad)
        return scores.grad, value.grad

    kept = []

    def backward():
        if not kept:
            kept.append(forward())
        scores.grad = value.grad = None
        kept[0].backward(grad, retain_graph=True)
    return {'forward': forward, 'step': step, 'backward': backward}


def run_case(impl: str, size: int, batch: int, channels: int, repeats: int,
             device: str = 'cpu') -> Dict[str, object]:
    """Times and the gradients' largest difference from the eager kernel's."""
    sync = torch.cuda.synchronize if device == 'cuda' else None
    passes = build(impl, size, batch, channels, device)
    passes['step']()   # compiles both passes
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    seconds = {name: median_time(fn, repeats, sync=sync) for name, fn in passes.items()}
    got = passes['step']()
    want = build('eager', size, batch, channels, device)['step']()
    result = {'forward_s': seconds['forward'], 'total_s': seconds['step'],
              'backward_s': seconds['backward'],
              'max_abs_diff': max(float((g - w).abs().max()) for g, w in zip(got, want))}
    if device == 'cuda':
        result['peak_bytes'] = torch.cuda.max_memory_allocated() - base
    return result


def row_of(impl: str, size: int, batch: int, r: Dict[str, object]) -> Dict[str, object]:
    row: Dict[str, object] = {'impl': impl, 'map': f'{size}²×{batch}'}
    if 'error' in r:
        row['note'] = str(r['error'])[:100]
        return row
    row.update({'forward ms': round(1000 * r['forward_s'], 2),
                'fwd+bwd ms': round(1000 * r['total_s'], 2),
                'backward ms': round(1000 * r['backward_s'], 2),
                'max |diff| vs eager': f"{r['max_abs_diff']:.1e}"})
    if 'peak_bytes' in r:
        row['peak MiB'] = round(r['peak_bytes'] / 2 ** 20, 1)
    return row


def main(argv=None) -> List[Dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--impls', nargs='+', default=list(IMPLS), choices=IMPLS)
    parser.add_argument('--sizes', type=int, nargs='+', default=[128, 256])
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--channels', type=int, default=64)
    add_case_arguments(parser, repeats=5, case=('IMPL', 'SIZE'))
    args = parse_case_arguments(parser, argv)
    if args.case:
        print(json.dumps(run_case(args.case[0], int(args.case[1]), args.batch, args.channels,
                                  args.repeats, args.device)))
        return []
    rows = []
    for size in args.sizes:
        for impl in args.impls:
            r = run_case_in_subprocess(__file__, [impl, str(size), *_passed(args)],
                                       args.timeout)
            rows.append(row_of(impl, size, args.batch, r))
            print_table(f'{impl}, {size}²', rows[-1:])
    print_table(f'the grid kernel on {args.device} ({args.channels} channels, softmax, '
                f'fused ReLU): median of {args.repeats}', rows)
    name = 'grid_kernel' if args.device == 'cpu' else f'grid_kernel-{args.device}'
    print(f"JSON: {write_json(name, rows, args.out, args.device)}")
    return rows


def _passed(args) -> List[str]:
    return ['--batch', str(args.batch), '--channels', str(args.channels), '--repeats',
            str(args.repeats), '--device', args.device, '--threads', str(args.threads)]


if __name__ == '__main__':
    main()

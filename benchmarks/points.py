"""Forward+backward time and peak memory of the node-level modules on point clouds.

A random 3-D cloud of N points (uniform in the unit cube), its kNN graph with
k = 16 and self-loops, and C = 32 features. Each case runs in a fresh
subprocess; the graph is built before timing and its memory is not counted.

Implementations:

* ``lga_table``: :class:`graphattn.LGA` (2 layers, ``edge_encoder='mlp'``,
  relative positions) on the ``(N, k)`` neighbour table: the dense path.
* ``lga_compiled``: the same module on the table with ``path='compiled'``
  (:mod:`graphattn.compiled_neighbor_attention`; inductor compiles in the
  warm-up pass, which is not timed).
* ``lga_mp``: the same module and weights on ``edge_index``: PyG message
  passing, i.e. the same maths as plain gather–scatter.
* ``point_transformer``: PyG's :class:`~torch_geometric.nn.PointTransformerConv`
  (32 -> 32) on the same ``edge_index``: the peer local attention layer.
* ``latentgnn``: :class:`graphattn.LatentGNN` (d = 100, channel stride 1)
  on the N nodes: the global module's cost next to the local ones.

Where a message-passing case is planned to need more than ``--memory-limit``
(its per-edge tensors, linear in E), it is not run and the table says how much
it would need, extrapolated from the largest size measured.

Peak memory is the resident set's high-water mark over the timed passes, above
the resident set before them: the kernel's high-water mark is reset after the
warm-up (``/proc/self/clear_refs``), so that one-time costs (imports, a
compile) are not counted; where that reset is not allowed, the peak since the
process started.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from typing import Dict, List, Optional

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from common import (current_rss, median_time, print_table,  # noqa: E402
                    run_case_in_subprocess, write_json)

K = 16
CHANNELS = 32
IMPLS = ['lga_table', 'lga_compiled', 'lga_mp', 'point_transformer', 'latentgnn']


def build(impl: str, n: int, chunk_size: Optional[int] = None):
    """The module and a step closure running forward+backward once."""
    import graphs
    from graphattn import LGA, LatentGNN
    torch.manual_seed(0)
    pos = torch.rand(n, 3)
    x = torch.randn(n, CHANNELS, requires_grad=True)
    table, _ = graphs.nearest_neighbors(pos, K, loop=True)
    if impl == 'latentgnn':
        module = LatentGNN(CHANNELS, latent_dims=[100], channel_stride=1, norm='batch')
        return module, lambda: module(x)
    if impl == 'point_transformer':
        from torch_geometric.nn import PointTransformerConv
        module = PointTransformerConv(CHANNELS, CHANNELS)
        edge_index = graphs.neighbors_to_edge_index(table)
        return module, lambda: module(x, pos, edge_index)
    module = LGA(CHANNELS, CHANNELS, num_layers=2, edge_dim=3, edge_encoder='mlp',
                 chunk_size=chunk_size, path='compiled' if impl == 'lga_compiled' else 'auto')
    if impl in ('lga_table', 'lga_compiled'):
        return module, lambda: module(x, None, pos=pos, neighbors=table)
    edge_index = graphs.neighbors_to_edge_index(table)
    table = None  # the lga_table closure shares this variable: free the table here
    return module, lambda: module(x, edge_index, pos=pos)


def run_case(impl: str, n: int, repeats: int,
             chunk_size: Optional[int] = None) -> Dict[str, float]:
    module, forward = build(impl, n, chunk_size)
    params = list(module.parameters())

    def step():
        forward().sum().backward()
        for p in params:
            p.grad = None

    step()   # the warm-up (and the compile of 'lga_compiled'), outside the peak
    reset = _reset_peak_rss()
    before = current_rss()
    seconds = median_time(step, repeats=repeats, warmup=0)
    peak = _peak_rss() if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {'seconds': seconds, 'peak_bytes': max(peak - before, 0)}


def _reset_peak_rss() -> bool:
    """Reset this process's resident-set high-water mark (Linux >= 4.0)."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def _peak_rss() -> int:
    """``VmHWM``: the resident set's high-water mark since the last reset, in bytes."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def in_subprocess(impl: str, n: int, repeats: int, timeout: int,
                  chunk_size: Optional[int] = None) -> Dict[str, object]:
    extra = ['--channels', str(CHANNELS)]
    extra += [] if chunk_size is None else ['--chunk-size', str(chunk_size)]
    return run_case_in_subprocess(__file__, [impl, str(n), '--repeats', str(repeats), *extra],
                                  timeout)


def main(argv=None) -> List[Dict[str, object]]:
    global CHANNELS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[10_000, 100_000, 1_000_000])
    parser.add_argument('--impls', nargs='+', default=IMPLS, choices=IMPLS)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--channels', type=int, default=CHANNELS,
                        help='feature channels C (default: %(default)s)')
    parser.add_argument('--chunk-size', type=int, default=None,
                        help="LGA's chunk_size (default: the layer's own)")
    parser.add_argument('--timeout', type=int, default=900, help='seconds per case')
    parser.add_argument('--memory-limit', type=float, default=18.0,
                        help='GiB a case may plan to use (the machine has 24)')
    parser.add_argument('--out', default='benchmarks/results')
    parser.add_argument('--case', nargs=2, metavar=('IMPL', 'N'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    CHANNELS = args.channels
    if args.case:
        print(json.dumps(run_case(args.case[0], int(args.case[1]), args.repeats,
                                  args.chunk_size)))
        return []

    rows: List[Dict[str, object]] = []
    measured: Dict[str, Dict[int, int]] = {}       # impl -> {n: peak bytes}
    for n in sorted(args.sizes):
        for impl in args.impls:
            need = _extrapolated(measured.get(impl, {}), n)
            if need > args.memory_limit * 2 ** 30:
                result = {'error': f'not run: needs ≈ {need / 2 ** 30:.0f} GiB '
                                   '(linear in N from the size below)'}
            else:
                result = in_subprocess(impl, n, args.repeats, args.timeout, args.chunk_size)
            row: Dict[str, object] = {'points': n, 'impl': impl}
            if 'error' in result:
                row.update({'ms': '', 'peak MiB': '', 'note': result['error']})
            else:
                measured.setdefault(impl, {})[n] = result['peak_bytes']
                row.update({'ms': round(1000 * result['seconds'], 1),
                            'peak MiB': round(result['peak_bytes'] / 2 ** 20, 1), 'note': ''})
            rows.append(row)
            print_table(f'{impl}, {n} points', [row])
    _add_ratios(rows)
    print_table(f'point clouds: k={K}, C={CHANNELS}, forward+backward, median of '
                f'{args.repeats}', rows)
    print(f"JSON: {write_json('points', rows, args.out)}")
    return rows


def _extrapolated(peaks: Dict[int, int], n: int) -> float:
    """Peak memory at ``n`` points, linear in N from the largest smaller size measured."""
    smaller = [m for m in peaks if m < n]
    if not smaller:
        return 0.0
    m = max(smaller)
    return peaks[m] * n / m


def _add_ratios(rows: List[Dict[str, object]]) -> None:
    """Each row's time and memory over the table path's, at the same size."""
    base = {r['points']: r for r in rows if r['impl'] == 'lga_table' and r['ms'] != ''}
    for row in rows:
        b = base.get(row['points'])
        ok = b is not None and row['ms'] != '' and row['impl'] != 'lga_table'
        row['time / table'] = round(row['ms'] / b['ms'], 2) if ok else ''
        ok = ok and b['peak MiB'] and row['peak MiB'] != ''
        row['memory / table'] = round(row['peak MiB'] / b['peak MiB'], 2) if ok else ''


if __name__ == '__main__':
    main()

"""Run the benchmark suites: ``python benchmarks/run.py [suite ...] [--quick] [--device cuda]``.

Suites: knn (graph construction), lga and latentgnn (the 2-D modules against
their peers, each case once per allocator configuration), points (the
node-level modules on kNN graphs of point clouds), compiled (torch.compile
against eager), kernel (the grid kernel alone: the backward's two schedules)
and plot (the log–log figure from the lga and latentgnn JSON).
Each prints tables and writes JSON under benchmarks/results/.

``--device cuda`` runs lga, latentgnn, compiled and kernel on the GPU (JSON named
``<suite>-cuda.json``, with the GPU's name); knn and points are CPU
benchmarks and are skipped there. Without CUDA it stops with a clear message.
Arguments after ``--`` go to every suite run (e.g. ``-- --sizes 256 512``).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import compiled  # noqa: E402
import grid_kernel  # noqa: E402
import knn  # noqa: E402
import layers  # noqa: E402
import plot  # noqa: E402
import points  # noqa: E402
from common import check_device  # noqa: E402

QUICK = {'knn': ['--sizes', '2000', '20000', '--brute-max', '2000', '--repeats', '1'],
         'lga': ['--sizes', '64', '128', '--repeats', '1'],
         'latentgnn': ['--sizes', '64', '--repeats', '1'],
         'points': ['--sizes', '2000', '10000', '--repeats', '1'],
         'compiled': ['--sizes', '32', '--repeats', '1'],
         'kernel': ['--sizes', '32', '--repeats', '1'],
         'plot': []}
SUITES: Dict[str, Callable[[List[str]], object]] = {
    'knn': knn.main,
    'lga': lambda argv: layers.main(['--suites', 'lga'] + argv),
    'latentgnn': lambda argv: layers.main(['--suites', 'latentgnn'] + argv),
    'points': points.main,
    'compiled': compiled.main,
    'kernel': grid_kernel.main,
    'plot': plot.main,
}
ON_CUDA = ('lga', 'latentgnn', 'compiled', 'kernel')


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index('--') + 1:] if '--' in argv else []
    argv = argv[:argv.index('--')] if '--' in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('suites', nargs='*', default=list(SUITES), help=f'any of {list(SUITES)}')
    parser.add_argument('--quick', action='store_true', help='small sizes, for a smoke test')
    parser.add_argument('--device', default='cpu', help="'cpu' (default) or 'cuda'")
    args = parser.parse_args(argv)
    for name in args.suites:
        if name not in SUITES:
            parser.error(f'unknown suite {name!r}; choose from {list(SUITES)}')
    check_device(args.device)
    for name in args.suites:
        if args.device != 'cpu' and name not in ON_CUDA:
            print(f'note: suite {name!r} runs on the CPU only; skipped with --device {args.device}')
            continue
        device = ['--device', args.device] if name in ON_CUDA else []
        SUITES[name]((QUICK[name] if args.quick else []) + device + extra)


if __name__ == '__main__':
    main()

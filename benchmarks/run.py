"""Run the benchmark suites: ``python benchmarks/run.py [suite ...] [--quick]``.

Suites: knn (graph construction), lga and latentgnn (the 2-D modules against
their peers), points (the node-level modules on kNN graphs of point clouds),
compiled (torch.compile against eager) and plot (the log–log figure from the
lga and latentgnn JSON). Each prints tables and writes JSON under
benchmarks/results/.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import compiled  # noqa: E402
import knn  # noqa: E402
import layers  # noqa: E402
import plot  # noqa: E402
import points  # noqa: E402

SUITES = {
    'knn': lambda quick: knn.main(['--sizes', '2000', '20000', '--brute-max', '2000',
                                   '--repeats', '1'] if quick else []),
    'lga': lambda quick: layers.main(['--suites', 'lga'] +
                                     (['--sizes', '64', '128', '--repeats', '1'] if quick else [])),
    'latentgnn': lambda quick: layers.main(['--suites', 'latentgnn'] +
                                           (['--sizes', '64', '--repeats', '1'] if quick else [])),
    'points': lambda quick: points.main(['--sizes', '2000', '10000', '--repeats', '1']
                                        if quick else []),
    'compiled': lambda quick: compiled.main(['--sizes', '32', '--repeats', '1'] if quick else []),
    'plot': lambda quick: plot.main([]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('suites', nargs='*', default=list(SUITES), help=f'any of {list(SUITES)}')
    parser.add_argument('--quick', action='store_true', help='small sizes, for a smoke test')
    args = parser.parse_args()
    for name in args.suites:
        if name not in SUITES:
            parser.error(f'unknown suite {name!r}; choose from {list(SUITES)}')
        SUITES[name](args.quick)


if __name__ == '__main__':
    main()

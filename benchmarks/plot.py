"""Log–log plot of forward+backward time against pixels, from the suites' JSON.

``python benchmarks/plot.py [--results benchmarks/results] [--out docs/scaling.png]
[--alloc kept]`` reads ``lga.json`` and ``latentgnn.json`` (written by ``run.py
lga latentgnn``) and draws one line per implementation, from the rows of one
allocator configuration (``--alloc``; rows of JSON written before there were
configurations count as ``default``), with a dashed slope-1 guide: a line
parallel to it scales linearly in the number of pixels. An LGA2d path that the
list below does not name (a new one) gets a line of its own.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Dict, List, Tuple

LINES = [  # (suite, impl, label, style)
    ('lga', 'fused', 'LGA2d, fused path (C=64, L=4)', 'o-'),
    ('lga', 'message_passing', 'LGA2d, message passing', 'o:'),
    ('lga', 'unfold', 'LGA, naive unfold', 'o--'),
    ('lga', 'separable', 'depthwise-separable 3x3 stack', 'x-.'),
    ('latentgnn', 'fused', 'LatentGNN2d, fused (C=256, d=100)', 's-'),
    ('latentgnn', 'authors', "LatentGNN, authors' bmm", 's--'),
    ('latentgnn', 'nonlocal', 'non-local block (C=256)', '^-'),
]


def series(results: str, alloc: str = 'default') -> Dict[Tuple[str, str], List[Tuple[int, float]]]:
    out: Dict[Tuple[str, str], List[Tuple[int, float]]] = {}
    for suite in ('lga', 'latentgnn'):
        path = os.path.join(results, f'{suite}.json')
        if not os.path.exists(path):
            continue
        with open(path) as f:
            rows = json.load(f)['rows']
        for row in rows:
            if row['ms'] == '' or row.get('alloc', 'default') != alloc:
                continue
            side = int(row['size'].split('x')[0])
            out.setdefault((suite, row['impl']), []).append((side * side, row['ms']))
    return out


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--results', default='benchmarks/results')
    parser.add_argument('--out', default='docs/scaling.png')
    parser.add_argument('--alloc', default='default',
                        help='allocator configuration whose rows are drawn')
    args = parser.parse_args(argv)
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    data = series(args.results, args.alloc)
    if not data:
        raise SystemExit(f'no lga.json or latentgnn.json in {args.results}: run '
                         '`python benchmarks/run.py lga latentgnn` first')
    lines = LINES + [('lga', impl, f'LGA2d, {impl} path', 'o-.') for suite, impl in sorted(data)
                     if suite == 'lga' and impl not in {i for _, i, _, _ in LINES} | {'copy'}]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for suite, impl, label, style in lines:
        points = sorted(data.get((suite, impl), []))
        if points:
            ax.plot([p for p, _ in points], [t for _, t in points], style, label=label)
    xs = sorted({p for pts in data.values() for p, _ in pts})
    plotted = [t for suite, impl, _, _ in lines for _, t in data.get((suite, impl), [])]
    first = min(plotted) / 2  # the guides start just below every line
    ax.plot([xs[0], xs[-1]], [first, first * xs[-1] / xs[0]], 'k--', lw=0.8, alpha=0.5,
            label='slope 1 (linear)')
    ax.plot([xs[0], xs[-1]], [first, first * (xs[-1] / xs[0]) ** 2], 'k:', lw=0.8, alpha=0.5,
            label='slope 2 (quadratic)')
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.set_xlabel('pixels per map (batch 2)')
    ax.set_ylabel('forward + backward, ms')
    ax.set_title(f'Time against map size (2-core CPU, allocator: {args.alloc})')
    ax.legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f'wrote {args.out}')
    return args.out


if __name__ == '__main__':
    main()

"""graphattn's main job: context modules on real images and a real point cloud.

    ./tasks.sh demo            # short run, ~10 minutes on 2 CPU cores
    ./tasks.sh demo --full     # the full-length experiments behind the README table

Trains the same small networks with and without LGA / LatentGNN (and a non-local
block) on Fashion-MNIST collages and on the cortex meshes, prints the results
table and writes it (JSON, Markdown) with the figures to the output folder.
"""
from __future__ import annotations

import argparse
import os
import time

import torch

import figures
import segment_collages
import segment_cortex
from datasets import MissingDataError, fail_with_hint
from training import markdown_table

SETTINGS = {
    # steps, batch, train collages, test collages, seeds | cortex steps, points, seeds
    'short': dict(collage_steps=300, batch_size=8, train_size=1000, test_size=200, seeds=[0],
                  cortex_steps=150, points=4096),
    'tiny': dict(collage_steps=2, batch_size=2, train_size=8, test_size=4, seeds=[0],
                 cortex_steps=2, points=1024),  # for the tests
    'full': dict(collage_steps=600, batch_size=16, train_size=4000, test_size=500,
                 seeds=[0, 1, 2], cortex_steps=300, points=8192),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--full', action='store_true', help='full-length experiments')
    parser.add_argument('--tiny', action='store_true', help='a few steps, for smoke tests')
    parser.add_argument('--out', default='outputs/demo', help='folder for tables and figures')
    parser.add_argument('--only', choices=('collages', 'cortex'), help='run one task only')
    parser.add_argument('--no-progress', action='store_true', help='hide progress bars')
    args = parser.parse_args()
    run_name = 'full' if args.full else 'tiny' if args.tiny else 'short'
    cfg = SETTINGS[run_name]
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    progress = not args.no_progress
    start = time.time()
    sections = []
    try:
        if args.only in (None, 'collages'):
            rows, models, test = segment_collages.run(
                list(segment_collages.CONTEXTS), cfg['seeds'], cfg['collage_steps'],
                cfg['batch_size'], cfg['train_size'], cfg['test_size'], args.out, progress)
            sections.append(('Fashion-MNIST collages (128x128, 11 classes)', rows))
            shown = {name: models[name] for name in ('none', 'lga', 'latentgnn', 'nonlocal')}
            print('figure:', figures.collage_predictions(shown, test, args.out))
            print('figure:', figures.lga_attention(models['lga'], test, args.out))
            print('figure:', figures.latent_assignments(models['latentgnn'], test, args.out))
        if args.only in (None, 'cortex'):
            rows, models, right = segment_cortex.run(
                list(segment_cortex.CONTEXTS), cfg['seeds'], cfg['cortex_steps'], cfg['points'],
                16, args.out, progress)
            sections.append(('Cortex, left -> mirrored right hemisphere (4 classes)', rows))
            print('figure:', figures.cortex_predictions(models, right, args.out, 16, cfg['points']))
            print('figure:', figures.cortex_attention_graph(models['lga'], right, args.out, 16,
                                                            cfg['points']))
    except MissingDataError as error:
        fail_with_hint(error)
    report = [f"# graphattn demo ({run_name} run, "
              f"{time.time() - start:.0f} s)"]
    for title, rows in sections:
        report += ['', f'## {title}', '', markdown_table(rows)]
    text = '\n'.join(report)
    print('\n' + text)
    with open(os.path.join(args.out, 'results.md'), 'w') as f:
        f.write(text + '\n')
    print(f"\ntables and figures in {os.path.abspath(args.out)}")


if __name__ == '__main__':
    main()

"""graphattn's main job: context modules on real images and a real point cloud.

    ./tasks.sh demo            # short run, one seed: about 5 minutes on 2 quiet CPU cores
    ./tasks.sh demo --full     # the full-length experiments, 3 seeds (mean +- std)

Trains the same small networks with and without LGA / LatentGNN (and a non-local
block) on Fashion-MNIST collages and on the cortex meshes, next to trivial
predictors (every pixel background; the majority class; a position-only MLP),
prints the results table and writes it (JSON with numbers and configuration,
Markdown) with the figures to the output folder.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

import figures
import segment_collages
import segment_cortex
from datasets import MissingDataError, fail_with_hint
from experiment import Budget
from models import DISPLAY_NAMES
from training import markdown_table, run_environment

SETTINGS = {
    # collages: steps, batch, train / test collages | cortex: steps, points per view, views
    # per step | seeds
    'short': dict(collage_steps=450, batch_size=32, train_size=2000, test_size=500,
                  cortex_steps=150, points=512, views=8, seeds=[0]),
    'tiny': dict(collage_steps=2, batch_size=2, train_size=8, test_size=4,
                 cortex_steps=2, points=512, views=2, seeds=[0]),  # for the tests
    'full': dict(collage_steps=900, batch_size=32, train_size=4000, test_size=1000,
                 cortex_steps=300, points=512, views=8, seeds=[0, 1, 2]),
}
KNN = 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--full', action='store_true', help='full-length experiments, 3 seeds')
    parser.add_argument('--tiny', action='store_true', help='a few steps, for smoke tests')
    parser.add_argument('--out', default='outputs/demo', help='folder for tables and figures')
    parser.add_argument('--only', choices=('collages', 'cortex'), help='run one task only')
    parser.add_argument('--threads', type=int, default=os.cpu_count() or 1,
                        help='torch CPU threads (default: all cores)')
    parser.add_argument('--no-progress', action='store_true', help='hide progress bars')
    args = parser.parse_args()
    run_name = 'full' if args.full else 'tiny' if args.tiny else 'short'
    cfg = SETTINGS[run_name]
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(max(1, args.threads))
    progress = not args.no_progress
    before = run_environment()
    start, cpu_start = time.time(), time.process_time()
    sections = []
    try:
        if args.only in (None, 'collages'):
            budget = Budget(cfg['collage_steps'], cfg['batch_size'], tuple(cfg['seeds']))
            results, models, test = segment_collages.run(
                list(segment_collages.CONTEXTS), budget, cfg['train_size'], cfg['test_size'],
                args.out, progress)
            rows = [segment_collages.CollageTask().columns(r) for r in results]
            size = segment_collages.COLLAGE['size']
            sections.append((f'Fashion-MNIST collages ({size}x{size}, 11 classes: background '
                             '+ 10 item classes)', rows))
            torch.save({name: m.state_dict() for name, m in models.items()},
                       os.path.join(args.out, 'collage_models.pt'))   # to re-plot or reuse
            shown = {DISPLAY_NAMES[name]: models[name]
                     for name in ('none', 'lga', 'latentgnn', 'nonlocal')}
            print('figure:', figures.collage_predictions(shown, test, args.out))
            print('figure:', figures.lga_attention(models['lga'], test, args.out))
            print('figure:', figures.latent_assignments(models['latentgnn'], test, args.out))
        if args.only in (None, 'cortex'):
            budget = Budget(cfg['cortex_steps'], cfg['views'], tuple(cfg['seeds']))
            results, models, right = segment_cortex.run(
                list(segment_cortex.MODELS), budget, cfg['points'], KNN, args.out, progress)
            task = segment_cortex.CortexTask(cfg['points'], KNN)
            rows = [task.columns(r) for r in results]
            sections.append(('Cortex, left -> mirrored right hemisphere, each view turned '
                             'about the up axis at random (4 Mesulam classes; medial wall '
                             'ignored)', rows))
            torch.save({name: m.state_dict() for name, m in models.items()},
                       os.path.join(args.out, 'cortex_models.pt'))
            shown = {task.display(name): models[name] for name in segment_cortex.MODELS}
            print('figure:', figures.cortex_predictions(shown, right, args.out, task))
            print('figure:', figures.cortex_attention_graph(models['lga'], right, args.out,
                                                            task))
    except MissingDataError as error:
        fail_with_hint(error)
    wall, cpu = time.time() - start, time.process_time() - cpu_start
    after = run_environment()
    seeds = cfg['seeds']
    spread = (f"mean ± std over {len(seeds)} seeds {seeds}" if len(seeds) > 1 else
              f"ONE seed ({seeds[0]}): single runs, no spread measured; "
              "`--full` runs 3 seeds")
    report = [f"# graphattn demo ({run_name} run)", '',
              f"{spread}. Wall time {wall:.0f} s, CPU time {cpu:.0f} s, with "
              f"{after['torch_threads']} torch thread(s) "
              f"on {after['cpu_count']} logical CPU(s); load average (1, 5, 15 min) "
              f"{before['load_average_1_5_15_min']} at the start, "
              f"{after['load_average_1_5_15_min']} at the end. 'CPU ms / train step' is "
              "process CPU time (summed over threads; stable when other programs share the "
              "cores, unlike wall time): a rough cost, not a benchmark."]
    for title, rows in sections:
        report += ['', f'## {title}', '', markdown_table(rows)]
    text = '\n'.join(report)
    print('\n' + text)
    with open(os.path.join(args.out, 'results.md'), 'w') as f:
        f.write(text + '\n')
    with open(os.path.join(args.out, 'demo.json'), 'w') as f:
        json.dump({'run': run_name, 'settings': cfg, 'knn_k': KNN, 'wall_s': round(wall, 1),
                   'cpu_s': round(cpu, 1),
                   'environment_start': before, 'environment_end': after}, f, indent=2)
    print(f"\ntables and figures in {os.path.abspath(args.out)}")


if __name__ == '__main__':
    main()

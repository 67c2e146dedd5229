"""Sweep: does LGALoss help the collage segmentation at some weight?

The full demo trained ``base + LGA`` and ``base + LGA + LGALoss`` at one loss weight (0.1)
and found no gain (21.9 +- 0.7 vs 21.6 +- 0.5 mIoU). This script trains the same
``lga+loss`` model of :mod:`segment_collages` (cross-entropy + weight x LGALoss on the LGA
block's latent output) at several weights, with the same data, steps, batch and optimiser
for every weight, and reports mIoU / pixel accuracy on the test collages (mean +- std over
seeds), plus the LGALoss of the trained model on the test collages, to show whether the
loss term was actually being minimised.

Weight 0 is the plain LGA model: the loss term is dropped rather than multiplied by zero
(identical gradients, without its cost).

    python examples/sweep_lga_loss.py --threads 1    # weights 0 0.03 0.3 1.0, seeds 0 1,
                                                     # 160 steps of batch 16 (~20 min, 2 cores)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import List

import torch

from datasets import MissingDataError, fail_with_hint
from segment_collages import evaluate, make_data, train_model
from training import markdown_table, mean_std

from graphattn import LGALoss


@torch.no_grad()
def lga_loss_on_test(model, test, batch_size: int = 32, temperature: float = 1.0) -> float:
    """Mean LGALoss (the training criterion's settings) of a model's latent on the test set."""
    model.eval()
    criterion = LGALoss(ignore_index=-100, temperature=temperature)
    images, labels = test
    values = []
    for start in range(0, images.size(0), batch_size):
        _, latent = model(images[start:start + batch_size], return_latent=True)
        values.append(float(criterion(latent, labels[start:start + batch_size])))
    return statistics.mean(values)


def run(weights: List[float], seeds: List[int], steps: int, batch_size: int, train_size: int,
        test_size: int, out: str, progress: bool = True, temperature: float = 1.0):
    start = time.time()
    train, test = make_data(train_size, test_size)
    print(f"collages: {train_size} train / {test_size} test; {steps} steps of batch "
          f"{batch_size} per weight and seed; weights {weights}, seeds {seeds}, "
          f"LGALoss temperature {temperature:g}")
    rows, raw = [], []
    for weight in weights:
        scores, times, contrastive = [], [], []
        for seed in seeds:
            context = 'lga' if weight == 0 else 'lga+loss'
            model, step_time = train_model(context, train, steps, batch_size, seed,
                                           lga_loss_weight=weight, progress=progress,
                                           lga_loss_temperature=temperature)
            scores.append(evaluate(model, test))
            times.append(step_time)
            contrastive.append(lga_loss_on_test(model, test, temperature=temperature))
        raw.append({'weight': weight, 'miou': [s['miou'] for s in scores],
                    'pixel_acc': [s['pixel_acc'] for s in scores],
                    'test_lga_loss': contrastive, 'ms_per_step': [1000 * t for t in times]})
        row = {'LGALoss weight': f'{weight:g}',
               'mIoU (%)': mean_std(raw[-1]['miou']),
               'pixel acc (%)': mean_std(raw[-1]['pixel_acc']),
               'test LGALoss': f'{statistics.mean(contrastive):.3f}',
               'ms / train step': f'{1000 * statistics.median(times):.0f}'}
        rows.append(row)
        print(f"  weight {weight:<5g} mIoU {row['mIoU (%)']:>12}  pixel acc "
              f"{row['pixel acc (%)']:>12}  test LGALoss {row['test LGALoss']}  "
              f"({row['ms / train step']} ms/step)")
    wall = time.time() - start
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, 'sweep_lga_loss.json'), 'w') as f:
        json.dump({'weights': weights, 'seeds': seeds, 'steps': steps, 'batch_size': batch_size,
                   'train_size': train_size, 'test_size': test_size, 'temperature': temperature,
                   'threads': torch.get_num_threads(), 'wall_s': round(wall, 1),
                   'rows': rows, 'raw': raw}, f, indent=2)
    with open(os.path.join(out, 'sweep_lga_loss.md'), 'w') as f:
        f.write(markdown_table(rows) + '\n')
    return rows, wall


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--weights', type=float, nargs='+', default=[0.0, 0.03, 0.3, 1.0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--steps', type=int, default=160)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--train-size', type=int, default=2000)
    parser.add_argument('--test-size', type=int, default=500)
    parser.add_argument('--temperature', type=float, default=1.0,
                        help="LGALoss's softmax temperature on F_out")
    parser.add_argument('--tiny', action='store_true', help='a few steps, for smoke tests')
    parser.add_argument('--threads', type=int,
                        help="torch threads (default: torch's choice); on a busy shared "
                             'machine 1 can be several times faster than 2')
    parser.add_argument('--out', default='outputs/sweep_lga_loss')
    parser.add_argument('--no-progress', action='store_true', help='hide progress bars')
    args = parser.parse_args(argv)
    if args.tiny:
        args.steps, args.batch_size, args.train_size, args.test_size = 2, 2, 8, 4
        args.seeds = args.seeds[:1]
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        rows, wall = run(args.weights, args.seeds, args.steps, args.batch_size, args.train_size,
                         args.test_size, args.out, not args.no_progress, args.temperature)
    except MissingDataError as error:
        fail_with_hint(error)
    print(f"\n{markdown_table(rows)}\n\n{wall:.0f} s; results in {os.path.abspath(args.out)}")


if __name__ == '__main__':
    main()

"""Tutorial: segmenting a real cortical surface as a point cloud.

Run it alone (``python examples/segment_cortex.py --help``) or through the demo.

1. Data: the conte69 cortex meshes (32,492 vertices per hemisphere) with the
   Mesulam atlas (4 classes; the medial wall has no Mesulam class and is ignored
   in training and scoring). Train on the left hemisphere, test on the right one
   mirrored (:func:`datasets.cortex_split`): no test vertex is seen in training.
   Both surfaces live in the same template space, so a vertex's position says much
   about its class: the trivial rows (majority class; an MLP on the position alone)
   show how much, and a graph model has to beat them by reading the surface around
   a vertex. (``--rotate`` gives every view a random 3-D rotation: position then
   says nothing and a class must be read from local shape alone. That was this
   example's task until the graph models were seen to learn almost nothing from it
   at the demo's budget: 15-19% mIoU, near the majority class's 9%.)
2. Model: per-point features from two PyG ``EdgeConv`` layers on a kNN graph
   built with :func:`graphs.point_cloud_to_data`, then a context block (none,
   LGA on the same kNN graph, or LatentGNN), then a per-point classifier.
3. Training loop on random subsets of the left hemisphere (AdamW, one-cycle);
   every row, the trivial MLP included, gets the same steps and views.
4. Evaluation: mIoU and accuracy over every vertex of the mirrored right hemisphere.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import MLP, EdgeConv
from tqdm import tqdm

import graphs
from datasets import Cortex, MissingDataError, cortex_split, fail_with_hint, random_rotation
from graphattn import LGA, LatentGNN
from training import (confusion_matrix, count_macs, count_parameters, markdown_table,
                      run_environment, segmentation_scores, summary)

CONTEXTS = ('none', 'lga', 'latentgnn')
#: Rows that need no graph: trained (the position-only MLP) or counted (the majority class).
TRIVIAL = ('majority', 'position-mlp')
DISPLAY_NAMES = {'majority': 'trivial: majority class',
                 'position-mlp': 'trivial: position-only MLP',
                 'none': 'base', 'lga': 'base + LGA (kNN graph)', 'latentgnn': 'base + LatentGNN'}
NUM_CLASSES = 4
CLASS_NAMES = Cortex.MESULAM_CLASSES
LR = 3e-3


class PositionMLP(nn.Module):
    """The trivial learned predictor: class from the vertex position alone, no graph."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.context_name = 'position-mlp'
        self.mlp = MLP([3, width, width, NUM_CLASSES])

    def forward(self, pos: torch.Tensor, edge_index: torch.Tensor | None = None,
                edge_attr: torch.Tensor | None = None, batch=None) -> torch.Tensor:
        return self.mlp(pos)


class PointSeg(nn.Module):
    """EdgeConv x2 -> context block -> per-point MLP, on one kNN graph."""

    def __init__(self, context: str = 'none', width: int = 32):
        super().__init__()
        if context not in CONTEXTS:
            raise ValueError(f"unknown context {context!r}; choose one of {CONTEXTS}")
        self.context_name = context
        self.conv1 = EdgeConv(MLP([2 * 3, width, width]), aggr='max')
        self.conv2 = EdgeConv(MLP([2 * width, width, width]), aggr='max')
        if context == 'lga':
            self.context = LGA(width, num_layers=4, edge_dim=3, edge_encoder='mlp', fuse=True)
        elif context == 'latentgnn':
            self.context = LatentGNN(width, latent_dims=[32], channel_stride=2,
                                     norm='batch')  # as the demo's results were measured
        else:
            self.context = None
        self.head = MLP([width, width, NUM_CLASSES], dropout=0.1)

    def forward(self, pos: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor,
                batch: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(pos, edge_index)
        h = self.conv2(h, edge_index)
        if self.context_name == 'lga':
            h = self.context(h, edge_index, edge_attr)
        elif self.context_name == 'latentgnn':
            h = self.context(h, batch)
        return self.head(h)


def view(cortex: Cortex, generator: torch.Generator, keep: torch.Tensor, k: int,
         rotate: bool = False):
    """The vertices ``keep`` of a hemisphere as a kNN graph, centred, at about unit scale.

    ``rotate``: give the view a uniformly random 3-D rotation first.
    """
    pos = (cortex.pos[keep] - cortex.pos.mean(0)) / 50.0
    if rotate:
        pos = pos @ random_rotation(generator).t()
    data = graphs.point_cloud_to_data(pos, k=k)
    return data, cortex.labels[keep]


def random_subsets(num_vertices: int, size: int, generator: torch.Generator):
    """Disjoint random subsets of about ``size`` vertices covering them all.

    Train and test views then have the same point density, so a kNN
    neighbourhood spans the same area in both.
    """
    parts = max(1, round(num_vertices / size))
    return torch.randperm(num_vertices, generator=generator).chunk(parts)


def make_model(name: str) -> nn.Module:
    return PositionMLP() if name == 'position-mlp' else PointSeg(name)


def train_model(context: str, left: Cortex, steps: int, num_points: int, k: int, seed: int,
                progress: bool = True, rotate: bool = False):
    """Train one model; returns it and the median CPU seconds (process time) per step."""
    torch.manual_seed(seed)
    model = make_model(context)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LR, total_steps=steps,
                                                   pct_start=0.15)
    g = torch.Generator().manual_seed(seed)
    step_times = []
    model.train()
    bar = tqdm(range(steps), desc=f'{context:>9} seed {seed}', disable=not progress, leave=False)
    for _ in bar:
        keep = random_subsets(left.pos.size(0), num_points, g)[0]
        data, labels = view(left, g, keep, k, rotate)
        start = time.process_time()
        logits = model(data.pos, data.edge_index, data.edge_attr)
        loss = F.cross_entropy(logits, labels, ignore_index=-1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        step_times.append(time.process_time() - start)
        bar.set_postfix(loss=f'{loss.item():.3f}')
    return model, statistics.median(step_times)


@torch.no_grad()
def evaluate(model, right: Cortex, num_points: int, k: int, rotate: bool = False,
             seed: int = 1234) -> Dict[str, float]:
    """Scores over every vertex of the test hemisphere (two random rotations if ``rotate``)."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    confusion = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long)
    for _ in range(2 if rotate else 1):
        for keep in random_subsets(right.pos.size(0), num_points, g):
            data, labels = view(right, g, keep, k, rotate)
            pred = model(data.pos, data.edge_index, data.edge_attr).argmax(1)
            confusion += confusion_matrix(pred, labels, NUM_CLASSES, ignore_index=-1)
    return segmentation_scores(confusion)


def majority_scores(left: Cortex, right: Cortex) -> Dict[str, float]:
    """The trivial predictor: every test vertex gets the train hemisphere's commonest class."""
    counts = torch.bincount(left.labels[left.labels >= 0], minlength=NUM_CLASSES)
    pred = torch.full_like(right.labels, int(counts.argmax()))
    return segmentation_scores(confusion_matrix(pred, right.labels, NUM_CLASSES,
                                                ignore_index=-1))


def run(models: List[str], seeds: List[int], steps: int, num_points: int, k: int, out: str,
        progress: bool = True, rotate: bool = False):
    left, right = cortex_split()
    print(f"cortex: train left hemisphere ({left.pos.size(0)} vertices, {num_points} sampled per "
          f"step), test mirrored right; kNN k={k}; {steps} steps per model and seed; seeds "
          f"{seeds}" + (" (ONE seed: no spread is measured)" if len(seeds) == 1 else "")
          + ("; random rotations" if rotate else ""))
    majority = majority_scores(left, right)
    results = [{'model': DISPLAY_NAMES['majority'], 'key': 'majority',
                'miou': [majority['miou']], 'pixel_acc': [majority['pixel_acc']],
                'params': 0, 'macs': 0, 'cpu_s_per_step': None}]
    trained = {}
    for context in models:
        scores, step_times = [], []
        for seed in seeds:
            model, step_time = train_model(context, left, steps, num_points, k, seed, progress,
                                           rotate)
            scores.append(evaluate(model, right, num_points, k, rotate))
            step_times.append(step_time)
            trained.setdefault(context, model)
        data, _ = view(right, torch.Generator().manual_seed(0), torch.arange(num_points), k)
        macs = count_macs(trained[context], data.pos, data.edge_index, data.edge_attr)
        results.append({'model': DISPLAY_NAMES[context], 'key': context,
                        'miou': [s['miou'] for s in scores],
                        'pixel_acc': [s['pixel_acc'] for s in scores],
                        'params': count_parameters(trained[context]), 'macs': macs,
                        'cpu_s_per_step': statistics.median(step_times)})
        row = summary(results[-1], 'accuracy (%)', f'{num_points:,}-point view')
        print(f"  {row['model']:<28} mIoU {row['mIoU (%)']:>12}  accuracy "
              f"{row['accuracy (%)']:>12}  ({row['CPU ms / train step']} CPU ms/step)")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, 'cortex.json'), 'w') as f:
        json.dump({'config': {'seeds': seeds, 'steps': steps, 'num_points': num_points, 'k': k,
                              'rotate': rotate, 'optimizer': 'AdamW', 'max_lr': LR,
                              'weight_decay': 1e-4, 'schedule': 'OneCycle, 15% warm-up',
                              'classes': list(CLASS_NAMES), 'ignored': 'medial wall'},
                   'environment': run_environment(), 'rows': results}, f, indent=2)
    rows = [summary(r, 'accuracy (%)', f'{num_points:,}-point view') for r in results]
    return rows, trained, right


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', nargs='+', default=['position-mlp', *CONTEXTS],
                        choices=('position-mlp', *CONTEXTS))
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--steps', type=int, default=150)
    parser.add_argument('--points', type=int, default=4096)
    parser.add_argument('--k', type=int, default=16)
    parser.add_argument('--rotate', action='store_true',
                        help='randomly rotate every view (position then says nothing)')
    parser.add_argument('--out', default='outputs/cortex')
    args = parser.parse_args()
    try:
        results, _, _ = run(args.models, args.seeds, args.steps, args.points, args.k, args.out,
                             rotate=args.rotate)
    except MissingDataError as error:
        fail_with_hint(error)
    print(markdown_table(results))


if __name__ == '__main__':
    main()

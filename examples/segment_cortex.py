"""Tutorial: segmenting a real cortical surface as a point cloud.

Run it alone (``python examples/segment_cortex.py --help``) or through the demo.

1. Data: the conte69 cortex meshes (32,492 vertices per hemisphere) with the
   Mesulam atlas (4 classes; the medial wall is ignored). Train on the left
   hemisphere, test on the right one mirrored (:func:`datasets.cortex_split`).
   Every view is randomly rotated and only the vertices' positions are input, so
   a class must be read from the shape around a vertex, not from coordinates.
2. Model: per-point features from two PyG ``EdgeConv`` layers on a kNN graph
   built with :func:`graphs.point_cloud_to_data`, then a context block (none,
   LGA on the same kNN graph, or LatentGNN), then a per-point classifier.
3. Training loop on random rotations and random subsets of the left hemisphere.
4. Evaluation: mIoU and accuracy on the mirrored right hemisphere, averaged over
   several random rotations.
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
from training import (confusion_matrix, count_macs, count_parameters, markdown_table, mean_std,
                      segmentation_scores)

CONTEXTS = ('none', 'lga', 'latentgnn')
NUM_CLASSES = 4


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
            self.context = LatentGNN(width, latent_dims=[32], channel_stride=2)
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


def view(cortex: Cortex, generator: torch.Generator, keep: torch.Tensor, k: int):
    """The vertices ``keep`` of a randomly rotated hemisphere, as a kNN graph."""
    pos = cortex.pos[keep]
    pos = (pos - pos.mean(0)) / 50.0 @ random_rotation(generator).t()  # ~unit scale
    data = graphs.point_cloud_to_data(pos, k=k)
    return data, cortex.labels[keep]


def random_subsets(num_vertices: int, size: int, generator: torch.Generator):
    """Disjoint random subsets of about ``size`` vertices covering them all.

    Train and test views then have the same point density, so a kNN
    neighbourhood spans the same area in both.
    """
    parts = max(1, round(num_vertices / size))
    return torch.randperm(num_vertices, generator=generator).chunk(parts)


def train_model(context: str, left: Cortex, steps: int, num_points: int, k: int, seed: int,
                progress: bool = True):
    torch.manual_seed(seed)
    model = PointSeg(context)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    step_times = []
    model.train()
    bar = tqdm(range(steps), desc=f'{context:>9} seed {seed}', disable=not progress, leave=False)
    for _ in bar:
        keep = random_subsets(left.pos.size(0), num_points, g)[0]
        data, labels = view(left, g, keep, k)
        start = time.perf_counter()
        logits = model(data.pos, data.edge_index, data.edge_attr)
        loss = F.cross_entropy(logits, labels, ignore_index=-1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        step_times.append(time.perf_counter() - start)
        bar.set_postfix(loss=f'{loss.item():.3f}')
    return model, statistics.median(step_times)


@torch.no_grad()
def evaluate(model, right: Cortex, num_points: int, k: int, rotations: int = 2,
             seed: int = 1234) -> Dict[str, float]:
    """Scores over every vertex of the test hemisphere, under several rotations."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    confusion = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long)
    for _ in range(rotations):
        for keep in random_subsets(right.pos.size(0), num_points, g):
            data, labels = view(right, g, keep, k)
            pred = model(data.pos, data.edge_index, data.edge_attr).argmax(1)
            confusion += confusion_matrix(pred, labels, NUM_CLASSES, ignore_index=-1)
    return segmentation_scores(confusion)


def run(models: List[str], seeds: List[int], steps: int, num_points: int, k: int, out: str,
        progress: bool = True):
    left, right = cortex_split()
    print(f"cortex: train left hemisphere ({left.pos.size(0)} vertices, {num_points} sampled per "
          f"step), test mirrored right; kNN k={k}; {steps} steps per model and seed")
    results, trained = [], {}
    for context in models:
        scores, step_times = [], []
        for seed in seeds:
            model, step_time = train_model(context, left, steps, num_points, k, seed, progress)
            scores.append(evaluate(model, right, num_points, k))
            step_times.append(step_time)
            trained.setdefault(context, model)
        data, _ = view(right, torch.Generator().manual_seed(0), torch.arange(num_points), k)
        macs = count_macs(trained[context], data.pos, data.edge_index, data.edge_attr)
        row = {
            'model': 'base' if context == 'none' else f'base + {context}',
            'mIoU (%)': mean_std([s['miou'] for s in scores]),
            'accuracy (%)': mean_std([s['pixel_acc'] for s in scores]),
            'params': f'{count_parameters(trained[context]):,}',
            'GMACs / view': f'{macs / 1e9:.3f}',
            'ms / train step': f'{1000 * statistics.median(step_times):.0f}',
        }
        results.append(row)
        print(f"  {row['model']:<20} mIoU {row['mIoU (%)']:>12}  accuracy "
              f"{row['accuracy (%)']:>12}  ({row['ms / train step']} ms/step)")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, 'cortex.json'), 'w') as f:
        json.dump({'seeds': seeds, 'steps': steps, 'num_points': num_points, 'k': k,
                   'rows': results}, f, indent=2)
    return results, trained, right


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', nargs='+', default=list(CONTEXTS), choices=CONTEXTS)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--steps', type=int, default=100)
    parser.add_argument('--points', type=int, default=8192)
    parser.add_argument('--k', type=int, default=16)
    parser.add_argument('--out', default='outputs/cortex')
    args = parser.parse_args()
    try:
        results, _, _ = run(args.models, args.seeds, args.steps, args.points, args.k, args.out)
    except MissingDataError as error:
        fail_with_hint(error)
    print(markdown_table(results))


if __name__ == '__main__':
    main()

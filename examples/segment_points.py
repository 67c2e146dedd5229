"""Tutorial: from a labelled point cloud to a trained segmentation model, with graphs' helpers.

Run ``python examples/segment_points.py --help``; ``--tiny`` is a seconds-long smoke run.

1. Data: a real labelled cloud, the conte69 left cortical hemisphere (32,492 vertices,
   4 Mesulam classes, the medial wall unlabelled) from ``examples/datasets.py``; the test
   cloud is the mirrored right hemisphere. Only vertex positions are input.
2. Training views: kNN crops of the large cloud (:func:`graphs.random_crops`), each
   centred, scaled and randomly rotated (:func:`graphs.random_rotate`: a class must be read
   from the shape, not the coordinates), batched as kNN graphs with self-loops and
   relative-position edge attributes (:func:`graphs.collate_clouds`).
3. Model: two EdgeConv layers, an optional context block (LGA on the same kNN graph, or
   LatentGNN over each crop), a per-point classifier.
4. Inference over the whole test cloud: crops that cover every point
   (:func:`graphs.covering_crops`), per-point probabilities averaged over the crops that
   hold each point (:func:`graphs.predict_by_crops`), per-class IoU
   (:func:`graphs.per_class_iou`).

Rows: the majority class and a position-only network (a per-point MLP on the same crop
coordinates, no graph) are the floors a model must beat; every trained row gets the same
steps, crops and seeds.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import MLP, EdgeConv

import graphs
from datasets import Cortex, MissingDataError, cortex_split, fail_with_hint
from graphattn import LGA, LatentGNN

CLASSES = Cortex.MESULAM_CLASSES
RADIUS = 50.0   # mm: the training crops are balls of this radius (about a third of a hemisphere)
ROTATION = {'full': None, 'up': 2, 'none': None}   # the axis of graphs.random_rotate
rotation = 'up'   # about the superior axis (the up direction is known); set by --rotation
ROWS = ('position', 'base', 'lga', 'latentgnn', 'latentgnn-batch', 'lga-neighbor', 'lga-pair')


# ---- model and training (the part to copy) ------------------------------------------------
class Segmenter(nn.Module):
    """EdgeConv x2 -> context block (none, LGA or LatentGNN) -> per-point MLP."""

    def __init__(self, row: str = 'base', width: int = 32):
        super().__init__()
        self.row = row
        self.conv1 = EdgeConv(MLP([6, width, width]), aggr='max')
        self.conv2 = EdgeConv(MLP([2 * width, width, width]), aggr='max')
        self.point_mlp = MLP([3, width, width]) if row == 'position' else None
        self.head = MLP([width, width, len(CLASSES)], dropout=0.1)
        # Drawn after the base's weights, so that at one seed every row starts from the same
        # base and differs only by its block (docs/lga.md: the collages' seed-2 'collapse'
        # was the decoder's draw, which the block's weights used to shift).
        if row.startswith('lga'):   # 'lga', 'lga-neighbor', 'lga-pair': the edge-score reading
            score = row.split('-')[1] if '-' in row else 'center'
            self.context = LGA.for_points(width, num_layers=3, fuse=True, score=score)
        elif row.startswith('latentgnn'):
            self.context = LatentGNN(width, latent_dims=[16],
                                     norm='batch' if row == 'latentgnn-batch' else None)
        else:
            self.context = None

    def forward(self, data) -> torch.Tensor:
        if self.point_mlp is not None:           # the position-only floor: no graph
            return self.head(self.point_mlp(data.pos))
        h = self.conv2(self.conv1(data.pos, data.edge_index), data.edge_index)
        if isinstance(self.context, LGA):        # loop=True kNN edges, edge_attr = offsets
            h = self.context(h, data.edge_index, data.edge_attr)
        elif isinstance(self.context, LatentGNN):   # latent nodes per crop
            h = self.context(h, data.batch, batch_size=data.num_graphs)
        return self.head(h)


def normalize(pos: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A crop centred, scaled to about the unit ball and randomly rotated (see --rotation)."""
    return graphs.random_rotate(pos / RADIUS, axis=ROTATION[rotation], center=True,
                                generator=generator) if rotation != 'none' else (
        pos - pos.mean(0)) / RADIUS


def train(row: str, cloud: Cortex, steps: int, crops: int, points: int, k: int, width: int,
          seed: int) -> Segmenter:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = Segmenter(row, width).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    for _ in range(steps):
        balls = graphs.random_crops(cloud.pos, crops, radius=RADIUS, generator=g)
        index = [graphs.resample(ball, points, generator=g) for ball in balls]
        batch = graphs.collate_clouds([normalize(cloud.pos[i], g) for i in index],
                                      y=[cloud.labels[i] for i in index], k=k, loop=True)
        loss = F.cross_entropy(model(batch), batch.y, ignore_index=-1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()
# ---- end of the model and training part ----------------------------------------------------


@torch.no_grad()
def evaluate(model: Segmenter, cloud: Cortex, points: int, k: int) -> torch.Tensor:
    """Per-class IoU on every labelled point, from probabilities averaged over crops."""
    g = torch.Generator().manual_seed(1234)   # the same crops and rotations for every model
    crops = [part for ball in graphs.covering_crops(cloud.pos, radius=RADIUS, generator=g)
             for part in graphs.split_crop(ball, points, generator=g)]
    probs = graphs.predict_by_crops(model, cloud.pos, crops, k=k, loop=True,
                                    transform=lambda pos: normalize(pos, g))
    return graphs.per_class_iou(probs.argmax(1), cloud.labels, len(CLASSES), ignore_index=-1)


def majority_iou(train_cloud: Cortex, test_cloud: Cortex) -> torch.Tensor:
    labels = train_cloud.labels[train_cloud.labels >= 0]
    majority = int(torch.bincount(labels, minlength=len(CLASSES)).argmax())
    pred = torch.full_like(test_cloud.labels, majority)
    return graphs.per_class_iou(pred, test_cloud.labels, len(CLASSES), ignore_index=-1)


def mean_std(values: List[float]) -> str:
    if len(values) == 1:
        return f'{values[0]:.1f}'
    return f'{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}'


def table_row(name: str, ious: List[torch.Tensor]) -> Dict[str, str]:
    """mIoU (mean over classes, then mean ± std over seeds) and per-class IoU, in %."""
    row = {'model': name,
           'mIoU (%)': mean_std([100 * float(torch.nanmean(iou)) for iou in ious])}
    for c, label in enumerate(CLASSES):
        values = [100 * float(iou[c]) for iou in ious]
        row[label] = mean_std([v for v in values if not math.isnan(v)] or [math.nan])
    return row


NAMES = {'position': 'position only (per-point MLP, no graph)', 'base': 'base (2 × EdgeConv)',
         'lga': 'base + LGA (LGA.for_points)', 'latentgnn': 'base + LatentGNN (norm=layer)',
         'latentgnn-batch': "base + LatentGNN norm='batch'",
         'lga-neighbor': "base + LGA score='neighbor'", 'lga-pair': "base + LGA score='pair'"}


def run(rows: List[str], seeds: List[int], steps: int, crops: int, points: int, k: int,
        width: int, out: str = '') -> List[Dict[str, str]]:
    left, right = cortex_split()
    print(f"train: left hemisphere ({left.pos.size(0)} vertices), {steps} steps of {crops} "
          f"balls of radius {RADIUS:.0f} mm resampled to {points} points, rotation "
          f"{rotation!r}, k={k}; test: every labelled vertex of the mirrored right "
          f"hemisphere; seeds {seeds}")
    results = [table_row('majority class', [majority_iou(left, right)])]
    print(f"  {results[0]['model']:<42} mIoU {results[0]['mIoU (%)']}")
    for row in rows:
        start = time.perf_counter()
        ious = [evaluate(train(row, left, steps, crops, points, k, width, seed), right, points, k)
                for seed in seeds]
        results.append(table_row(NAMES[row], ious))
        print(f"  {NAMES[row]:<42} mIoU {results[-1]['mIoU (%)']:>12}  "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    if out:
        os.makedirs(os.path.dirname(out) or '.', exist_ok=True)
        with open(out, 'w') as f:
            json.dump({'seeds': seeds, 'steps': steps, 'crops': crops, 'points': points, 'k': k,
                       'width': width, 'rows': results}, f, indent=2)
    return results


def markdown_table(rows: List[Dict[str, str]]) -> str:
    keys = list(rows[0])
    lines = ['| ' + ' | '.join(keys) + ' |', '|' + '|'.join('---' for _ in keys) + '|']
    return '\n'.join(lines + ['| ' + ' | '.join(r[key] for key in keys) + ' |' for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rows', nargs='+', default=list(ROWS[:5]), choices=ROWS)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--steps', type=int, default=300)
    parser.add_argument('--crops', type=int, default=2, help='crops per training step')
    parser.add_argument('--points', type=int, default=2048, help='points per crop')
    parser.add_argument('--k', type=int, default=16)
    parser.add_argument('--width', type=int, default=32)
    parser.add_argument('--rotation', default='up', choices=tuple(ROTATION),
                        help="random rotations of every crop: about the up axis, 'full' "
                             "(any 3-D rotation) or 'none'")
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', default='outputs/segment_points.json')
    parser.add_argument('--tiny', action='store_true', help='a seconds-long smoke run')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    global rotation
    rotation = args.rotation
    if args.tiny:
        args.seeds, args.steps, args.crops, args.points, args.width = [0], 2, 1, 512, 8
    try:
        results = run(args.rows, args.seeds, args.steps, args.crops, args.points, args.k,
                      args.width, args.out)
    except MissingDataError as error:
        fail_with_hint(error)
    print(markdown_table(results))


if __name__ == '__main__':
    main()

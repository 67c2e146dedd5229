"""Tutorial: segmenting a real cortical surface as a point cloud.

Run it alone (``python examples/segment_cortex.py --help``) or through the demo.

1. Data: the conte69 cortex meshes (32,492 vertices per hemisphere) with the
   Mesulam atlas (4 classes; the medial wall has no Mesulam class and is ignored
   in training and scoring). Train on the left hemisphere, test on the right one
   mirrored (:func:`datasets.cortex_split`): no test vertex is seen in training.
2. The frame. Both hemispheres are the same template surface in the same space
   (a mirrored right vertex lies a median 1.2 mm from the nearest left vertex) and
   the atlas is a fixed map on it, so in that frame the task is a coordinate look-up:
   copying the nearest labelled left vertex's label scores 69.5% mIoU (``--lookup``),
   and every model, with or without a graph, lands at 68-72% (``--frame template``;
   docs/results.md): what the shape could add is buried in the atlas's left-right
   differences. So each view is a "subject" in its own pose: centred and turned by a
   random angle about the superior (up) axis (``--frame up``, the default). A
   vertex's height and its distance from the vertical axis still say something;
   where it lies on the hemisphere must be read from the surface around it. (``--frame any``: a
   uniformly random 3-D rotation; at this budget no model learns it: 15-19% mIoU.)
3. Views: disjoint random samples of ``--points`` (512) vertices that together
   cover the hemisphere (:func:`graphs.split_crop`), so a view shows the whole
   hemisphere, sparsely: a vertex's 15 nearest neighbours lie within about 18 mm
   (median), so two EdgeConv hops see the surface some 3.5 cm around it. kNN graphs
   (k = 16 counting the self-loop), ``edge_attr`` the neighbour offsets
   (:func:`graphs.collate_clouds`).
4. Model: per-point features from two PyG ``EdgeConv`` layers, then a context
   block (none, LGA on the same kNN graph, or LatentGNN over each view, with
   ``norm='batch'``: see :data:`LATENT_NORM`), then a per-point classifier.
   The trivial rows: the majority class, and an MLP on the vertex
   coordinates alone (in the same frame), trained like the others.
5. Training on ``--views`` (8) views of the left hemisphere per step (AdamW,
   one-cycle); every row gets the same steps, views and rotations.
6. Evaluation: every vertex of the mirrored right hemisphere, split into views
   twice, each view in a fresh random pose, class probabilities averaged over the
   two (:func:`graphs.predict_by_crops`); mIoU and accuracy.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import MLP, EdgeConv
from tqdm import tqdm

import graphs
from datasets import Cortex, MissingDataError, cortex_split, fail_with_hint
from graphattn import LGA, LatentGNN
from training import (count_macs, count_parameters, markdown_table, run_environment,
                      segmentation_scores, summary)

CONTEXTS = ('none', 'lga', 'latentgnn')
#: Rows that need no graph: trained (the position-only MLP) or counted (the majority class).
TRIVIAL = ('majority', 'position-mlp')
#: The pose of a view: the template's own frame, a random turn about the up axis (conte69's
#: z, inferior -> superior), or a uniformly random 3-D rotation.
FRAMES = ('template', 'up', 'any')
UP_AXIS = 2
LATENT_NORMS = ('layer', 'batch')
#: LatentGNN's node norm here: 'batch' beat the library's node-level default 'layer' on each
#: of 3 seeds (51.0 +- 2.1 against 47.8 +- 1.8 mIoU at the short budget; docs/results.md).
LATENT_NORM = 'batch'
DISPLAY_NAMES = {'majority': 'trivial: majority class',
                 'position-mlp': 'trivial: position-only MLP',
                 'none': 'base', 'lga': 'base + LGA (kNN graph)',
                 'latentgnn': f"base + LatentGNN (norm='{LATENT_NORM}')"}
NUM_CLASSES = 4
CLASS_NAMES = Cortex.MESULAM_CLASSES
LR = 3e-3
SCALE_MM = 50.0   # coordinates / 50 mm: a hemisphere spans about [-1.5, 1.5]
EVAL_PASSES = 2   # the test hemisphere is predicted twice, in fresh poses


class PositionMLP(nn.Module):
    """The trivial learned predictor: class from the vertex coordinates alone, no graph."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.context_name = 'position-mlp'
        self.mlp = MLP([3, width, width, NUM_CLASSES])

    def forward(self, pos: torch.Tensor, edge_index: Optional[torch.Tensor] = None,
                edge_attr: Optional[torch.Tensor] = None,
                batch: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.mlp(pos)


class PointSeg(nn.Module):
    """EdgeConv x2 -> context block -> per-point MLP, on one kNN graph (with self-loops).

    ``latent_norm``: LatentGNN's node norm (``'batch'``, this example's choice, or
    ``'layer'``, the library's node-level default).
    """

    def __init__(self, context: str = 'none', width: int = 32,
                 latent_norm: str = LATENT_NORM):
        super().__init__()
        if context not in CONTEXTS:
            raise ValueError(f"unknown context {context!r}; choose one of {CONTEXTS}")
        if latent_norm not in LATENT_NORMS:
            raise ValueError(f"unknown latent_norm {latent_norm!r}; choose one of "
                             f"{LATENT_NORMS}")
        self.context_name = context
        self.conv1 = EdgeConv(MLP([2 * 3, width, width]), aggr='max')
        self.conv2 = EdgeConv(MLP([2 * width, width, width]), aggr='max')
        self.head = MLP([width, width, NUM_CLASSES], dropout=0.1)
        # Drawn after the base's weights, so that at one seed every row starts from the same
        # base and differs only by its block (docs/lga.md: the collages' seed-2 'collapse'
        # was the decoder's draw, which the block's weights used to shift).
        if context == 'lga':
            self.context = LGA.for_points(width, num_layers=4, fuse=True)
        elif context == 'latentgnn':
            self.context = LatentGNN(width, latent_dims=[32], channel_stride=2,
                                     norm=latent_norm)
        else:
            self.context = None

    def forward(self, pos: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor,
                batch: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.conv1(pos, edge_index)
        h = self.conv2(h, edge_index)
        if self.context_name == 'lga':
            h = self.context(h, edge_index, edge_attr)
        elif self.context_name == 'latentgnn':   # latent nodes per view
            h = self.context(h, batch)
        return self.head(h)


def logits(model: nn.Module, batch: Batch) -> torch.Tensor:
    """A model's logits on a batch of views (the ``Batch -> logits`` of predict_by_crops)."""
    return model(batch.pos, batch.edge_index, batch.edge_attr, batch.batch)


def pose(pos: torch.Tensor, frame: str, generator: torch.Generator) -> torch.Tensor:
    """A view's coordinates centred, scaled by 1 / 50 mm and turned as ``frame`` says."""
    if frame not in FRAMES:
        raise ValueError(f"unknown frame {frame!r}; choose one of {FRAMES}")
    pos = (pos - pos.mean(0)) / SCALE_MM
    if frame == 'template':
        return pos
    return graphs.random_rotate(pos, axis=UP_AXIS if frame == 'up' else None,
                                generator=generator)


def view(cortex: Cortex, generator: torch.Generator, keep: torch.Tensor, k: int,
         frame: str = 'up') -> tuple[Data, torch.Tensor]:
    """The vertices ``keep`` of a hemisphere, posed as ``frame`` says, as one kNN graph
    with self-loops; and their labels."""
    data = graphs.point_cloud_to_data(pose(cortex.pos[keep], frame, generator), k=k,
                                      loop=True)
    return data, cortex.labels[keep]


def views(num_vertices: int, size: int, generator: torch.Generator) -> List[torch.Tensor]:
    """Disjoint random samples of at most ``size`` vertices that together cover them all,
    so every view has the same density (a kNN neighbourhood spans the same area)."""
    return graphs.split_crop(torch.arange(num_vertices), size, generator=generator)


def make_model(name: str, latent_norm: str = LATENT_NORM) -> nn.Module:
    return PositionMLP() if name == 'position-mlp' else PointSeg(name, latent_norm=latent_norm)


def train_model(context: str, left: Cortex, steps: int, num_points: int, k: int, seed: int,
                progress: bool = True, frame: str = 'up', views_per_step: int = 8,
                latent_norm: str = LATENT_NORM):
    """Train one model; returns it and the median CPU seconds (process time) per step."""
    torch.manual_seed(seed)
    model = make_model(context, latent_norm)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LR, total_steps=steps,
                                                   pct_start=0.15)
    g = torch.Generator().manual_seed(seed)   # the same views and poses for every model
    step_times = []
    model.train()
    bar = tqdm(range(steps), desc=f'{context:>12} seed {seed}', disable=not progress,
               leave=False)
    for _ in bar:
        chosen = views(left.pos.size(0), num_points, g)[:views_per_step]
        batch = graphs.collate_clouds([pose(left.pos[i], frame, g) for i in chosen],
                                      y=[left.labels[i] for i in chosen], k=k, loop=True)
        start = time.process_time()
        loss = F.cross_entropy(logits(model, batch), batch.y, ignore_index=-1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        step_times.append(time.process_time() - start)
        bar.set_postfix(loss=f'{loss.item():.3f}')
    return model, statistics.median(step_times)


@torch.no_grad()
def predict(model: nn.Module, right: Cortex, num_points: int, k: int, frame: str = 'up',
            seed: int = 1234) -> torch.Tensor:
    """Class probabilities ``(N, 4)`` of every test vertex, averaged over
    :data:`EVAL_PASSES` coverings of the hemisphere by views in fresh poses."""
    model.eval()
    g = torch.Generator().manual_seed(seed)   # the same views and poses for every model
    crops = [part for _ in range(EVAL_PASSES) for part in views(right.pos.size(0),
                                                                 num_points, g)]
    return graphs.predict_by_crops(lambda batch: logits(model, batch), right.pos, crops, k=k,
                                   loop=True, transform=lambda pos: pose(pos, frame, g))


def evaluate(model: nn.Module, right: Cortex, num_points: int, k: int,
             frame: str = 'up') -> Dict[str, float]:
    """mIoU and accuracy (%) over every labelled vertex of the test hemisphere."""
    pred = predict(model, right, num_points, k, frame).argmax(1)
    return segmentation_scores(graphs.confusion_matrix(pred, right.labels, NUM_CLASSES,
                                                       ignore_index=-1))


def majority_scores(left: Cortex, right: Cortex) -> Dict[str, float]:
    """The trivial predictor: every test vertex gets the train hemisphere's commonest class."""
    counts = torch.bincount(left.labels[left.labels >= 0], minlength=NUM_CLASSES)
    pred = torch.full_like(right.labels, int(counts.argmax()))
    return segmentation_scores(graphs.confusion_matrix(pred, right.labels, NUM_CLASSES,
                                                       ignore_index=-1))


def lookup_scores(left: Cortex, right: Cortex) -> Dict[str, float]:
    """No learning, template frame: every test vertex takes the label of the nearest
    labelled train vertex. What position alone gives when the frame is shared (the reason
    for the poses)."""
    labelled = left.labels >= 0
    _, nearest = graphs.knn(left.pos[labelled], right.pos, 1)
    pred = left.labels[labelled][nearest]
    return segmentation_scores(graphs.confusion_matrix(pred, right.labels, NUM_CLASSES,
                                                       ignore_index=-1))


def run(models: List[str], seeds: List[int], steps: int, num_points: int, k: int, out: str,
        progress: bool = True, frame: str = 'up', views_per_step: int = 8,
        latent_norm: str = LATENT_NORM):
    left, right = cortex_split()
    print(f"cortex: train left hemisphere ({left.pos.size(0)} vertices; {views_per_step} views "
          f"of {num_points} per step), test mirrored right; frame '{frame}'; kNN k={k} with "
          f"self-loops; {steps} steps per model and seed; seeds {seeds}"
          + (" (ONE seed: no spread is measured)" if len(seeds) == 1 else ""))
    majority = majority_scores(left, right)
    results = [{'model': DISPLAY_NAMES['majority'], 'key': 'majority',
                'miou': [majority['miou']], 'pixel_acc': [majority['pixel_acc']],
                'params': 0, 'macs': 0, 'cpu_s_per_step': None}]
    trained = {}
    for context in models:
        scores, step_times = [], []
        for seed in seeds:
            model, step_time = train_model(context, left, steps, num_points, k, seed, progress,
                                           frame, views_per_step, latent_norm)
            scores.append(evaluate(model, right, num_points, k, frame))
            step_times.append(step_time)
            trained.setdefault(context, model)
        data, _ = view(right, torch.Generator().manual_seed(0), torch.arange(num_points), k,
                       frame)
        macs = count_macs(trained[context], data.pos, data.edge_index, data.edge_attr)
        name = (f"base + LatentGNN (norm='{latent_norm}')" if context == 'latentgnn'
                else DISPLAY_NAMES[context])
        results.append({'model': name, 'key': context,
                        'miou': [s['miou'] for s in scores],
                        'pixel_acc': [s['pixel_acc'] for s in scores],
                        'params': count_parameters(trained[context]), 'macs': macs,
                        'cpu_s_per_step': statistics.median(step_times)})
        row = summary(results[-1], 'accuracy (%)', f'{num_points:,}-point view')
        print(f"  {row['model']:<36} mIoU {row['mIoU (%)']:>12}  accuracy "
              f"{row['accuracy (%)']:>12}  ({row['CPU ms / train step']} CPU ms/step)")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, 'cortex.json'), 'w') as f:
        json.dump({'config': {'seeds': seeds, 'steps': steps, 'num_points': num_points,
                              'views_per_step': views_per_step, 'k': k, 'self_loops': True,
                              'frame': frame, 'eval_passes': EVAL_PASSES,
                              'latentgnn_norm': latent_norm, 'optimizer': 'AdamW',
                              'max_lr': LR, 'weight_decay': 1e-4,
                              'schedule': 'OneCycle, 15% warm-up',
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
    parser.add_argument('--points', type=int, default=512, help='vertices per view')
    parser.add_argument('--views', type=int, default=8, help='views per training step')
    parser.add_argument('--k', type=int, default=16)
    parser.add_argument('--frame', choices=FRAMES, default='up',
                        help="the pose of a view: 'template' (position gives the class away), "
                             "'up' (random turn about the up axis), 'any' (random 3-D "
                             "rotation)")
    parser.add_argument('--latent-norm', choices=LATENT_NORMS, default=LATENT_NORM,
                        help="LatentGNN's node norm")
    parser.add_argument('--out', default='outputs/cortex')
    parser.add_argument('--no-progress', action='store_true', help='hide progress bars')
    parser.add_argument('--lookup', action='store_true',
                        help='only score the nearest-train-vertex look-up in the template frame')
    args = parser.parse_args()
    try:
        if args.lookup:
            scores = lookup_scores(*cortex_split())
            print(f"nearest-vertex look-up, template frame: mIoU {scores['miou']:.1f}%, "
                  f"accuracy {scores['pixel_acc']:.1f}%")
            return
        results, _, _ = run(args.models, args.seeds, args.steps, args.points, args.k, args.out,
                            progress=not args.no_progress, frame=args.frame, views_per_step=args.views,
                            latent_norm=args.latent_norm)
    except MissingDataError as error:
        fail_with_hint(error)
    print(markdown_table(results))


if __name__ == '__main__':
    main()

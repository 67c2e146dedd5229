"""Tutorial: from a labelled point cloud to a trained segmentation model, with graphs' helpers.

Run ``python examples/segment_points.py --help``; ``--tiny`` is a seconds-long smoke run.

1. Data: a real labelled cloud, the conte69 left cortical hemisphere (32,492 vertices,
   4 Mesulam classes, the medial wall unlabelled) from ``examples/datasets.py``; the test
   cloud is the mirrored right hemisphere. Only vertex positions are input.
2. Training views: ball crops of radius 50 mm of the large cloud
   (:func:`graphs.random_crops`), resampled to ``--points`` points
   (:func:`graphs.resample`), each centred, scaled and randomly rotated
   (:func:`graphs.random_pose`: a class must be read from the shape, not the coordinates),
   batched as kNN graphs with self-loops and relative-position edge attributes
   (:func:`graphs.collate_clouds`).
3. Model: two EdgeConv layers, an optional context block (LGA on the same kNN graph, or
   LatentGNN over each crop), a per-point classifier (:class:`models.PointSegNet`, the
   network of ``segment_cortex.py`` with this script's blocks), trained by
   :func:`experiment.fit` (under ``torchrun --nproc_per_node=N``, with ``--crops`` a multiple
   of N, each process trains on N-th of every step's crops).
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
import math
import os
from typing import Dict, List

import torch
from torch import nn

import distributed
import experiment
import graphs
from datasets import Cortex, MissingDataError, cortex_split, fail_with_hint
from experiment import Budget
from graphattn import LGA, LatentGNN
from models import PointSegNet
from segment_cortex import PosedCloudsTask, on_its_device
from training import mean_std

CLASSES = Cortex.MESULAM_CLASSES
RADIUS = 50.0   # mm: the training crops are balls of this radius (about a third of a hemisphere)
ROTATION = {'full': None, 'up': 2, 'none': None}   # the axis of graphs.random_pose's turn
ROWS = ('position', 'base', 'lga', 'latentgnn', 'latentgnn-batch', 'lga-neighbor', 'lga-pair')
NAMES = {'position': 'position only (per-point MLP, no graph)', 'base': 'base (2 × EdgeConv)',
         'lga': 'base + LGA (LGA.for_points)', 'latentgnn': 'base + LatentGNN (norm=layer)',
         'latentgnn-batch': "base + LatentGNN norm='batch'",
         'lga-neighbor': "base + LGA score='neighbor'", 'lga-pair': "base + LGA score='pair'"}
EVAL_SEED = 1234   # the same test crops and rotations for every model


def make_model(row: str, width: int = 32) -> PointSegNet:
    """Row ``row``'s network: 3 fused LGA layers with the row's edge-score reading ('lga',
    'lga-neighbor', 'lga-pair'), LatentGNN with 16 latent nodes (norm 'layer' or 'batch'),
    no block ('base') or no graph at all ('position')."""
    if row not in ROWS:
        raise ValueError(f"unknown row {row!r}; choose one of {ROWS}")
    if row.startswith('lga'):
        score = row.split('-')[1] if '-' in row else 'center'
        block = lambda w: LGA.for_points(w, num_layers=3, fuse=True, score=score)  # noqa: E731
    elif row.startswith('latentgnn'):
        norm = 'batch' if row == 'latentgnn-batch' else None
        block = lambda w: LatentGNN(w, latent_dims=[16], norm=norm)  # noqa: E731
    else:
        block = None
    return PointSegNet(block, width, len(CLASSES), position_only=row == 'position')


def iou_scores(iou: torch.Tensor) -> Dict[str, float]:
    """Per-class IoU (fractions, NaN for a class absent from targets and predictions) as
    the table's numbers: mIoU over the present classes and each class's IoU, in %."""
    return {'miou': 100 * float(torch.nanmean(iou)),
            **{label: 100 * float(iou[c]) for c, label in enumerate(CLASSES)}}


class PointsTask(PosedCloudsTask):
    """Random balls of the left hemisphere, resampled to ``points`` points and posed as
    ``rotation`` says; covering balls of the mirrored right hemisphere at test. The JSON
    and table are ``<name>.json`` and ``<name>.md``."""

    rows = {'majority': 'majority class', **NAMES}
    metrics = {'miou': 'mIoU (%)', **{label: label for label in CLASSES}}

    def __init__(self, points: int = 2048, k: int = 16, width: int = 32,
                 rotation: str = 'up', name: str = 'segment_points'):
        if rotation not in ROTATION:
            raise ValueError(f"unknown rotation {rotation!r}; choose one of {tuple(ROTATION)}")
        self.points, self.k, self.width, self.rotation, self.name = (points, k, width,
                                                                     rotation, name)

    def make_data(self):
        return cortex_split()

    def build(self, row: str) -> PointSegNet:
        return make_model(row, self.width)

    def pose(self, pos: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A crop centred, scaled to about the unit ball and randomly rotated."""
        return graphs.random_pose(pos, scale=RADIUS, rotate=self.rotation != 'none',
                                  axis=ROTATION[self.rotation], generator=generator)

    def sample(self, cloud: Cortex, batch_size: int, generator: torch.Generator):
        balls = graphs.random_crops(cloud.pos, batch_size, radius=RADIUS, generator=generator)
        index = [graphs.resample(ball, self.points, generator=generator) for ball in balls]
        return self.posed_batch(cloud, index, generator)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, row: str, cloud: Cortex) -> Dict[str, float]:
        """Per-class IoU on every labelled point, from probabilities averaged over crops."""
        model.eval()
        g = torch.Generator().manual_seed(EVAL_SEED)
        crops = [part for ball in graphs.covering_crops(cloud.pos, radius=RADIUS, generator=g)
                 for part in graphs.split_crop(ball, self.points, generator=g)]
        probs = graphs.predict_by_crops(on_its_device(model), cloud.pos, crops, k=self.k,
                                        loop=True, transform=lambda pos: self.pose(pos, g))
        return iou_scores(graphs.per_class_iou(probs.argmax(1), cloud.labels, len(CLASSES),
                                               ignore_index=-1))

    def trivial(self, train: Cortex, test: Cortex) -> Dict[str, Dict[str, float]]:
        labels = train.labels[train.labels >= 0]
        majority = int(torch.bincount(labels, minlength=len(CLASSES)).argmax())
        pred = torch.full_like(test.labels, majority)
        return {'majority': iou_scores(graphs.per_class_iou(pred, test.labels, len(CLASSES),
                                                            ignore_index=-1))}

    def macs_input(self, test: Cortex) -> tuple:
        first = test.pos[:self.points]
        return (graphs.point_cloud_to_data(self.pose(first, torch.Generator().manual_seed(0)),
                                           k=self.k, loop=True),)

    def config(self) -> Dict[str, object]:
        return {'points': self.points, 'k': self.k, 'width': self.width,
                'rotation': self.rotation, 'radius_mm': RADIUS, 'classes': list(CLASSES)}

    def columns(self, result: Dict[str, object]) -> Dict[str, str]:
        """mIoU and each class's IoU (mean ± std over seeds; a class's NaNs, where it was
        neither in the targets nor predicted, left out)."""
        row = {'model': str(result['model']), 'mIoU (%)': mean_std(result['miou'])}
        for label in CLASSES:
            values = [v for v in result[label] if not math.isnan(v)]
            row[label] = mean_std(values or [math.nan])
        return row


def run(rows: List[str], budget: Budget, points: int = 2048, k: int = 16, width: int = 32,
        rotation: str = 'up', out: str = ''):
    """Every row at every seed of ``budget`` (``budget.batch_size`` crops per step); returns
    :func:`experiment.run`'s ``(results, models, test)``. ``out``: the JSON's path (the
    table goes beside it, as ``.md``)."""
    folder, file = os.path.split(out)
    task = PointsTask(points, k, width, rotation, os.path.splitext(file)[0] or 'segment_points')
    left, right = task.make_data()
    distributed.say(f"train: left hemisphere ({left.pos.size(0)} vertices), {budget.steps} "
                    f"steps of {budget.batch_size} balls of radius {RADIUS:.0f} mm resampled "
                    f"to {points} points, rotation {rotation!r}, k={k}; test: every labelled "
                    f"vertex of the mirrored right hemisphere; seeds {list(budget.seeds)}")
    return experiment.run(task, rows, budget, (folder or '.') if out else None,
                          data=(left, right))


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
    parser.add_argument('--out', default='outputs/segment_points.json',
                        help='the JSON (the Markdown table goes beside it)')
    parser.add_argument('--tiny', action='store_true', help='a seconds-long smoke run')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.tiny:
        args.seeds, args.steps, args.crops, args.points, args.width = [0], 2, 1, 512, 8
    # AdamW at 3e-3 with the one-cycle schedule's own default warm-up (30% of the steps).
    budget = Budget(args.steps, args.crops, tuple(args.seeds), warmup=0.3)
    try:
        results, _, _ = run(args.rows, budget, args.points, args.k, args.width, args.rotation,
                            args.out)
    except MissingDataError as error:
        fail_with_hint(error)
    if distributed.is_main():
        print(experiment.table(PointsTask(), results))
    distributed.cleanup()


if __name__ == '__main__':
    main()

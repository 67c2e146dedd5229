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
   differences. So each view is a "subject" in its own pose (:func:`graphs.random_pose`):
   centred, scaled by 1 / 50 mm and turned by a random angle about the superior (up)
   axis (``--frame up``, the default). A vertex's height and its distance from the
   vertical axis still say something; where it lies on the hemisphere must be read from
   the surface around it. (``--frame any``: a uniformly random 3-D rotation; at this
   budget no model learns it: 15-19% mIoU.)
3. Views: disjoint random samples of ``--points`` (512) vertices that together
   cover the hemisphere (:func:`graphs.split_crop`), so a view shows the whole
   hemisphere, sparsely: a vertex's 15 nearest neighbours lie within about 18 mm
   (median), so two EdgeConv hops see the surface some 3.5 cm around it. kNN graphs
   (k = 16 counting the self-loop), ``edge_attr`` the neighbour offsets
   (:func:`graphs.collate_clouds`).
4. Model: per-point features from two PyG ``EdgeConv`` layers, then a context
   block (none, LGA on the same kNN graph, or LatentGNN over each view, with
   ``norm='batch'``: see :data:`LATENT_NORM`), then a per-point classifier
   (:class:`models.PointSegNet`). The trivial rows: the majority class, and an MLP on
   the vertex coordinates alone (in the same frame), trained like the others. The rival,
   not a demo row: ``--models deeper``, the base with :data:`DEEPER_CONVS` more EdgeConv
   layers, about base + LGA's parameter count (it scores higher than LGA here:
   docs/results.md).
5. Training on ``--views`` (8) views of the left hemisphere per step
   (:func:`experiment.fit`: AdamW, one-cycle); every row gets the same steps, views and
   rotations. Under ``torchrun --nproc_per_node=N`` each process trains on N-th of every
   step's views, whole graphs (:meth:`PosedCloudsTask.shard`), and rank 0 writes the results.
6. Evaluation: every vertex of the mirrored right hemisphere, split into views
   twice, each view in a fresh random pose, class probabilities averaged over the
   two (:func:`graphs.predict_by_crops`); mIoU and accuracy.
"""
from __future__ import annotations

import argparse
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import MLP

import distributed
import experiment
import graphs
from datasets import Cortex, MissingDataError, cortex_split, fail_with_hint
from experiment import Budget, Task
from graphattn import LGA, LatentGNN
from models import PointSegNet
from training import segmentation_scores

CONTEXTS = ('none', 'lga', 'latentgnn')
#: The trained rows: the position-only MLP (no graph), then each context block.
MODELS = ('position-mlp', *CONTEXTS)
#: Extra EdgeConv layers of the 'deeper' rival: the base made deeper to LGA's parameter count
#: (21,796 against 22,372), with five more hops where LGA's four layers add four. Not a demo
#: row (``--models deeper``; docs/results.md).
DEEPER_CONVS = 5
RIVALS = ('deeper',)
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
                 'deeper': f'base + {DEEPER_CONVS} EdgeConv (params ≈ LGA)',
                 'latentgnn': f"base + LatentGNN (norm='{LATENT_NORM}')"}
NUM_CLASSES = 4
CLASS_NAMES = Cortex.MESULAM_CLASSES
SCALE_MM = 50.0   # coordinates / 50 mm: a hemisphere spans about [-1.5, 1.5]
EVAL_PASSES = 2   # the test hemisphere is predicted twice, in fresh poses
EVAL_SEED = 1234  # the same test views and poses for every model


class PositionMLP(nn.Module):
    """The trivial learned predictor: class from the vertex coordinates alone, no graph."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.mlp = MLP([3, width, width, NUM_CLASSES])

    def forward(self, data: Data | Batch) -> torch.Tensor:
        return self.mlp(data.pos)


def make_model(name: str, latent_norm: str = LATENT_NORM) -> nn.Module:
    """A fresh model of row ``name``: the position-only MLP, or :class:`models.PointSegNet`
    with no block, 4 fused LGA layers, LatentGNN (32 latent nodes, ``latent_norm``), or
    :data:`DEEPER_CONVS` more EdgeConv layers (the rival ``'deeper'``)."""
    if latent_norm not in LATENT_NORMS:
        raise ValueError(f"unknown latent_norm {latent_norm!r}; choose one of {LATENT_NORMS}")
    if name == 'position-mlp':
        return PositionMLP()
    if name == 'deeper':
        return PointSegNet(None, num_classes=NUM_CLASSES, extra_convs=DEEPER_CONVS)
    blocks = {'none': None,
              'lga': lambda width: LGA.for_points(width, num_layers=4, fuse=True),
              'latentgnn': lambda width: LatentGNN(width, latent_dims=[32], channel_stride=2,
                                                   norm=latent_norm)}
    if name not in blocks:
        raise ValueError(f"unknown context {name!r}; choose one of {CONTEXTS}")
    return PointSegNet(blocks[name], num_classes=NUM_CLASSES)


def scores(pred: torch.Tensor, labels: torch.Tensor) -> Dict[str, float]:
    """mIoU and accuracy (%) over every labelled vertex (the medial wall, -1, is left out)."""
    return segmentation_scores(graphs.confusion_matrix(pred, labels, NUM_CLASSES,
                                                       ignore_index=-1))


def on_its_device(model: nn.Module):
    """``model`` as a ``Batch -> logits`` callable for CPU batches: a model trained on a GPU
    (under ``torchrun``) gets each batch moved there and gives its logits back on the CPU."""
    device = next(model.parameters()).device
    if device.type == 'cpu':
        return model
    return lambda batch: model(batch.to(device)).cpu()


class PosedCloudsTask(Task):
    """What the two cortex tasks share (this one and ``segment_points.PointsTask``): a training
    batch is some samples of a labelled hemisphere, each posed by :meth:`pose`, collated into
    one batch of kNN graphs (``k`` with the self-loop); the loss leaves out the medial wall."""

    k: int = 16

    def pose(self, pos: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def posed_batch(self, cortex: Cortex, samples: List[torch.Tensor],
                    generator: torch.Generator):
        """``(batch, labels)`` of the vertex index sets ``samples``, each posed afresh."""
        batch = graphs.collate_clouds([self.pose(cortex.pos[i], generator) for i in samples],
                                      y=[cortex.labels[i] for i in samples], k=self.k,
                                      loop=True)
        return batch, batch.y

    def loss(self, model: nn.Module, row: str, batch: Batch, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(batch), y, ignore_index=-1)   # -1: the medial wall

    def shard(self, batch: Batch, y: torch.Tensor, rank: int,
              world_size: int) -> Tuple[Batch, torch.Tensor]:
        """Under ``torchrun``: whole graphs, rank ``r`` keeping graphs ``r, r + world_size,
        ...`` of the batch (re-collated, with their labels), so no graph is cut in two.

        Each process's loss is the mean over its own labelled points and DDP averages the
        gradients, as for images; unlike equal-sized images, the ranks' shares may hold
        different numbers of labelled points (the medial wall is left out), so the step is
        the single-process step up to that weighting."""
        keep = distributed.shard(torch.arange(batch.num_graphs), rank, world_size)
        part = Batch.from_data_list(batch.index_select(keep))
        return part, part.y


class CortexTask(PosedCloudsTask):
    """Left hemisphere -> mirrored right hemisphere, in views of ``num_points`` vertices
    posed as ``frame`` says; a batch is ``batch_size`` views of one covering of the left
    hemisphere, as kNN graphs (``k`` with the self-loop)."""

    name = 'cortex'
    rows = DISPLAY_NAMES
    metrics = {'miou': 'mIoU (%)', 'pixel_acc': 'accuracy (%)'}

    def __init__(self, num_points: int = 512, k: int = 16, frame: str = 'up',
                 latent_norm: str = LATENT_NORM):
        if frame not in FRAMES:
            raise ValueError(f"unknown frame {frame!r}; choose one of {FRAMES}")
        if latent_norm not in LATENT_NORMS:
            raise ValueError(f"unknown latent_norm {latent_norm!r}; choose one of "
                             f"{LATENT_NORMS}")
        self.num_points, self.k, self.frame, self.latent_norm = num_points, k, frame, latent_norm
        self.unit = f'{num_points:,}-point view'
        self.rows = {**DISPLAY_NAMES, 'latentgnn': f"base + LatentGNN (norm='{latent_norm}')"}

    def make_data(self):
        return cortex_split()

    def build(self, row: str) -> nn.Module:
        return make_model(row, self.latent_norm)

    def pose(self, pos: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A view's coordinates centred, scaled by 1 / 50 mm and turned as ``frame`` says."""
        return graphs.random_pose(pos, scale=SCALE_MM, rotate=self.frame != 'template',
                                  axis=UP_AXIS if self.frame == 'up' else None,
                                  generator=generator)

    def views(self, cortex: Cortex, generator: torch.Generator) -> List[torch.Tensor]:
        """Disjoint random samples of at most ``num_points`` vertices that together cover
        the hemisphere, so every view has the same density (a kNN neighbourhood spans the
        same area)."""
        return graphs.split_crop(torch.arange(cortex.pos.size(0)), self.num_points,
                                 generator=generator)

    def sample(self, left: Cortex, batch_size: int, generator: torch.Generator):
        return self.posed_batch(left, self.views(left, generator)[:batch_size], generator)

    @torch.no_grad()
    def predict(self, model: nn.Module, right: Cortex) -> torch.Tensor:
        """Class probabilities ``(N, 4)`` of every test vertex, averaged over
        :data:`EVAL_PASSES` coverings of the hemisphere by views in fresh poses."""
        model.eval()
        g = torch.Generator().manual_seed(EVAL_SEED)
        crops = [part for _ in range(EVAL_PASSES) for part in self.views(right, g)]
        return graphs.predict_by_crops(on_its_device(model), right.pos, crops, k=self.k,
                                       loop=True, transform=lambda pos: self.pose(pos, g))

    def evaluate(self, model: nn.Module, row: str, right: Cortex) -> Dict[str, float]:
        return scores(self.predict(model, right).argmax(1), right.labels)

    def trivial(self, left: Cortex, right: Cortex) -> Dict[str, Dict[str, float]]:
        """Every test vertex gets the train hemisphere's commonest class."""
        counts = torch.bincount(left.labels[left.labels >= 0], minlength=NUM_CLASSES)
        return {'majority': scores(torch.full_like(right.labels, int(counts.argmax())),
                                   right.labels)}

    def view(self, cortex: Cortex, keep: torch.Tensor,
             generator: torch.Generator) -> Data:
        """The vertices ``keep`` of a hemisphere, posed, as one kNN graph with self-loops."""
        return graphs.point_cloud_to_data(self.pose(cortex.pos[keep], generator), k=self.k,
                                          loop=True)

    def macs_input(self, right: Cortex) -> tuple:
        first = torch.arange(self.num_points)
        return (self.view(right, first, torch.Generator().manual_seed(0)),)

    def config(self) -> Dict[str, object]:
        return {'num_points': self.num_points, 'k': self.k, 'self_loops': True,
                'frame': self.frame, 'scale_mm': SCALE_MM, 'eval_passes': EVAL_PASSES,
                'latentgnn_norm': self.latent_norm, 'classes': list(CLASS_NAMES),
                'ignored': 'medial wall'}


def lookup_scores(left: Cortex, right: Cortex) -> Dict[str, float]:
    """No learning, template frame: every test vertex takes the label of the nearest
    labelled train vertex. What position alone gives when the frame is shared (the reason
    for the poses)."""
    labelled = left.labels >= 0
    _, nearest = graphs.knn(left.pos[labelled], right.pos, 1)
    return scores(left.labels[labelled][nearest], right.labels)


def run(models: List[str], budget: Budget, num_points: int = 512, k: int = 16,
        out: Optional[str] = None, progress: bool = True, frame: str = 'up',
        latent_norm: str = LATENT_NORM):
    """The cortex comparison of ``models`` (rows of :data:`MODELS`), ``budget.batch_size``
    views per step; returns :func:`experiment.run`'s ``(results, models, test)`` (``test``:
    the mirrored right hemisphere)."""
    task = CortexTask(num_points, k, frame, latent_norm)
    left, right = task.make_data()
    seeds = list(budget.seeds)
    distributed.say(f"cortex: train left hemisphere ({left.pos.size(0)} vertices; "
                    f"{budget.batch_size} views of {num_points} per step), test mirrored "
                    f"right; frame '{frame}'; kNN k={k} with self-loops; {budget.steps} steps "
                    f"per model and seed; seeds {seeds}"
                    + (" (ONE seed: no spread is measured)" if len(seeds) == 1 else ""))
    return experiment.run(task, models, budget, out, progress, data=(left, right))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', nargs='+', default=list(MODELS), choices=MODELS + RIVALS)
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
            found = lookup_scores(*cortex_split())
            print(f"nearest-vertex look-up, template frame: mIoU {found['miou']:.1f}%, "
                  f"accuracy {found['pixel_acc']:.1f}%")
            return
        budget = Budget(args.steps, args.views, tuple(args.seeds))
        results, _, _ = run(args.models, budget, args.points, args.k, args.out,
                            not args.no_progress, args.frame, args.latent_norm)
    except MissingDataError as error:
        fail_with_hint(error)
    if distributed.is_main():
        print(experiment.table(CortexTask(args.points, args.k, args.frame, args.latent_norm),
                               results))
    distributed.cleanup()


if __name__ == '__main__':
    main()

"""Tutorial: does LGA help where only context can tell? Glass objects on real photos.

    python examples/segment_glass.py --rows base lga4 latentgnn --seeds 0 --steps 600

The steps, each in its own function below:

1. Data (:func:`make_data`): glass scenes of :mod:`glass` (64x64 crops of real photos, 1 or 2
   Fashion-MNIST silhouettes rendered as glass, 11 classes); train scenes from the train photos
   and train items, test scenes from other photos and the test items.
2. Models (:class:`GlassNet`): a light U-Net (19-px receptive field), encoder to 1/4
   resolution, one context block on the 1/4 map, decoder with a skip from 1/2. Its receptive
   field is computed from its layers (:func:`glass.receptive_field`). Rows (:data:`ROWS`): the
   base; the base made deeper to the parameter count of base + LGA-4; LGA without its
   attention (a depthwise 3x3 stack as deep, :class:`DepthwiseStack`); + LGA at depth 1 to 16;
   + LatentGNN; + non-local; and two trivial rows: every pixel background, and a per-pixel
   colour classifier (1x1 convolutions).
3. Training (:class:`GlassTask`, run by :func:`experiment.fit`): the same scenes, batches,
   steps and optimiser (AdamW, one-cycle) for every row, random horizontal flips
   (:meth:`GlassTask.sample`), one torch thread; the context block is the only difference.
4. Evaluation (:func:`evaluate`): mIoU over all test pixels and over the interior pixels (whose
   whole base receptive field sees one label: :func:`glass.interior_mask`), and the fraction of
   each test object's pixels labelled right, by object size (a size bin without test objects,
   possible on a small test set, has no score: null in the JSON, 'n/a' in the tables).
5. Report (:func:`run`, through :func:`experiment.run`): JSON with every seed's numbers and a
   Markdown table of mean ± std (:meth:`GlassTask.columns`); with ``--figures``, the figures
   and the merged tables of several result files (:func:`merged_tables`).
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import time
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

import experiment
from datasets import MissingDataError, fail_with_hint, load_fashion_mnist
from experiment import Budget, Task
from glass import GlassScenes, interior_mask, receptive_field, stack_scenes
import models
from models import conv_block
from training import confusion_matrix, markdown_table, mean_std, segmentation_scores

from graphattn import LGA2d

#: The task: canvas side, objects per scene, object box sides (px), background zoom.
TASK = dict(size=64, objects=(1, 2), sides=(36, 64), zoom=(1.0, 2.0))
#: Object-size bins (box side in pixels, lower bounds) for the by-size scores.
SIZE_BINS = (36, 46, 56)
#: Extra 3x3 conv blocks at 1/4 of the 'deeper' row: chosen so that its parameter count
#: is the nearest to base + LGA at depth 4 (see the table's params column).
DEEPER_BLOCKS = 1

#: LGA depths; 'lga<d>' is today's LGA2d default stack, 'lga<d>-0.2' the 0.2 stack (each layer
#: replaces its input: no residual, no normalisation, default-initialised fusion).
DEPTHS = (1, 2, 3, 4, 8, 16)
#: Depths of the reach-matched rival ('dwconv<d>', :class:`DepthwiseStack`).
RIVAL_DEPTHS = (4, 8, 16)
#: Depths run with LGA's 'neighbor' reading too ('lga<d>-neighbor'): its score compares the
#: content across each edge, which an outline changes.
NEIGHBOR_DEPTHS = (4, 8)
ROWS = ('background', 'colour', 'base', 'deeper', *[f'dwconv{d}' for d in RIVAL_DEPTHS],
        'dwconv8-convex',
        *[f'lga{d}' for d in DEPTHS], *[f'lga{d}-neighbor' for d in NEIGHBOR_DEPTHS],
        'latentgnn', 'nonlocal', *[f'lga{d}-0.2' for d in DEPTHS])
LGA_0_2 = dict(residual=False, norm='none', output_init='default')
DISPLAY = {'background': 'trivial: all background', 'colour': 'trivial: per-pixel colour',
           'base': 'base', 'deeper': f'base + {DEEPER_BLOCKS} conv block (params ≈ LGA-4)',
           'latentgnn': 'base + LatentGNN', 'nonlocal': 'base + non-local',
           **{f'dwconv{d}': f'base + depthwise 3x3 stack, depth {d} (LGA-{d} without attention)'
              for d in RIVAL_DEPTHS},
           'dwconv8-convex': 'probe: the depthwise stack, depth 8, each filter a softmax',
           **{f'lga{d}-neighbor': f"base + LGA, depth {d}, score='neighbor'"
              for d in NEIGHBOR_DEPTHS},
           **{f'lga{d}': f'base + LGA, depth {d}' for d in DEPTHS},
           **{f'lga{d}-0.2': f'base + LGA 0.2 stack, depth {d}' for d in DEPTHS}}


class DepthwiseStack(nn.Module):
    """The reach-matched rival of LGA at depth ``L``: :class:`~graphattn.LGA2d`'s default
    stack with each layer's attention replaced by a learned depthwise 3x3 filter.

    An LGA layer sums its 3x3 neighbourhood with weights computed from the features (then the
    value map and a ReLU); here the weights are a fixed filter per channel. Everything else is
    LGA2d's: a 1x1 projection, ``L`` pre-norm residual layers
    ``h = h + relu(pointwise(depthwise(layer_norm(h))))`` (the norm over channels, per
    pixel), and a 1x1 fusion of ``[x, h]`` that starts as ``[I | 0]``, so the block is the
    identity at initialisation. It reaches as far (``L`` hops, 8 px of input per hop at 1/4),
    and has about LGA's parameters (an LGA layer's value map and scores, 1,353 at 32 channels,
    against the 1,376 of a depthwise and a pointwise convolution). So the row asks whether
    LGA's gain comes from its attention or from its reach alone.

    ``convex=True`` (row 'dwconv<d>-convex', a probe) makes each filter a softmax over its 9
    taps, renormalised over the taps inside the map as LGA's softmax is over the neighbours a
    pixel has: a static attention, an average with learned weights that cannot take
    differences, unlike a free filter.
    """

    def __init__(self, channels: int, num_layers: int, convex: bool = False):
        super().__init__()
        self.convex = convex
        self.proj = nn.Conv2d(channels, channels, 1)
        self.norms = nn.ModuleList(nn.LayerNorm(channels) for _ in range(num_layers))
        self.depthwise = nn.ModuleList(
            ConvexDepthwise(channels) if convex else
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
            for _ in range(num_layers))
        self.pointwise = nn.ModuleList(nn.Conv2d(channels, channels, 1)
                                       for _ in range(num_layers))
        self.fuse = nn.Conv2d(2 * channels, channels, 1)
        with torch.no_grad():   # [I | 0], as LGA2d's output_init='identity'
            self.fuse.weight.zero_()
            self.fuse.weight[:, :channels, 0, 0].copy_(torch.eye(channels))
            self.fuse.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)
        for norm, depthwise, pointwise in zip(self.norms, self.depthwise, self.pointwise):
            z = norm(h.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            h = h + torch.relu(pointwise(depthwise(z)))
        return self.fuse(torch.cat([x, h], dim=1))


class ConvexDepthwise(nn.Module):
    """A depthwise 3x3 filter whose taps are a softmax (zero-initialised: the mean of the
    3x3 window), renormalised over the taps that fall inside the map."""

    def __init__(self, channels: int):
        super().__init__()
        self.taps = nn.Parameter(torch.zeros(channels, 9))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = torch.softmax(self.taps, dim=-1).view(-1, 1, 3, 3)
        inside = torch.ones_like(x[:1])
        return (nn.functional.conv2d(x, weight, padding=1, groups=x.size(1))
                / nn.functional.conv2d(inside, weight, padding=1, groups=x.size(1)))


def context_block(row: str, channels: int) -> nn.Module:
    """The row's context block on the 1/4 map (``nn.Identity`` for the base)."""
    if row in ('base', 'deeper'):
        return nn.Identity()
    if row.startswith('dwconv'):
        depth, _, variant = row[len('dwconv'):].partition('-')
        return DepthwiseStack(channels, int(depth), convex=variant == 'convex')
    if row.startswith('lga'):
        depth, _, variant = row[3:].partition('-')
        options = LGA_0_2 if variant == '0.2' else dict(score=variant) if variant else {}
        return LGA2d(channels, num_layers=int(depth), fuse=True, **options)
    if row in ('latentgnn', 'nonlocal'):   # the collage network's blocks, unchanged
        return models.context_block(row, channels)
    raise ValueError(f"unknown row {row!r}; choose one of {ROWS}")


class GlassNet(nn.Module):
    """A light U-Net: two conv blocks (3x3 conv, batch norm, ReLU) at 1/2 resolution and one at
    1/4 (widths w, 2w), the context block on the 1/4 map (16x16 for 64x64 scenes), then a
    bilinear upsampling to 1/2, concatenation with the 1/2 features, a 1x1 conv block, a 1x1
    head and a bilinear upsampling to the input's size.

    Without a context block it sees 19x19 input pixels (:meth:`receptive_field`), about half an
    object's box (36-64 px). ``extra_blocks`` more 3x3 blocks at 1/4 make the 'deeper' rival
    (each widens the field by 8 px).
    """

    def __init__(self, context: str = 'base', width: int = 16, num_classes: int = 11,
                 extra_blocks: int = 0):
        super().__init__()
        w = width
        # Inputs are standardised with fixed constants (roughly the photos' statistics).
        self.register_buffer('mean', torch.tensor([0.45, 0.42, 0.40]).view(1, 3, 1, 1))
        self.register_buffer('std', torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1))
        self.enc1 = nn.Sequential(conv_block(3, w, 2), conv_block(w, w))                  # 1/2
        self.enc2 = nn.Sequential(conv_block(w, 2 * w, 2),                                 # 1/4
                                  *[conv_block(2 * w, 2 * w) for _ in range(extra_blocks)])
        self.up1 = nn.Upsample(scale_factor=2, mode='bilinear', align_corners=False)
        # A 1x1 decoder block: a 3x3 one would widen the field by 8 px for little else.
        self.dec1 = nn.Sequential(nn.Conv2d(3 * w, w, 1, bias=False), nn.BatchNorm2d(w),
                                  nn.ReLU(inplace=True))
        self.head = nn.Conv2d(w, num_classes, 1)
        self.up2 = nn.Upsample(scale_factor=2, mode='bilinear', align_corners=False)
        # Drawn after the base's weights, so that at one seed every row starts from the base
        # row's weights and differs only by its block (docs/lga.md, the collages' seed 2).
        self.context = context_block(context, 2 * w)

    def paths(self) -> List[List[nn.Module]]:
        """Input-to-output chains of layers: through the context block, and through the skip."""
        return [[self.enc1, self.enc2, self.context, self.up1, self.dec1, self.head, self.up2],
                [self.enc1, self.dec1, self.head, self.up2]]

    def receptive_field(self) -> int:
        """Side (px) of the input window an output pixel sees; ``ValueError`` if unbounded."""
        return max(receptive_field(p) for p in self.paths())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        f1 = self.enc1((image - self.mean) / self.std)
        f2 = self.context(self.enc2(f1))
        d1 = self.dec1(torch.cat([self.up1(f2), f1], 1))
        return self.up2(self.head(d1))


class ColourNet(nn.Module):
    """The per-pixel colour classifier: 1x1 convolutions only (receptive field 1 pixel)."""

    def __init__(self, num_classes: int = 11, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, hidden, 1),
                                 nn.ReLU(), nn.Conv2d(hidden, num_classes, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image * 4 - 2)


def build(row: str) -> nn.Module:
    """A fresh model for a trained row: the colour classifier, or GlassNet with its block."""
    if row == 'background':
        raise ValueError("'background' is a trivial row: it is scored, never trained")
    if row == 'colour':
        return ColourNet()
    return GlassNet(row, extra_blocks=DEEPER_BLOCKS if row == 'deeper' else 0)


def make_data(train_size: int, test_size: int) -> tuple:
    """Train and test scenes, each built once and kept in memory (a few ms per scene)."""
    train = stack_scenes(GlassScenes('train', train_size, source=load_fashion_mnist('train'),
                                     **TASK))
    test = stack_scenes(GlassScenes('test', test_size, source=load_fashion_mnist('test'),
                                    **TASK))
    return train, test


def _scores(pred: torch.Tensor, test: dict, field: int) -> Dict[str, object]:
    """mIoU (all pixels, interior pixels) and per-object accuracy by size of predictions."""
    n = GlassScenes.num_classes
    labels, instances, sides = test['labels'], test['instances'], test['sides']
    inner = interior_mask(labels, field)
    full = segmentation_scores(confusion_matrix(pred, labels, n))
    interior = segmentation_scores(confusion_matrix(pred, labels.masked_fill(~inner, -1), n))
    # Per object: the fraction of its pixels (and of its interior pixels) labelled right.
    by_size: Dict[str, List[float]] = {str(b): [] for b in SIZE_BINS}
    by_size_inner: Dict[str, List[float]] = {str(b): [] for b in SIZE_BINS}
    for i in range(labels.size(0)):
        for k in range(sides.size(1)):
            side = int(sides[i, k])
            obj = instances[i] == k + 1
            if side == 0 or not obj.any():
                continue
            bin_ = str(max(b for b in SIZE_BINS if b <= side))
            right = pred[i] == labels[i]
            by_size[bin_].append(float(right[obj].float().mean()) * 100)
            core = obj & inner[i]
            if core.any():
                by_size_inner[bin_].append(float(right[core].float().mean()) * 100)
    # A bin without objects has no accuracy: None (null in the JSON), never NaN or 0.
    mean = lambda v: statistics.mean(v) if v else None   # noqa: E731
    return {'miou': full['miou'], 'pixel_acc': full['pixel_acc'], 'interior_miou':
            interior['miou'], 'interior_pixel_acc': interior['pixel_acc'],
            'object_acc_by_size': {b: mean(v) for b, v in by_size.items()},
            'interior_object_acc_by_size': {b: mean(v) for b, v in by_size_inner.items()},
            'objects_by_size': {b: len(v) for b, v in by_size.items()},
            'interior_objects_by_size': {b: len(v) for b, v in by_size_inner.items()}}


def _empty(value: Optional[float]) -> bool:
    """Whether a bin's accuracy is missing: None, or NaN in result files written before
    empty bins were stored as null."""
    return value is None or math.isnan(value)


def bin_cell(values: Sequence[Optional[float]]) -> str:
    """One size bin's accuracy over seeds as a table cell: mean ± std, or 'n/a' with why when
    the bin held no object in a seed (a small test set can leave a bin empty). The test scenes
    are the same for every seed, so a bin is empty in every seed or in none; a row merged from
    other test sets would say in how many."""
    empty = sum(_empty(v) for v in values)
    if empty == len(values):
        return 'n/a (0 objects)'
    if empty:
        return f'n/a (empty in {empty} of {len(values)} seeds)'
    return mean_std(list(values))


def bin_mean(values: Sequence[Optional[float]]) -> float:
    """The mean over seeds of one bin's accuracy, NaN (a gap in a plot) if a seed has none."""
    return math.nan if any(_empty(v) for v in values) else statistics.mean(values)


@torch.no_grad()
def evaluate(model: Optional[nn.Module], test: dict, field: int,
             batch_size: int = 50) -> Dict[str, object]:
    """Scores of a model (``None``: the all-background predictor) on the test scenes."""
    labels = test['labels']
    if model is None:
        return _scores(torch.zeros_like(labels), test, field)
    model.eval()
    device = next(model.parameters()).device
    pred = torch.cat([model(test['images'][s:s + batch_size].to(device)).argmax(1).cpu()
                      for s in range(0, labels.size(0), batch_size)])
    return _scores(pred, test, field)


def interior_share(test: dict, field: int) -> Dict[str, float]:
    """How much of the test set is interior: of all pixels, and of the object pixels."""
    inner = interior_mask(test['labels'], field)
    objects = test['labels'] > 0
    return {'interior_fraction': float(inner.float().mean()),
            'interior_fraction_of_objects': float((inner & objects).sum() / objects.sum())}


class GlassTask(Task):
    """The glass comparison: :class:`GlassNet` with each context block (and the per-pixel
    :class:`ColourNet`), cross-entropy, random horizontal flips; mIoU over all and over the
    interior test pixels and object accuracy by size, beside the all-background predictor.

    ``name`` is the result files' name (the command line's ``--tag``); ``background=False``
    leaves the all-background row out (a run of other rows only, merged later).
    """

    rows = {key: DISPLAY[key] for key in ROWS}
    metrics = {'miou': 'mIoU (%)', 'interior_miou': 'interior mIoU (%)',
               'pixel_acc': 'pixel acc (%)', 'interior_pixel_acc': 'interior pixel acc (%)'}
    unit = 'image'

    def __init__(self, train_size: int = 2000, test_size: int = 300, name: str = 'glass',
                 background: bool = True):
        self.train_size, self.test_size = train_size, test_size
        self.name, self.background = name, background
        self.share: Dict[str, float] = {}

    @functools.cached_property
    def field(self) -> int:
        """The base's receptive field (px): what 'interior' is measured against."""
        return GlassNet('base').receptive_field()

    def make_data(self) -> tuple:
        train, test = make_data(self.train_size, self.test_size)
        self.share = interior_share(test, self.field)
        return train, test

    def build(self, row: str) -> nn.Module:
        return build(row)

    def sample(self, train: dict, batch_size: int, generator: torch.Generator) -> tuple:
        images, labels = train['images'], train['labels']
        idx = torch.randint(images.size(0), (batch_size,), generator=generator)
        x, y = images[idx], labels[idx]
        if bool(torch.rand((), generator=generator) < 0.5):   # a mirrored item keeps its class
            x, y = x.flip(-1), y.flip(-1)
        return x, y

    def evaluate(self, model: nn.Module, row: str, test: dict) -> Dict[str, object]:
        return evaluate(model, test, self.field)

    def trivial(self, train: dict, test: dict) -> Dict[str, Dict[str, object]]:
        return {'background': evaluate(None, test, self.field)} if self.background else {}

    def macs_input(self, test: dict) -> tuple:
        return (test['images'][:1],)

    def config(self) -> Dict[str, object]:
        # 'lga_rows' also tells load_rows that 'lga<d>' is the default stack in this file.
        return {'train_size': self.train_size, 'test_size': self.test_size, 'task': TASK,
                'receptive_field': self.field, **self.share,
                'augmentation': 'random horizontal flip', 'threads': torch.get_num_threads(),
                'lga_rows': "'lga<d>': LGA2d's default stack; 'lga<d>-neighbor': the same with "
                            "score='neighbor'; 'lga<d>-0.2': " + repr(LGA_0_2)}

    def columns(self, result: Dict[str, object]) -> Dict[str, str]:
        """mIoU, interior mIoU, object accuracy by size (mean ± std over seeds), parameters,
        MACs and the mean wall time of a run (old result files have no CPU step times)."""
        bins = [str(b) for b in SIZE_BINS]
        return {'model': result['model'],
                **{self.metrics[k]: mean_std(result[k]) for k in ('miou', 'interior_miou')},
                **{f'obj. acc {b}+ px': bin_cell([s[b] for s in result['object_acc_by_size']])
                   for b in bins},
                'params': f"{result['params']:,}",
                'MMACs / image': f"{result['macs'] / 1e6:.1f}",
                's / run': ('-' if not result['wall_s'] else
                            f"{statistics.mean(result['wall_s']):.0f}")}


def run(rows: Sequence[str], budget: Budget, train_size: int = 2000, test_size: int = 300,
        out: Optional[str] = None, tag: str = 'glass', progress: bool = False) -> tuple:
    """The glass comparison of ``rows`` (keys of :data:`ROWS`, 'background' included or not);
    returns :func:`experiment.run`'s ``(results, models, test)``, the JSON and Markdown going
    to ``<out>/<tag>.json`` and ``.md``."""
    task = GlassTask(train_size, test_size, tag, background='background' in rows)
    start = time.time()
    data = task.make_data()
    print(f"glass: {train_size} train / {test_size} test scenes ({time.time() - start:.0f} s "
          f"to build), base receptive field {task.field} px; interior = "
          f"{100 * task.share['interior_fraction']:.1f}% of test pixels, "
          f"{100 * task.share['interior_fraction_of_objects']:.1f}% of object pixels; "
          f"{budget.steps} steps of batch {budget.batch_size}; seeds {list(budget.seeds)}",
          flush=True)
    trained = [r for r in rows if r != 'background']
    return experiment.run(task, trained, budget, out, progress, data=data)


# --- Figures ---------------------------------------------------------------------------------

def example_figure(out: str, count: int = 4) -> str:
    """Test scenes: the photo, its glass rendering, the label, the interior mask."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from figures import COLLAGE_COLOURS, COLLAGE_NAMES
    test = GlassScenes('test', count, **TASK)
    field = GlassNet('base').receptive_field()
    cmap = ListedColormap(COLLAGE_COLOURS)
    fig, axes = plt.subplots(count, 4, figsize=(8.4, 2.2 * count + 1.0), squeeze=False)
    titles = ('real photo (test split)', 'glass rendering (input)', 'label',
              f'interior: {field}x{field} field\nsees one label (white)')
    for i in range(count):
        sc = test.scene(i)
        axes[i, 0].imshow(sc.photo.permute(1, 2, 0))
        axes[i, 0].set_ylabel(sc.photo_name, fontsize=9)
        axes[i, 1].imshow(sc.image.permute(1, 2, 0))
        axes[i, 2].imshow(sc.label, cmap=cmap, vmin=-0.5, vmax=10.5, interpolation='nearest')
        axes[i, 3].imshow(interior_mask(sc.label, field), cmap='gray', vmin=0, vmax=1,
                          interpolation='nearest')
        for j in range(4):
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if i == 0:
                axes[i, j].set_title(titles[j], fontsize=9)
    bottom = 0.9 / fig.get_figheight()
    fig.subplots_adjust(bottom=bottom, wspace=0.05, hspace=0.08)
    handles = [Patch(facecolor=c, edgecolor='black', linewidth=0.3, label=n)
               for n, c in zip(COLLAGE_NAMES, COLLAGE_COLOURS)]
    fig.legend(handles=handles, loc='upper center', ncol=4, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, bottom))
    path = os.path.join(out, 'glass_examples.png')
    fig.savefig(path, dpi=100, bbox_inches='tight')
    plt.close(fig)
    return path


#: One colour per row in every panel of the depth/size figure.
KEY_COLOURS = {'base': 'black', 'deeper': 'grey', 'latentgnn': 'tab:green',
               'nonlocal': 'tab:purple', 'lga4': 'tab:cyan', 'lga16': 'tab:blue',
               'lga4-0.2': 'tab:orange', 'lga16-0.2': 'tab:red', 'dwconv4': 'tab:olive',
               'dwconv16': 'darkolivegreen', 'lga4-neighbor': 'tab:pink'}


def load_rows(result_files: List[str]) -> Dict[str, dict]:
    """Rows of several result files by key; a later file's row replaces an earlier one.

    Files written before the config recorded ``lga_rows`` (before the collapse fix was merged)
    ran the 0.2 stack under the name 'lga<d>': their rows are renamed 'lga<d>-0.2'.
    """
    rows: Dict[str, dict] = {}
    for path in result_files:
        with open(path) as f:
            data = json.load(f)
        old = 'lga_rows' not in data['config']
        for r in data['rows']:
            if old and r['key'].startswith('lga') and '-' not in r['key']:
                r = dict(r, key=r['key'] + '-0.2', model=DISPLAY[r['key'] + '-0.2'])
            rows[r['key']] = r
    return rows


def shared_budget(result_files: List[str]) -> tuple:
    """The ``(steps, batch_size)`` that every result file was trained with; a
    ``ValueError`` if they differ (their rows would compare unlike runs)."""
    budgets = set()
    for path in result_files:
        with open(path) as f:
            config = json.load(f)['config']
        budgets.add((config.get('steps'), config.get('batch_size')))
    if len(budgets) != 1:
        raise ValueError("the result files of one figure must share a budget (steps, batch "
                         f"size); got {sorted(budgets, key=str)}")
    return budgets.pop()


def depth_and_size_figure(result_files: List[str], out: str) -> str:
    """mIoU (overall, interior) against LGA depth, and object accuracy against object size.

    Rows of every JSON in ``result_files`` are pooled (a later file's row replaces an earlier
    one with the same key); the base, LatentGNN and the parameter-matched base are drawn as
    horizontal references. The files must share a training budget (a figure pooling 600- and
    1,500-step rows would compare unlike runs): it is in the title and in the file's name,
    ``glass_depth_size_<steps>.png``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = load_rows(result_files)
    steps, batch_size = shared_budget(result_files)
    # Curves against depth: a row-key pattern per stack ('{}' is the depth).
    stacks = [(pattern, name, colour) for pattern, name, colour in
              (('lga{}', 'base + LGA (default stack)', 'tab:blue'),
               ('lga{}-0.2', 'base + LGA (0.2 stack)', 'tab:orange'),
               ('lga{}-neighbor', "base + LGA, score='neighbor'", 'tab:pink'),
               ('dwconv{}', 'base + depthwise 3x3 stack (LGA without attention)', 'tab:olive'),
               ('dwconv{}-convex', 'probe: that stack, each filter a softmax', 'darkgoldenrod'))
              if any(pattern.format(d) in rows for d in DEPTHS)]
    depths = [d for d in DEPTHS if any(p.format(d) in rows for p, _, _ in stacks)]
    fig, axes = plt.subplots(2, 2, figsize=(12, 12))
    refs = [('base', 'base', 'black'), ('deeper', 'param-matched base', 'grey'),
            ('latentgnn', 'LatentGNN', 'tab:green'), ('nonlocal', 'non-local', 'tab:purple'),
            ('colour', 'per-pixel colour', 'tab:red'),
            ('background', 'all background', 'tab:brown')]
    for ax, metric, title in ((axes[0, 0], 'miou', 'mIoU, all test pixels'),
                              (axes[0, 1], 'interior_miou', 'mIoU, interior pixels')):
        for pattern, name, colour in stacks:
            here = [d for d in depths if pattern.format(d) in rows]
            values = [rows[pattern.format(d)][metric] for d in here]
            ax.errorbar(here, [statistics.mean(v) for v in values],
                        yerr=[statistics.stdev(v) if len(v) > 1 else 0.0 for v in values],
                        marker='o', capsize=3, color=colour, label=f'{name}, mean ± std')
        for key, name, colour in refs:
            if key in rows:
                ax.axhline(statistics.mean(rows[key][metric]), color=colour, ls='--', lw=1,
                           label=name)
        ax.set_xscale('log', base=2)
        ax.set_xticks(depths or [1])
        ax.set_xticklabels([str(d) for d in depths] or ['1'])
        ax.set_xlabel('depth of the block (layers = hops on the 1/4 map)')
        ax.set_ylabel('%')
        ax.set_title(title)
    bins = [str(b) for b in SIZE_BINS]
    edges = list(SIZE_BINS) + [TASK['sides'][1] + 1]
    for ax, metric, title in (
            (axes[1, 0], 'object_acc_by_size', 'objects by size: % of their pixels right'),
            (axes[1, 1], 'interior_object_acc_by_size',
             'objects by size: % of their interior pixels right')):
        for key in ['base', 'deeper', *[p.format(d) for p, _, _ in stacks for d in (4, 16)],
                    'latentgnn', 'nonlocal']:
            if key not in rows:
                continue
            values = [bin_mean([s[b] for s in rows[key][metric]]) for b in bins]
            ax.plot(range(len(bins)), values, marker='o', label=rows[key]['model'],
                    ls='-' if key.startswith(('lga', 'dwconv')) else '--',
                    color=KEY_COLOURS[key])
        ax.set_xticks(range(len(bins)))
        ax.set_xticklabels([f'{lo}-{hi - 1}' for lo, hi in zip(edges, edges[1:])])
        ax.set_xlabel('object box side (px)')
        ax.set_ylabel('% (mean over objects, then seeds)')
        ax.set_title(title)
    fig.suptitle(f'Glass test scenes after {steps:,} steps of batch {batch_size} '
                 '(mean over seeds; bars: std)')
    # Each row's legend below it, so that no line is hidden behind one.
    fig.tight_layout(h_pad=9)
    for row, top in ((0, axes[0, 0]), (1, axes[1, 0])):
        fig.legend(*top.get_legend_handles_labels(), loc='upper center', ncol=2, fontsize=8,
                   bbox_to_anchor=(0.5, axes[row, 0].get_position().y0 - 0.045))
    path = os.path.join(out, f'glass_depth_size_{steps}.png')
    fig.savefig(path, dpi=100, bbox_inches='tight')
    plt.close(fig)
    return path


def merged_tables(result_files: List[str]) -> str:
    """One Markdown file with the rows of several result files: the main table, and the
    accuracy on the interior pixels of objects by object size (where only context helps).

    Written next to the first result file (a raw output, not a docs page)."""
    rows = load_rows(result_files)
    ordered = [rows[k] for k in ROWS if k in rows]
    edges = list(SIZE_BINS) + [TASK['sides'][1] + 1]
    names = {str(lo): f'{lo}-{hi - 1} px' for lo, hi in zip(edges, edges[1:])}
    inner = [{'model': r['model'], 'seeds': len(r['miou']),
              **{f'interior obj. acc, {names[b]}': bin_cell(
                  [s[b] for s in r['interior_object_acc_by_size']]) for b in names},
              **{f'obj. acc, {names[b]}': bin_cell([s[b] for s in r['object_acc_by_size']])
                 for b in names}} for r in ordered]
    text = (experiment.table(GlassTask(), ordered) + '\n\n'
            + markdown_table(inner) + '\n')
    path = os.path.join(os.path.dirname(os.path.abspath(result_files[0])), 'glass_tables.md')
    with open(path, 'w') as f:
        f.write(text)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rows', nargs='+', default=list(ROWS), choices=ROWS)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--steps', type=int, default=600)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--train-size', type=int, default=2000)
    parser.add_argument('--test-size', type=int, default=300)
    parser.add_argument('--out', default='outputs/glass')
    parser.add_argument('--tag', default='glass', help='name of the JSON / Markdown files')
    parser.add_argument('--figures', nargs='*', metavar='JSON',
                        help='only draw the figures (examples; depth and size from these '
                             'result files) into --out')
    args = parser.parse_args()
    if args.figures is not None:
        os.makedirs(args.out, exist_ok=True)
        print('figure:', example_figure(args.out))
        if args.figures:
            print('figure:', depth_and_size_figure(args.figures, args.out))
            print('tables:', merged_tables(args.figures))
        return
    torch.set_num_threads(1)   # one thread: the timings are per core, and cores are shared
    start = time.time()
    budget = Budget(args.steps, args.batch_size, tuple(args.seeds))
    try:
        results, _, _ = run(args.rows, budget, args.train_size, args.test_size, args.out,
                            args.tag)
    except MissingDataError as error:
        fail_with_hint(error)
    print(experiment.table(GlassTask(), results))
    print(f"total wall time {time.time() - start:.0f} s")

if __name__ == '__main__':
    main()

"""The LGA paper's ablations, on real data: which edge-score reading, how deep, which loss.

The paper adds LGA to small networks and ablates its depth and its loss ("Effects of
Divergence Loss and Group Convolution"); its equations are not public, so graphattn offers
several readings of them as arguments. This script measures them on the demo's collage
task (:mod:`segment_collages`: 64x64 Fashion-MNIST collages on texture photos, 11 classes,
a small U-Net with the context block at 1/8 resolution), with the same data, steps,
batches and optimiser for every row; the LGA block is the only difference:

(a) base (no block) against +LGA for each edge-score reading (``score='center'``,
    ``'neighbor'``, ``'pair'``), 4 layers, one head; and ``'pair'`` with 4 heads;
(b) depth: 1, 2, 4 and 8 layers of the default reading;
(c) each LGALoss form (``'divergence'``, today's; ``'contrastive'``; ``'attention'``)
    added to the cross-entropy, its weight chosen on a validation split cut from the
    training collages (never on test), then trained on the full training set;
(d) depth again on the dehazing task (:mod:`dehaze`: real photos, synthetic haze, test
    photos never seen in training), scored by PSNR: no block, then 1, 2, 4, 8 layers;
(w) the LGALoss weight sweep (not run by default): the demo's ``lga+loss`` model
    (:mod:`segment_collages`: its own LGA block, cross-entropy + weight x LGALoss of
    ``--temperature`` on the block's output F_out) at every weight of ``--weights``, on the
    test set, with the trained model's LGALoss on the test collages (was the term
    minimised?). Weight 0 is the plain LGA model: the term is dropped rather than multiplied
    by zero (identical gradients, without its cost).

How it runs: every row is a :class:`Variant` of the demo's network (LGA2d options, depth,
loss form and weight), and :class:`AblationTask` (a :class:`segment_collages.CollageTask`)
builds and trains each through :func:`experiment.run`, which seeds each model and its
batches from the seed alone (:func:`experiment.fit`); part (d) is :class:`DehazeDepthTask`,
a :class:`dehaze.DehazeTask`. A variant that two parts share (4 layers of the default
reading in (a) and (b)) is trained once.

Every row: ``--seeds`` seeds (3 by default), mean and standard deviation of the test score.
Results go to ``<out>/ablations.json`` (:func:`experiment.write`'s layout: numbers as
numbers, one entry per seed, with the configuration; rewritten after every part) and
``ablations.md``, and the table to stdout; ``--plot`` draws score against depth.

    python examples/ablate_lga.py --threads 1          # parts a-d (see --help)
    python examples/ablate_lga.py --tiny               # a seconds-long smoke run
    python examples/ablate_lga.py --parts w --weights 0 0.03 0.3 1 --seeds 0 1 \\
        --steps 160 --batch 16 --threads 1             # the LGALoss weight sweep
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

import dehaze
import experiment
from experiment import Budget
from graphattn import LGA2d, LGALoss
from models import DehazeNet, SegNet
from segment_collages import CollageTask

#: (row name, LGA2d arguments or None for the base)
READINGS = [('base (no block)', None),
            ('LGA, score=center', dict(score='center')),
            ('LGA, score=neighbor', dict(score='neighbor')),
            ('LGA, score=pair', dict(score='pair')),
            ('LGA, score=pair, 4 heads', dict(score='pair', heads=4))]
DEPTHS = (1, 2, 4, 8)
LOSS_FORMS = ('divergence', 'contrastive', 'attention')
#: part (d)'s batch size: the dehazing tutorial's
DEHAZE_BATCH = 16


# 1. The rows: variants of the demo's network --------------------------------------------

@dataclasses.dataclass(frozen=True)
class Variant:
    """One row: what it changes in the demo's :class:`models.SegNet` and its loss.

    ``lga``: the LGA2d options of the block that replaces SegNet's own (``num_layers`` of
    them, fused back to the width); None keeps ``SegNet(context)``'s block (``'none'``: the
    base). ``loss_form``: the LGALoss form added to the cross-entropy with ``weight``.
    """

    lga: Optional[Dict[str, Any]] = None
    num_layers: int = 4
    loss_form: Optional[str] = None
    weight: float = 0.0
    context: str = 'none'

    @property
    def key(self) -> str:
        """The row's key: equal for equal variants, so a shared row is trained once."""
        if self.lga is None:
            block = self.context
        else:
            options = ','.join(f'{k}={v}' for k, v in self.lga.items())
            block = f'lga({options})x{self.num_layers}'
        return block + (f' + {self.weight:g} {self.loss_form}' if self.loss_form else '')

    def fields(self) -> Dict[str, Any]:
        """What the JSON row records of the variant."""
        return {'lga': self.lga, 'num_layers': self.num_layers, 'loss_form': self.loss_form,
                'weight': self.weight}


class AblationTask(CollageTask):
    """The collage task whose rows are :class:`Variant` keys (see :meth:`add`)."""

    name = 'ablations'

    def __init__(self, train_size: int = 2000, test_size: int = 500,
                 temperature: float = 1.0, settings: Optional[Dict[str, Any]] = None):
        super().__init__(train_size, test_size, lga_loss_temperature=temperature)
        self.rows = {'majority': CollageTask.rows['majority']}   # then each variant added
        self.variants: Dict[str, Variant] = {}
        # the temperature is the divergence form's option (softmax of F_out); the others refuse it
        self.criteria = {form: LGALoss(form=form, **({'temperature': temperature}
                                                     if form == 'divergence' else {}))
                         for form in LOSS_FORMS}
        self.settings = settings or {}

    def add(self, variant: Variant) -> str:
        self.variants[variant.key] = variant
        self.rows[variant.key] = variant.key
        return variant.key

    def build(self, row: str) -> SegNet:
        variant = self.variants[row]
        model = SegNet(variant.context if variant.lga is None else 'lga')
        if variant.lga is not None:   # drawn after the whole network, as the old script did
            channels = model.enc3[-1][0].out_channels
            model.context = LGA2d(channels, num_layers=variant.num_layers, fuse=True,
                                  **variant.lga)
        return model

    def loss(self, model, row: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        variant = self.variants[row]
        if not variant.loss_form or variant.weight == 0:
            return F.cross_entropy(model(x), y)
        logits, extra = lga_outputs(model, x, variant.loss_form)
        return (F.cross_entropy(logits, y)
                + variant.weight * self.criteria[variant.loss_form](extra, y))

    def evaluate(self, model, row: str, test) -> Dict[str, float]:
        """mIoU and pixel accuracy; with a loss form, also the trained model's LGALoss on
        ``test`` (whether the term was minimised)."""
        scores = super().evaluate(model, row, test)
        form = self.variants[row].loss_form
        if form:
            scores['test_lga_loss'] = lga_loss_on(model, test, self.criteria[form], form)
        return scores

    def config(self) -> Dict[str, Any]:
        config = {**super().config(), **self.settings}
        del config['lga_loss_weight']    # each row has its own
        return config

    def columns(self, result: Dict[str, Any]) -> Dict[str, str]:
        return columns(result)


def lga_outputs(model: SegNet, x: torch.Tensor, form: str) -> Tuple[torch.Tensor, Any]:
    """The logits and what LGALoss(``form``) reads: the LGA block's output F_out, or its
    attention maps for the ``'attention'`` form."""
    f1, f2, f3 = model.encode(x)
    if form == 'attention':
        f3, _, extra = model.context(f3, return_latent=True, return_attention_weights=True)
    else:
        f3, extra = model.context(f3, return_latent=True)
    return model.decode(f1, f2, f3, x.shape[-2:]), extra


@torch.no_grad()
def lga_loss_on(model: SegNet, data, criterion: LGALoss, form: str,
                batch_size: int = 32) -> float:
    """Mean LGALoss (the training criterion) of a trained model over ``data``'s batches."""
    model.eval()
    images, labels = data
    values = [float(criterion(lga_outputs(model, images[i:i + batch_size], form)[1],
                              labels[i:i + batch_size]))
              for i in range(0, images.size(0), batch_size)]
    return statistics.mean(values)


class DehazeDepthTask(dehaze.DehazeTask):
    """Part (d): the dehazing network with no block (``'none'``) or ``'lga x<depth>'``: an
    LGA2d of ``depth`` layers of the ``score`` reading (fused back to the width) in place of
    its block."""

    def __init__(self, train_size: int, test_size: int, score: str = 'center'):
        super().__init__(train_size, test_size, progress=False)
        self.score = score
        self.depths = {'none': 0, **{f'lga x{d}': d for d in DEPTHS}}
        self.rows = {'hazy': 'dehaze: hazy input (no model)', 'none': 'dehaze: base (no block)',
                     **{f'lga x{d}': f'dehaze: LGA, {d} layers' for d in DEPTHS}}

    def build(self, row: str) -> DehazeNet:
        depth = self.depths[row]
        model = DehazeNet('none' if depth == 0 else 'lga')
        if depth:
            model.context = LGA2d(model.context.in_channels, num_layers=depth, fuse=True,
                                  score=self.score)
        return model


# 2. The parts -----------------------------------------------------------------------------

def measure(task: AblationTask, plan: Sequence[Tuple[str, str, Variant]], budget: Budget,
            data) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """Train and test each distinct variant of ``plan`` (``(part, name, variant)``) at every
    seed; one JSON row per plan entry, and the trivial row."""
    keys = list(dict.fromkeys(task.add(variant) for _, _, variant in plan))
    results, _, _ = experiment.run(task, keys, budget, data=data)
    by_key = {r['key']: r for r in results}
    rows = [{**by_key[variant.key], 'model': name, 'part': part, 'metric': 'miou',
             **variant.fields(), 'steps': budget.steps, 'batch_size': budget.batch_size}
            for part, name, variant in plan]
    return rows, {**by_key['majority'], 'part': 'a', 'metric': 'miou'}


def choose_weight(task: AblationTask, form: str, score: str, weights: Sequence[float],
                  budget: Budget, fit, val) -> Tuple[float, Dict[str, float]]:
    """Part (c)'s choice: the weight of LGALoss(``form``) whose model, trained on ``fit`` at
    the first seed, scores the best validation mIoU (the first such weight on a tie)."""
    plan = [('c', f'validation: {form} weight {w}', Variant(dict(score=score), loss_form=form,
                                                          weight=w)) for w in weights]
    rows, _ = measure(task, plan, dataclasses.replace(budget, seeds=budget.seeds[:1]),
                      (fit, val))
    validation = {r['weight']: r['miou'][0] for r in rows}
    return max(validation, key=validation.get), validation


def run(args, say=print) -> List[Dict[str, Any]]:
    """Every part of ``args.parts``; returns the JSON rows and writes them after each part."""
    task = AblationTask(args.train, args.test, args.temperature, settings=settings(args))
    budget = Budget(args.steps, args.batch, tuple(args.seeds))
    rows: List[Dict[str, Any]] = []

    def keep(new_rows, trivial=None):
        if trivial is not None and not any(r['key'] == 'majority' for r in rows):
            rows.insert(0, trivial)
        rows.extend(new_rows)
        experiment.write(task, rows, budget, args.out)

    if set(args.parts) & set('abcw'):
        train, test = task.make_data()
    score = dict(score=args.depth_score)
    plan = []
    if 'a' in args.parts:
        plan += [('a', name, Variant(lga)) for name, lga in READINGS]
    if 'b' in args.parts:   # 4 layers of (a)'s reading is (a)'s row: trained once
        plan += [('b', f'LGA, score={args.depth_score}, {depth} layers',
                  Variant(score, num_layers=depth)) for depth in DEPTHS]
    if plan:
        keep(*measure(task, plan, budget, (train, test)))
    if 'c' in args.parts:
        n_val = args.train // 5
        fit = tuple(t[n_val:] for t in train)           # weights are chosen on (fit, val)
        val = tuple(t[:n_val] for t in train)
        for form in LOSS_FORMS:
            say(f'part c: LGALoss({form}), weights {args.weights} on {n_val} validation '
                f'collages', flush=True)
            chosen, validation = choose_weight(task, form, args.depth_score, args.weights,
                                               budget, fit, val)
            found, trivial = measure(task, [('c', f'LGA + LGALoss({form}), weight {chosen} (val)',
                                            Variant(score, loss_form=form, weight=chosen))],
                                     budget, (train, test))
            keep([{**found[0], 'validation_miou': validation}], trivial)
    if 'w' in args.parts:
        plan = [('w', f'base + LGA + LGALoss, weight {w:g}' + (' (plain LGA)' if w == 0 else ''),
                 Variant(context='lga', loss_form='divergence', weight=w))
                for w in args.weights]
        found, trivial = measure(task, plan, budget, (train, test))
        keep([{**r, 'temperature': args.temperature} for r in found], trivial)
    if 'd' in args.parts:
        keep(dehaze_depth(args))
    return rows


def dehaze_depth(args) -> List[Dict[str, Any]]:
    """Part (d): PSNR of the dehazing network with no block and with 1-8 LGA layers (the
    dehazing tutorial's budget and warm-up, batches of :data:`DEHAZE_BATCH`)."""
    task = DehazeDepthTask(args.dehaze_train, args.dehaze_test, args.depth_score)
    budget = Budget(args.dehaze_steps, DEHAZE_BATCH, tuple(args.seeds), warmup=dehaze.WARMUP)
    results, _, _ = experiment.run(task, list(task.depths), budget)
    return [{**r, 'part': 'd', 'metric': 'psnr',
             'num_layers': task.depths.get(r['key']), 'steps': budget.steps,
             'batch_size': budget.batch_size} for r in results]


def settings(args) -> Dict[str, Any]:
    """The run's own settings, for the JSON (the budget is recorded by experiment.write)."""
    return {'parts': args.parts, 'weights': args.weights, 'depth_score': args.depth_score,
            'validation': 'the first fifth of the training collages (part c)',
            'dehaze': {'steps': args.dehaze_steps, 'batch_size': DEHAZE_BATCH,
                       'train_size': args.dehaze_train, 'test_size': args.dehaze_test,
                       'warmup': dehaze.WARMUP},
            'threads': torch.get_num_threads()}


# 3. The table and the figure -------------------------------------------------------------

#: per headline metric: its unit, the second score's key and unit, digits of the second
METRICS = {'miou': ('% mIoU', 'pixel_acc', '% pixel acc', 2),
           'psnr': ('dB PSNR', 'ssim', 'SSIM', 3)}


def scores(row: Dict[str, Any]) -> List[float]:
    """A row's headline scores, one per seed. Files written before the move to experiment.py
    (docs/runs/ablations/) hold them under ``'miou'`` whatever ``'metric'`` says."""
    metric = row.get('metric', 'miou')
    return row[metric] if metric in row else row['miou']


def spread(values: List[float], digits: int = 2) -> str:
    """mean ± std, or the one value."""
    mean = f'{statistics.fmean(values):.{digits}f}'
    return mean + (f' ± {statistics.stdev(values):.{digits}f}' if len(values) > 1 else '')


def columns(row: Dict[str, Any]) -> Dict[str, str]:
    """One table row, for the rows of this script's JSON, old or new."""
    unit, second, second_unit, digits = METRICS[row.get('metric', 'miou')]
    step = row.get('cpu_s_per_step')
    lga_loss = row.get('test_lga_loss')
    return {'part': row['part'], 'model': row['model'],
            'test score': f'{spread(scores(row))} {unit}',
            'second score': f'{spread(row[second], digits)} {second_unit}' if row.get(second)
            else '-',
            'test LGALoss': f'{statistics.fmean(lga_loss):.3f}' if lga_loss else '-',
            'params': f"{row['params']:,}" if row.get('params') else '-',
            'CPU ms / train step': f'{1000 * step:.0f}' if step else '-'}


def plot_depth(rows: List[Dict[str, Any]], path: str) -> str:
    """Score against LGA depth: collage mIoU (part b) and, when run, dehazing PSNR (part d),
    each beside its base model's mean ± std band."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = [('b', 'base (no block)', 'Collages (segmentation)', 'test mIoU (%), mean ± std'),
              ('d', 'dehaze: base (no block)', 'Dehazing (restoration)',
               'test PSNR (dB), mean ± std')]
    panels = [p for p in panels if any(r['part'] == p[0] for r in rows)
              and any(r['model'] == p[1] for r in rows)]

    def mean_std(row):
        values = scores(row)
        return (statistics.fmean(values),
                statistics.stdev(values) if len(values) > 1 else 0.0)

    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.4), squeeze=False)
    for ax, (part, base_name, title, ylabel) in zip(axes[0], panels):
        depth = sorted((r for r in rows if r['part'] == part and r.get('num_layers')),
                       key=lambda r: r['num_layers'])
        base_mean, base_std = mean_std(next(r for r in rows if r['model'] == base_name))
        xs = [r['num_layers'] for r in depth]
        seeds = len(scores(depth[0]))
        ax.errorbar(xs, [mean_std(r)[0] for r in depth], yerr=[mean_std(r)[1] for r in depth],
                    marker='o', capsize=3, label=f'base + LGA (mean ± std, {seeds} seeds)')
        ax.axhline(base_mean, color='grey', ls='--', label='base, no block (± std)')
        ax.axhspan(base_mean - base_std, base_mean + base_std, color='grey', alpha=0.15)
        ax.set_xscale('log', base=2)
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel('LGA layers (hops of context)')
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, loc='lower right')
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def replot(files: List[str], out: str) -> None:
    """Merge the rows of several runs' ablations.json (e.g. parts run in parallel
    processes), print one table and draw the depth figure."""
    rows: List[Dict[str, Any]] = []
    for name in files:
        with open(name) as f:
            for r in json.load(f)['rows']:
                if not any(q['model'] == r['model'] for q in rows):
                    rows.append(r)
    print(experiment.table(AblationTask(), rows))
    with open(os.path.join(out, 'ablations_merged.json'), 'w') as f:
        json.dump({'rows': rows, 'sources': files}, f, indent=1)
    print('figure:', plot_depth(rows, os.path.join(out, 'lga_depth.png')))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--parts', default='abcd',
                        help="which ablations: any of 'abcdw' (w, the weight sweep, only "
                             "when asked)")
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    # The demo's short-run budget (examples/demo.py), so the base row is the demo's model.
    parser.add_argument('--steps', type=int, default=450)
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--train', type=int, default=2000)
    parser.add_argument('--test', type=int, default=500)
    parser.add_argument('--weights', type=float, nargs='+',
                        help='LGALoss weights: tried on the validation split (part c; default '
                             '0.1 1) or each tested (part w)')
    parser.add_argument('--temperature', type=float, default=1.0,
                        help="LGALoss's softmax temperature on F_out (the 'divergence' form, "
                             "parts c and w)")
    parser.add_argument('--depth-score', default='center',
                        help='the reading used for the depth and loss ablations')
    parser.add_argument('--dehaze-steps', type=int, default=300)
    parser.add_argument('--dehaze-train', type=int, default=2000)
    parser.add_argument('--dehaze-test', type=int, default=200)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', default='outputs/ablations')
    parser.add_argument('--plot', action='store_true', help='draw mIoU against depth')
    parser.add_argument('--tiny', action='store_true', help='a smoke run of a few seconds')
    parser.add_argument('--replot', nargs='+', metavar='JSON',
                        help="merge these runs' ablations.json, print the table, draw the figure")
    args = parser.parse_args(argv)
    if args.replot:
        os.makedirs(args.out, exist_ok=True)
        replot(args.replot, args.out)
        return
    if args.tiny:
        args.seeds, args.steps, args.train, args.test = [0], 2, 20, 8
        args.weights = args.weights or [0.1]
        args.dehaze_steps, args.dehaze_train, args.dehaze_test = 2, 4, 2
    args.weights = args.weights or [0.1, 1.0]
    unknown = set(args.parts) - set('abcdw')
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}: choose from 'abcdw'")
    torch.set_num_threads(args.threads)
    start = time.time()
    rows = run(args)
    print(experiment.table(AblationTask(), rows))
    if args.plot and 'b' in args.parts and 'a' in args.parts:  # the depth figure needs the base
        print('figure:', plot_depth(rows, os.path.join(args.out, 'lga_depth.png')))
    print(f'wall time {time.time() - start:.0f} s')


if __name__ == '__main__':
    main()

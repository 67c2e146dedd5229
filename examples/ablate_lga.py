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
    photos never seen in training), scored by PSNR: no block, then 1, 2, 4, 8 layers.

Every row: ``--seeds`` seeds (3 by default), mean and standard deviation of the test mIoU.
Results go to ``<out>/ablations.json`` (numbers as numbers, with the configuration) and
a markdown table on stdout; ``--plot`` draws score against depth.

    python examples/ablate_lga.py --threads 1          # the full ablation (see --help)
    python examples/ablate_lga.py --tiny               # a seconds-long smoke run
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

from graphattn import LGA2d, LGALoss
from models import SegNet
from segment_collages import LR, evaluate, majority_scores, make_data
from training import run_environment

#: (row name, LGA2d arguments or None for the base, LGALoss form or None)
READINGS = [('base (no block)', None),
            ('LGA, score=center', dict(score='center')),
            ('LGA, score=neighbor', dict(score='neighbor')),
            ('LGA, score=pair', dict(score='pair')),
            ('LGA, score=pair, 4 heads', dict(score='pair', heads=4))]
DEPTHS = (1, 2, 4, 8)
LOSS_FORMS = ('divergence', 'contrastive', 'attention')


def seeded(seed: int, lga: Optional[dict], num_layers: int = 4) -> SegNet:
    """The model of one row and seed, initialised from that seed alone: the process's
    default generator is not seeded the same way twice, so a model built without this
    would depend on what ran before it."""
    torch.manual_seed(seed)
    return build(lga, num_layers)


def build(lga: Optional[dict], num_layers: int = 4) -> SegNet:
    model = SegNet('none' if lga is None else 'lga')
    if lga is not None:  # the demo's block (4 layers, fused back to the width) with the reading
        channels = model.enc3[-1][0].out_channels
        model.context = LGA2d(channels, num_layers=num_layers, fuse=True, **lga)
    return model


def train(model: SegNet, data, steps: int, batch_size: int, seed: int,
          loss_form: Optional[str] = None, weight: float = 0.0) -> SegNet:
    """The demo's recipe (AdamW, one-cycle, flips), plus ``weight`` x LGALoss(form).
    Build ``model`` right after ``torch.manual_seed(seed)`` (see :func:`seeded`)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LR, total_steps=steps,
                                                   pct_start=0.15)
    criterion = LGALoss(form=loss_form) if loss_form else None
    images, labels = data
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(images.size(0), (batch_size,), generator=g)
        x, y = images[idx], labels[idx]
        if bool(torch.rand((), generator=g) < 0.5):
            x, y = x.flip(-1), y.flip(-1)
        if criterion is None:
            loss = F.cross_entropy(model(x), y)
        else:
            f1, f2, f3 = model.encode(x)
            f3, latent, maps = model.context(f3, return_latent=True,
                                             return_attention_weights=True)
            logits = model.decode(f1, f2, f3, x.shape[-2:])
            extra = criterion(maps if loss_form == 'attention' else latent, y)
            loss = F.cross_entropy(logits, y) + weight * extra
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model


def row(name: str, scores: List[float], config: dict, metric: str = 'miou') -> Dict[str, object]:
    mean = statistics.fmean(scores)
    std = statistics.stdev(scores) if len(scores) > 1 else 0.0
    return {'model': name, 'metric': metric, 'miou': scores, 'miou_mean': mean,
            'miou_std': std, **config}


def dehaze_depth(args) -> List[Dict[str, object]]:
    """Part (d): PSNR of the dehazing network with no block and with 1-8 LGA layers."""
    import dehaze
    from models import DehazeNet
    train_data, test = dehaze.make_data(args.dehaze_train, args.dehaze_test, progress=False)
    rows = []
    for depth in (0, *DEPTHS):
        scores = []
        for seed in args.seeds:
            torch.manual_seed(seed)
            model = DehazeNet('none' if depth == 0 else 'lga')
            if depth:
                channels = model.context.in_channels
                model.context = LGA2d(channels, num_layers=depth, fuse=True,
                                      score=args.depth_score)
            optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
            schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3,
                                                           total_steps=args.dehaze_steps)
            g = torch.Generator().manual_seed(seed)
            model.train()
            for _ in range(args.dehaze_steps):   # the recipe of dehaze.train_model
                idx = torch.randint(train_data[0].size(0), (16,), generator=g)
                loss = F.l1_loss(model(train_data[0][idx]), train_data[1][idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
            scores.append(dehaze.evaluate(model, test)['psnr'])
            print(f'  dehaze, {depth} LGA layers, seed {seed}: PSNR {scores[-1]:.2f} dB',
                  flush=True)
        name = 'dehaze: base (no block)' if depth == 0 else f'dehaze: LGA, {depth} layers'
        rows.append(row(name, scores, dict(part='d', num_layers=depth,
                                           steps=args.dehaze_steps, batch_size=16),
                        metric='psnr'))
    return rows


def run(args) -> List[Dict[str, object]]:
    train_data, test = make_data(args.train, args.test)
    n_val = args.train // 5
    fit = tuple(t[n_val:] for t in train_data)           # weights are chosen on (fit, val)
    val = tuple(t[:n_val] for t in train_data)
    rows = [row('trivial: all background', [majority_scores(test)['miou']], {'part': 'a'})]
    budget = dict(steps=args.steps, batch_size=args.batch)

    def test_row(name, lga, part, num_layers=4, loss_form=None, weight=0.0):
        scores = []
        for seed in args.seeds:
            start = time.process_time()
            model = train(seeded(seed, lga, num_layers), train_data, args.steps, args.batch,
                          seed, loss_form, weight)
            scores.append(evaluate(model, test)['miou'])          # in %
            print(f'  {name:<34} seed {seed}: mIoU {scores[-1]:.2f} '
                  f'({time.process_time() - start:.0f} CPU s)', flush=True)
        rows.append(row(name, scores, dict(part=part, lga=lga, num_layers=num_layers,
                                           loss_form=loss_form, weight=weight, **budget)))

    if 'a' in args.parts:
        for name, lga in READINGS:
            test_row(name, lga, 'a')
    if 'b' in args.parts:
        for depth in DEPTHS:
            name = f'LGA, score={args.depth_score}, {depth} layers'
            same = [r for r in rows if r.get('lga') == dict(score=args.depth_score)
                    and r.get('num_layers') == depth and r['part'] == 'a']
            if same:   # the same model, budget and seeds ran in part (a): reuse it
                rows.append(dict(same[0], model=name, part='b'))
                continue
            test_row(name, dict(score=args.depth_score), 'b', num_layers=depth)
    if 'c' in args.parts:
        for form in LOSS_FORMS:
            chosen, best = None, -1.0
            for weight in args.weights:                  # the validation split decides
                model = train(seeded(args.seeds[0], dict(score=args.depth_score)), fit,
                              args.steps, args.batch, args.seeds[0], form, weight)
                score = evaluate(model, val)['miou']
                print(f'  validation: {form} weight {weight}: mIoU {score:.2f}', flush=True)
                if score > best:
                    chosen, best = weight, score
            test_row(f'LGA + LGALoss({form}), weight {chosen} (val)',
                     dict(score=args.depth_score), 'c', loss_form=form, weight=chosen)
    if 'd' in args.parts:
        rows.extend(dehaze_depth(args))
    return rows


def markdown(rows: List[Dict[str, object]]) -> str:
    lines = ['| part | model | test score |', '|---|---|---|']
    for r in rows:
        spread = f" ± {r['miou_std']:.2f}" if len(r['miou']) > 1 else ''
        unit = 'dB PSNR' if r.get('metric') == 'psnr' else '% mIoU'
        lines.append(f"| {r['part']} | {r['model']} | {r['miou_mean']:.2f}{spread} {unit} |")
    return '\n'.join(lines)


def plot_depth(rows: List[Dict[str, object]], path: str) -> str:
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
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.4), squeeze=False)
    for ax, (part, base_name, title, ylabel) in zip(axes[0], panels):
        depth = sorted((r for r in rows if r['part'] == part and r['num_layers']),
                       key=lambda r: r['num_layers'])
        base = next(r for r in rows if r['model'] == base_name)
        xs = [r['num_layers'] for r in depth]
        ax.errorbar(xs, [r['miou_mean'] for r in depth], yerr=[r['miou_std'] for r in depth],
                    marker='o', capsize=3, label='base + LGA (mean ± std, 3 seeds)')
        ax.axhline(base['miou_mean'], color='grey', ls='--', label='base, no block (± std)')
        ax.axhspan(base['miou_mean'] - base['miou_std'], base['miou_mean'] + base['miou_std'],
                   color='grey', alpha=0.15)
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
    rows: List[Dict[str, object]] = []
    for name in files:
        with open(name) as f:
            for r in json.load(f)['rows']:
                if not any(q['model'] == r['model'] for q in rows):
                    rows.append(r)
    print(markdown(rows))
    with open(os.path.join(out, 'ablations_merged.json'), 'w') as f:
        json.dump({'rows': rows, 'sources': files}, f, indent=1)
    print('figure:', plot_depth(rows, os.path.join(out, 'lga_depth.png')))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--parts', default='abcd', help="which ablations: any of 'abcd'")
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    # The demo's short-run budget (examples/demo.py), so the base row is the demo's model.
    parser.add_argument('--steps', type=int, default=450)
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--train', type=int, default=2000)
    parser.add_argument('--test', type=int, default=500)
    parser.add_argument('--weights', type=float, nargs='+', default=[0.1, 1.0],
                        help='LGALoss weights tried on the validation split')
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
                        help='merge these runs\' ablations.json, print the table, draw the figure')
    args = parser.parse_args(argv)
    if args.replot:
        os.makedirs(args.out, exist_ok=True)
        replot(args.replot, args.out)
        return
    if args.tiny:
        args.seeds, args.steps, args.train, args.test = [0], 2, 20, 8
        args.weights = [0.1]
        args.dehaze_steps, args.dehaze_train, args.dehaze_test = 2, 4, 2
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    start = time.time()
    rows = run(args)
    wall = time.time() - start
    table = markdown(rows)
    print(table)
    result = {'rows': rows, 'wall_s': wall, 'config': vars(args), 'environment': run_environment()}
    with open(os.path.join(args.out, 'ablations.json'), 'w') as f:
        json.dump(result, f, indent=1)
    if args.plot and 'b' in args.parts and 'a' in args.parts:  # the depth figure needs the base
        print('figure:', plot_depth(rows, os.path.join(args.out, 'lga_depth.png')))
    print(f'wall time {wall:.0f} s')


if __name__ == '__main__':
    main()

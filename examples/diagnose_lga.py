"""Diagnose LGA's training on the collages: curves and internal scales, per seed.

Trains the collage SegNet exactly as ``segment_collages.train_model`` does (same seed,
model construction order, optimiser, schedule and batches), with the context block built
from ``--lga`` (keyword arguments of :class:`graphattn.LGA2d`, as JSON) or the base
(``--lga none``), and records every ``--log-every`` steps:

* the training loss (every step, and its mean over each logging window);
* per LGA layer: the std of its input, of its output and of its attention logits
  (the score map), the largest |logit|, and the mean attention entropy (nats; log 9 = 2.20
  is uniform over the 3x3 neighbourhood);
* the std of the block's input and output and of their difference;
* gradient norms per part (encoder, LGA projection, each layer's value and score maps,
  the fusion, the decoder);
* test mIoU and per-class IoU at the end (and at ``--eval-at`` steps).

Writes one JSON per (model, seed) to ``--out``. Not part of the library: a tool to find
why a stack of LGA layers made training fragile (issue 21, part 3).

Example: ``python examples/diagnose_lga.py --lga '{"num_layers": 4, "fuse": true}'
--seeds 2 --name old``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time

import torch
import torch.nn.functional as F

import models
from datasets import FashionCollages
from segment_collages import LR, evaluate, make_data
from training import confusion_matrix, run_environment

from graphattn import LGA2d

CLASSES = ('background', 'T-shirt', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
           'Shirt', 'Sneaker', 'Bag', 'Ankle boot')


def build(lga_kwargs, seed: int, block_last: bool = False, draw_only=None,
          block_seed=None):
    """SegNet with the context block from ``lga_kwargs`` (None: the base), built in the
    order SegNet('lga') is, so that a seed draws the same encoder and decoder weights as
    the demo's LGA row; ``block_last``: draw the base's weights first (the same as the
    base's at this seed) and the block's after them. ``draw_only``: the base, whose
    decoder is drawn after an LGA block of these arguments that is then dropped (the
    decoder weights of the LGA row, without the block). ``block_seed``: the LGA row's
    encoder and decoder weights, the block's own weights redrawn from this seed."""
    torch.manual_seed(seed)
    if draw_only is not None:
        model = build(draw_only, seed)
        model.context = torch.nn.Identity()
        return model
    if lga_kwargs is None:
        return models.SegNet('none')
    if block_seed is not None:
        model = build(lga_kwargs, seed)
        torch.manual_seed(block_seed)
        model.context = LGA2d(model.context.in_channels, **lga_kwargs)
        return model
    if block_last:
        model = models.SegNet('none')
        model.context = LGA2d(model.context_channels if hasattr(model, 'context_channels')
                              else model.enc3[-1][0].out_channels, **lga_kwargs)
        return model
    saved = models.context_block
    models.context_block = lambda name, channels: LGA2d(channels, **lga_kwargs)
    try:
        return models.SegNet('lga')
    finally:
        models.context_block = saved


def grad_norm(params) -> float:
    total = sum(float(p.grad.pow(2).sum()) for p in params if p.grad is not None)
    return math.sqrt(total)


def per_class_iou(model, test):
    model.eval()
    images, labels = test
    confusion = torch.zeros(11, 11, dtype=torch.long)
    with torch.no_grad():
        for start in range(0, images.size(0), 32):
            pred = model(images[start:start + 32]).argmax(1)
            confusion += confusion_matrix(pred, labels[start:start + 32], 11)
    confusion = confusion.double()
    tp = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - tp
    model.train()
    return {c: round(float(tp[i] / union[i]) * 100, 2) if union[i] > 0 else None
            for i, c in enumerate(CLASSES)}


class Probe:
    """Forward hooks on the context block and its layers; filled only when ``on``."""

    def __init__(self, block):
        self.on = False
        self.stats = {}
        self.handles = []
        if not isinstance(block, LGA2d):
            return
        self.handles.append(block.register_forward_hook(self._block))
        for i, conv in enumerate(block.convs):
            self.handles.append(conv.register_forward_hook(self._layer(i)))
            for name in ('lin_att', 'lin_att_src'):
                lin = getattr(conv, name)
                if lin is not None:
                    self.handles.append(lin.register_forward_hook(self._logits(i, name)))

    def _block(self, module, args, out):
        if self.on:
            x = args[0].detach()
            y = (out[0] if isinstance(out, tuple) else out).detach()
            self.stats['block'] = {'in_std': float(x.std()), 'out_std': float(y.std()),
                                   'change_std': float((y - x).std())
                                   if y.shape == x.shape else None}

    def _layer(self, i):
        def hook(module, args, out):
            if self.on:
                h = args[0].detach()
                o = (out[0] if isinstance(out, tuple) else out).detach()
                d = self.stats.setdefault(f'layer{i}', {})
                d['in_std'] = float(h.std())
                d['out_std'] = float(o.std())
                d['out_zero_frac'] = float((o == 0).float().mean())
        return hook

    def _logits(self, i, name):
        def hook(module, args, out):
            if self.on:
                s = out.detach()
                d = self.stats.setdefault(f'layer{i}', {})
                d[f'{name}_logit_std'] = float(s.std())
                d[f'{name}_logit_absmax'] = float(s.abs().max())
        return hook


def attention_entropy(block, f3):
    """Mean entropy (nats) of each layer's attention over the in-image neighbours."""
    with torch.no_grad():
        _, maps = block(f3, return_attention_weights=True)
    out = []
    for m in maps:                                   # (B, heads, S, H, W), zero outside
        p = m.clamp_min(1e-12)
        out.append(float(-(m * p.log()).sum(2).mean()))
    return out


def train(lga_kwargs, seed: int, train_set, test_set, steps: int, batch_size: int,
          log_every: int, eval_at, block_last: bool = False, draw_only=None,
          block_seed=None):
    model = build(lga_kwargs, seed, block_last, draw_only, block_seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LR, total_steps=steps,
                                                   pct_start=0.15)
    block = model.context
    probe = Probe(block)
    parts = {'encoder': [p for m in (model.enc1, model.enc2, model.enc3)
                         for p in m.parameters()],
             'decoder': [p for m in (model.dec2, model.dec1, model.head)
                         for p in m.parameters()]}
    if isinstance(block, LGA2d):
        parts['lga_proj'] = list(block.proj.parameters())
        for i, conv in enumerate(block.convs):
            parts[f'layer{i}_value'] = list(conv.lin_value.parameters())
            parts[f'layer{i}_score'] = [p for n, p in conv.named_parameters()
                                        if n.startswith(('lin_att', 'att'))]
        for name, module in block.named_children():
            if name not in ('proj', 'convs'):
                parts[f'lga_{name}'] = list(module.parameters())
    images, labels = train_set
    g = torch.Generator().manual_seed(seed)
    losses, log, evals = [], [], []
    start = time.time()
    model.train()
    for step in range(steps):
        idx = torch.randint(images.size(0), (batch_size,), generator=g)
        x, y = images[idx], labels[idx]
        if bool(torch.rand((), generator=g) < 0.5):
            x, y = x.flip(-1), y.flip(-1)
        record = step % log_every == 0 or step == steps - 1
        probe.on = record
        logits = model(x)
        probe.on = False
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        losses.append(loss.item())
        if record:
            entry = {'step': step, 'loss': losses[-1],
                     'loss_window_mean': sum(losses[-log_every:]) / len(losses[-log_every:]),
                     'lr': schedule.get_last_lr()[0],
                     'grad_norm': {k: grad_norm(v) for k, v in parts.items()}}
            entry.update(probe.stats)
            if isinstance(block, LGA2d):
                with torch.no_grad():
                    f3 = model.encode(x)[2]
                entry['attention_entropy'] = attention_entropy(block, f3)
            probe.stats = {}
            log.append(entry)
        optimizer.step()
        schedule.step()
        if step + 1 in eval_at:
            evals.append({'step': step + 1, **evaluate(model, test_set),
                          'iou': per_class_iou(model, test_set)})
            model.train()
    wall = time.time() - start
    final = evaluate(model, test_set)
    return {'seed': seed, 'wall_s': round(wall, 1), 'miou': final['miou'],
            'pixel_acc': final['pixel_acc'], 'iou': per_class_iou(model, test_set),
            'final_loss_mean_last_50': sum(losses[-50:]) / 50, 'losses': losses,
            'log': log, 'evals': evals}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--lga', default='{"num_layers": 4, "fuse": true}',
                        help="LGA2d keyword arguments as JSON, or 'none' for the base")
    parser.add_argument('--name', required=True, help='row name; the JSON is NAME-seedS.json')
    parser.add_argument('--seeds', type=int, nargs='+', default=[2])
    parser.add_argument('--steps', type=int, default=450)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--train-size', type=int, default=2000)
    parser.add_argument('--test-size', type=int, default=500)
    parser.add_argument('--log-every', type=int, default=25)
    parser.add_argument('--eval-at', type=int, nargs='*', default=[])
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--block-last', action='store_true',
                        help="draw the block's weights after the base's (same base weights "
                             "as the base row at this seed)")
    parser.add_argument('--draw-only', default=None,
                        help="with --lga none: LGA2d arguments (JSON) of a block drawn in the "
                             "model and dropped, so that the base gets that row's decoder")
    parser.add_argument('--block-seed', type=int, default=None,
                        help="redraw the block's own weights from this seed")
    parser.add_argument('--out', default='docs/runs/2026-12-04-collapse')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lga_kwargs = None if args.lga == 'none' else json.loads(args.lga)
    train_set, test_set = make_data(args.train_size, args.test_size)
    os.makedirs(args.out, exist_ok=True)
    for seed in args.seeds:
        result = train(lga_kwargs, seed, train_set, test_set, args.steps, args.batch_size,
                       args.log_every, set(args.eval_at), args.block_last,
                       None if args.draw_only is None else json.loads(args.draw_only),
                       args.block_seed)
        result.update({'name': args.name, 'lga': lga_kwargs,
                       'command': 'python examples/diagnose_lga.py ' + ' '.join(
                           f"'{a}'" if ' ' in a or '{' in a else a
                           for a in os.sys.argv[1:]),
                       'config': {k: getattr(args, k) for k in (
                           'steps', 'batch_size', 'train_size', 'test_size', 'log_every',
                           'block_last', 'draw_only', 'block_seed')},
                       'environment': run_environment()})
        path = os.path.join(args.out, f'{args.name}-seed{seed}.json')
        with open(path, 'w') as f:
            json.dump(result, f, indent=1)
        low = [c for c, v in result['iou'].items() if v is not None and v < 5]
        print(f"{args.name} seed {seed}: mIoU {result['miou']:.1f}, last-50 loss "
              f"{result['final_loss_mean_last_50']:.3f}, {result['wall_s']:.0f} s; "
              f"classes under 5 IoU: {low}", flush=True)


if __name__ == '__main__':
    main()

"""Smoke check (not a benchmark): does each LGALoss form train on the collages?

One seed, a few steps, one thread: ``base + LGA`` (examples/models.py SegNet('lga')) trained
with cross-entropy + weight x LGALoss(form=...) against the same model at weight 0, same data,
steps, batch and optimiser (AdamW 3e-3, one-cycle, as examples/segment_collages.py). Prints,
per form ('none': weight 0), the mean loss term over the first and the last 10 steps and the test mIoU.

    OMP_NUM_THREADS=1 PYTHONPATH=. python docs/notes_lga_loss_smoke.py --steps 60
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'examples'))
from models import SegNet  # noqa: E402
from segment_collages import evaluate, make_data  # noqa: E402

from graphattn import LGALoss  # noqa: E402

FORMS = {'none': None, 'divergence': {}, 'contrastive': {'form': 'contrastive'},
         'contrastive+l2': {'form': 'contrastive', 'l2_normalize': True},
         'attention': {'form': 'attention'}}


def forward(model, x):
    features = model.encoder(x)
    out, latent, maps = model.context(features, return_latent=True,
                                      return_attention_weights=True)
    logits = F.interpolate(model.decoder(out), size=x.shape[-2:], mode='bilinear',
                           align_corners=False)
    return logits, latent, maps


def train(options, train_set, steps, batch_size, weight, seed):
    torch.manual_seed(seed)
    model = SegNet('lga')
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    criterion = LGALoss(**options) if options is not None else None
    images, labels = train_set
    g = torch.Generator().manual_seed(seed)
    terms = []
    model.train()
    for _ in range(steps):
        idx = torch.randint(images.size(0), (batch_size,), generator=g)
        x, y = images[idx], labels[idx]
        logits, latent, maps = forward(model, x)
        loss = F.cross_entropy(logits, y)
        if criterion is not None:
            term = criterion(maps if criterion.form == 'attention' else latent, y)
            terms.append(float(term.detach()))
            loss = loss + weight * term
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model, terms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=60)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--weight', type=float, default=1.0)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--train-size', type=int, default=256)
    parser.add_argument('--test-size', type=int, default=64)
    parser.add_argument('--forms', nargs='+', default=list(FORMS), choices=list(FORMS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    train_set, test_set = make_data(args.train_size, args.test_size)
    print(f"smoke check: {args.steps} steps of batch {args.batch_size}, weight {args.weight}, "
          f"seed {args.seed}, {args.train_size} train / {args.test_size} test collages")
    for name in args.forms:
        options = FORMS[name]
        start = time.time()
        model, terms = train(options, train_set, args.steps, args.batch_size, args.weight,
                             args.seed)
        scores = evaluate(model, test_set)
        drop = (f"loss term first 10 steps {statistics.mean(terms[:10]):.4f} -> last 10 "
                f"{statistics.mean(terms[-10:]):.4f}" if terms else 'no loss term')
        print(f"  {name:<16} mIoU {scores['miou']:5.2f}  pixel acc {scores['pixel_acc']:5.2f}  "
              f"{drop}  ({time.time() - start:.0f} s)", flush=True)


if __name__ == '__main__':
    main()

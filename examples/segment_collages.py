"""Tutorial: segmenting Fashion-MNIST collages of real items on real textures.

Run it alone (``python examples/segment_collages.py --help``) or through the
demo (``./tasks.sh demo``). The steps, each in its own function below:

1. Data: 64x64 collages of real Fashion-MNIST items (28x28; 2 to 4 are drawn,
   about 2 fit without overlapping) on crops of real texture photos
   (:class:`datasets.FashionCollages`);
   train collages from the train split, test collages from the test split, so no
   test item is ever seen in training.
2. Model: a small U-Net (:class:`models.SegNet`) with one context block at 1/8
   resolution: none, LGA, LGA trained with LGALoss, LatentGNN, or a non-local
   block. Every model gets the same data, steps, batches and optimiser (AdamW,
   one-cycle schedule); the context block is the only difference.
3. Training loop: cross-entropy (+ 0.1 x LGALoss for ``lga+loss``), random
   horizontal flips.
4. Evaluation: mIoU over the 11 classes and pixel accuracy on the test collages;
   parameters, MACs (torch's flop counter) and CPU time per training step. A
   trivial row (every pixel "background") shows where chance lies.

On several GPUs (or CPU processes): ``torchrun --nproc_per_node=N
examples/segment_collages.py ...`` trains each model data-parallel over the N
processes with the same global batch (see :mod:`distributed`); rank 0 evaluates
and writes the results.
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
from tqdm import tqdm

import distributed
from datasets import FashionCollages, MissingDataError, fail_with_hint, load_fashion_mnist
from models import CONTEXTS, DISPLAY_NAMES, SegNet
from training import (confusion_matrix, count_macs, count_parameters, markdown_table,
                      run_environment, segmentation_scores, summary)

from graphattn import LGALoss


#: The collage task: canvas side, items per collage, item scales, no overlap.
COLLAGE = dict(size=64, items=(2, 4), scales=(1,), overlap=False)


def make_data(train_size: int, test_size: int, size: int = COLLAGE['size']):
    options = dict(COLLAGE, size=size)
    train = FashionCollages('train', train_size, source=load_fashion_mnist('train'), **options)
    test = FashionCollages('test', test_size, source=load_fashion_mnist('test'), **options)
    # Collages are cheap but not free: build each once and keep them in memory.
    stack = lambda ds: tuple(torch.stack(t) for t in zip(*[ds[i] for i in range(len(ds))]))  # noqa: E731
    return stack(train), stack(test)


LR = 3e-3


def train_model(context: str, train, steps: int, batch_size: int, seed: int,
                lga_loss_weight: float = 0.1, progress: bool = True,
                lga_loss_temperature: float = 1.0):
    """Train one model; returns it and the median CPU seconds (process time) per step.

    CPU time, unlike wall time, does not grow when other processes share the cores, so
    it is the stable measure of a step's cost on a shared machine (it sums over threads).
    """
    rank, world_size, device = distributed.setup()
    torch.manual_seed(seed)
    model = distributed.wrap(SegNet(context), device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LR, total_steps=steps,
                                                   pct_start=0.15)
    contrastive = (LGALoss(ignore_index=-100, temperature=lga_loss_temperature)
                   if context == 'lga+loss' else None)
    images, labels = train
    g = torch.Generator().manual_seed(seed)
    step_times = []
    bar = tqdm(range(steps), desc=f'{context:>9} seed {seed}', disable=not progress or rank > 0,
               leave=False)
    model.train()
    for _ in bar:
        idx = torch.randint(images.size(0), (batch_size,), generator=g)
        idx = distributed.shard(idx, rank, world_size)  # all of it in one process
        x, y = images[idx].to(device), labels[idx].to(device)
        if bool(torch.rand((), generator=g) < 0.5):   # a mirrored item keeps its class
            x, y = x.flip(-1), y.flip(-1)
        start = time.process_time()
        if contrastive is not None:
            logits, latent = model(x, return_latent=True)
            loss = F.cross_entropy(logits, y) + lga_loss_weight * contrastive(latent, y)
        else:
            logits = model(x)
            loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        step_times.append(time.process_time() - start)
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return distributed.unwrap(model), statistics.median(step_times)


@torch.no_grad()
def evaluate(model, test, batch_size: int = 32) -> Dict[str, float]:
    model.eval()
    device = next(model.parameters()).device
    images, labels = test
    confusion = torch.zeros(FashionCollages.num_classes, FashionCollages.num_classes,
                            dtype=torch.long)
    for start in range(0, images.size(0), batch_size):
        pred = model(images[start:start + batch_size].to(device)).argmax(1).cpu()
        confusion += confusion_matrix(pred, labels[start:start + batch_size],
                                      FashionCollages.num_classes)
    return segmentation_scores(confusion)


def majority_scores(test) -> Dict[str, float]:
    """The trivial predictor: every pixel is background, the most frequent class."""
    labels = test[1]
    confusion = confusion_matrix(torch.zeros_like(labels), labels, FashionCollages.num_classes)
    return segmentation_scores(confusion)


def run(models: List[str], seeds: List[int], steps: int, batch_size: int, train_size: int,
        test_size: int, out: str, progress: bool = True):
    rank = distributed.setup()[0]
    say = print if rank == 0 else (lambda *args, **kwargs: None)  # one voice under torchrun
    train, test = make_data(train_size, test_size)
    size = COLLAGE['size']
    say(f"collages: {train_size} train / {test_size} test, {size}x{size}, 11 classes; "
        f"{steps} steps of batch {batch_size} per model and seed; seeds {seeds}"
        + (" (ONE seed: no spread is measured)" if len(seeds) == 1 else ""))
    results, trained = [], {}
    majority = majority_scores(test)
    results.append({'model': 'trivial: all background', 'key': 'majority',
                    'miou': [majority['miou']], 'pixel_acc': [majority['pixel_acc']],
                    'params': 0, 'macs': 0, 'cpu_s_per_step': None})
    for context in models:
        scores, step_times = [], []
        for seed in seeds:
            model, step_time = train_model(context, train, steps, batch_size, seed,
                                           progress=progress)
            scores.append(evaluate(model, test))
            step_times.append(step_time)
            trained.setdefault(context, model)
        model = trained[context]
        macs = count_macs(model, test[0][:1].to(next(model.parameters()).device))
        results.append({'model': DISPLAY_NAMES[context], 'key': context,
                        'miou': [s['miou'] for s in scores],
                        'pixel_acc': [s['pixel_acc'] for s in scores],
                        'params': count_parameters(model), 'macs': macs,
                        'cpu_s_per_step': statistics.median(step_times)})
        row = summary(results[-1], 'pixel acc (%)', 'image')
        say(f"  {row['model']:<24} mIoU {row['mIoU (%)']:>12}  pixel acc "
            f"{row['pixel acc (%)']:>12}  ({row['CPU ms / train step']} CPU ms/step)")
    if rank == 0:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, 'collages.json'), 'w') as f:
            json.dump({'config': {'seeds': seeds, 'steps': steps, 'batch_size': batch_size,
                                  'train_size': train_size, 'test_size': test_size,
                                  'collage': COLLAGE, 'optimizer': 'AdamW', 'max_lr': LR,
                                  'weight_decay': 1e-4, 'schedule': 'OneCycle, 15% warm-up',
                                  'augmentation': 'random horizontal flip'},
                       'environment': run_environment(), 'rows': results}, f, indent=2)
    return [summary(r, 'pixel acc (%)', 'image') for r in results], trained, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', nargs='+', default=list(CONTEXTS), choices=CONTEXTS)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--steps', type=int, default=450)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--train-size', type=int, default=2000)
    parser.add_argument('--test-size', type=int, default=500)
    parser.add_argument('--out', default='outputs/collages')
    args = parser.parse_args()
    try:
        results, _, _ = run(args.models, args.seeds, args.steps, args.batch_size,
                            args.train_size, args.test_size, args.out)
    except MissingDataError as error:
        fail_with_hint(error)
    if distributed.setup()[0] == 0:
        print(markdown_table(results))
    distributed.cleanup()


if __name__ == '__main__':
    main()

"""Tutorial: removing synthetic haze from real photos, with and without LGA.

The LGA paper evaluates on dehazing; we reproduce the *kind* of experiment at a small scale,
and say plainly what is synthetic. Run it with ``python examples/dehaze.py --help``; the
task is :class:`DehazeTask`, run by :mod:`experiment` like every comparison in the examples.
The steps, each in its own function below:

1. Data (:func:`make_data`): 64x64 crops of real photos that ship with scikit-image, hazed
   with the atmospheric scattering model I = J t + A (1 - t), t = exp(-beta d), on a
   synthetic depth d (a tilted ramp plus smooth noise; the photos have no depth maps),
   A uniform in [0.7, 1.0], beta uniform in [0.8, 2.0] (:class:`datasets.HazyCrops`).
   Train crops come from astronaut, coffee, immunohistochemistry, camera, brick, grass and
   clock; test crops from rocket, chelsea, coins and gravel: no photo is in both.
2. Model (:class:`models.DehazeNet`): a small U-Net-like CNN predicting a residual
   (clean = hazy + residual), with no context block, with LGA (4 layers) or with LatentGNN
   on its 1/4-resolution map. Every model gets the same data, steps, batches and optimiser
   (AdamW, one-cycle schedule with 30% warm-up: :func:`experiment.fit`).
3. Loss (:meth:`DehazeTask.loss`): L1 between prediction and clean crop.
4. Evaluation (:func:`evaluate`): PSNR and SSIM (``skimage.metrics``) on the test crops,
   mean +- std over seeds; the hazy input's own PSNR/SSIM is the trivial row; parameters,
   MACs (torch's flop counter) and the median CPU time (process time, summed over threads)
   per training step. Tables made before the move to :mod:`experiment` report wall time
   per step instead (``ms / train step``).

Outputs (``--out``): ``dehaze.json`` (:func:`experiment.write`'s layout), ``dehaze.md`` and
the figure ``dehaze_examples.png`` (hazy | prediction without LGA | with LGA | (with
LatentGNN) | clean).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

import experiment
from datasets import (DEHAZE_TEST_PHOTOS, DEHAZE_TRAIN_PHOTOS, HazyCrops, MissingDataError,
                      fail_with_hint)
from experiment import Budget, Task
from models import DehazeNet

MODELS = ('none', 'lga', 'latentgnn')
LABELS = {'hazy': 'hazy input (no model)', 'none': 'base (U-Net-like CNN)',
          'lga': 'base + LGA (4 layers)', 'latentgnn': 'base + LatentGNN (d = 32)'}
SETTINGS = {
    # the run behind docs/dehaze_examples.png and the README table: 732 s with --threads 1 on 2
    # cores that other jobs were using at the same time (load average about 4)
    'full': dict(steps=300, batch_size=16, train_size=2000, test_size=200, seeds=[0, 1, 2]),
    'short': dict(steps=150, batch_size=16, train_size=1000, test_size=100, seeds=[0]),
    'tiny': dict(steps=3, batch_size=2, train_size=8, test_size=4, seeds=[0]),  # smoke tests
}
#: The optimiser's one-cycle warm-up: torch's default (30%), which the dehazing runs have
#: always used (the collages use 15%).
WARMUP = 0.3


# 1. Data ---------------------------------------------------------------------------------

def make_data(train_size: int, test_size: int, size: int = 64, progress: bool = True):
    """Hazy/clean tensors (N, 3, S, S) and photo names for both splits, built once and kept
    in memory."""
    def build(split, length):
        ds = HazyCrops(split, length, size=size)
        samples = [ds.sample(i) for i in tqdm(range(length), desc=f'hazing {split} crops',
                                              disable=not progress, leave=False)]
        hazy = torch.stack([s.hazy for s in samples])
        clean = torch.stack([s.clean for s in samples])
        return hazy, clean, [s.photo for s in samples]
    return build('train', train_size), build('test', test_size)


# 2.-3. The task: models, batches, loss --------------------------------------------------

class DehazeTask(Task):
    """Dehazing: :class:`models.DehazeNet` with each context block, L1 loss, batches of random
    train crops; PSNR and SSIM on the test crops, beside the hazy input itself."""

    name = 'dehaze'
    rows = LABELS
    metrics = {'psnr': 'PSNR (dB)', 'ssim': 'SSIM'}
    unit = 'crop'
    #: digits shown per metric: PSNR differences of 0.01 dB and SSIM of 0.001 matter here
    digits = {'psnr': 2, 'ssim': 3}

    def __init__(self, train_size: int = SETTINGS['short']['train_size'],
                 test_size: int = SETTINGS['short']['test_size'], progress: bool = True):
        self.train_size, self.test_size, self.progress = train_size, test_size, progress

    def make_data(self):
        return make_data(self.train_size, self.test_size, progress=self.progress)

    def build(self, row: str) -> nn.Module:
        return DehazeNet(row)

    def sample(self, train, batch_size: int, generator: torch.Generator):
        hazy, clean = train[0], train[1]
        idx = torch.randint(hazy.size(0), (batch_size,), generator=generator)
        return hazy[idx], clean[idx]

    def loss(self, model, row: str, hazy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(model(hazy), clean)

    def evaluate(self, model, row: str, test) -> Dict[str, float]:
        return evaluate(model, test)

    def trivial(self, train, test) -> Dict[str, Dict[str, float]]:
        return {'hazy': evaluate(nn.Identity(), test)}   # the input itself, unchanged

    def config(self) -> Dict[str, Any]:
        return {'train_size': self.train_size, 'test_size': self.test_size, 'crop': 64,
                'train_photos': DEHAZE_TRAIN_PHOTOS, 'test_photos': DEHAZE_TEST_PHOTOS,
                'haze': {'airlight': [0.7, 1.0], 'beta': [0.8, 2.0], 'depth': [0.1, 1.0]},
                'threads': torch.get_num_threads()}

    def columns(self, result: Dict[str, Any]) -> Dict[str, str]:
        row = super().columns(result)
        for key, header in self.metrics.items():
            row[header] = fmt(result[key], self.digits[key])
        return row


# 4. Evaluation ---------------------------------------------------------------------------

def image_scores(pred: torch.Tensor, clean: torch.Tensor) -> Dict[str, List[float]]:
    """Per-image PSNR (dB) and SSIM of (N, 3, S, S) images in [0, 1], by scikit-image."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    psnr, ssim = [], []
    for p, c in zip(pred.clamp(0, 1).double().numpy(), clean.double().numpy()):
        psnr.append(float(peak_signal_noise_ratio(c, p, data_range=1.0)))
        ssim.append(float(structural_similarity(c, p, data_range=1.0, channel_axis=0)))
    return {'psnr': psnr, 'ssim': ssim}


@torch.no_grad()
def predict(model, hazy: torch.Tensor, batch_size: int = 50) -> torch.Tensor:
    model.eval()
    return torch.cat([model(hazy[i:i + batch_size]) for i in range(0, hazy.size(0), batch_size)])


def evaluate(model, test) -> Dict[str, float]:
    scores = image_scores(predict(model, test[0]), test[1])
    return {k: statistics.mean(v) for k, v in scores.items()}


def fmt(values: List[float], digits: int) -> str:
    if len(values) == 1:
        return f'{values[0]:.{digits}f}'
    return f'{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}'


def run(models: List[str], budget: Budget, train_size: int, test_size: int,
        out: Optional[str], progress: bool = True):
    """The dehazing comparison of ``models`` (keys of :data:`MODELS`); returns
    :func:`experiment.run`'s ``(results, models, test)``."""
    task = DehazeTask(train_size, test_size, progress)
    data = task.make_data()
    print(f"dehazing: {train_size} train crops ({', '.join(DEHAZE_TRAIN_PHOTOS)}) / {test_size} "
          f"test crops ({', '.join(DEHAZE_TEST_PHOTOS)}), 64x64, synthetic haze; "
          f"{budget.steps} steps of batch {budget.batch_size} per model and seed; seeds "
          f"{list(budget.seeds)}")
    return experiment.run(task, models, budget, out, progress, data=data)


def figure(models: Dict[str, torch.nn.Module], test, out: str, count: int = 4) -> str:
    """hazy | each model's prediction | clean, for test crops of different photos."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    hazy, clean, photos = test
    shown, seen = [], set()
    for i, name in enumerate(photos):   # one crop per test photo first, then any
        if name not in seen:
            shown.append(i)
            seen.add(name)
    shown = (shown + [i for i in range(hazy.size(0)) if i not in shown])[:count]
    columns = [('hazy input', hazy[shown])]
    for name, model in models.items():
        columns.append((LABELS[name], predict(model, hazy[shown]).clamp(0, 1)))
    columns.append(('clean (target)', clean[shown]))
    fig, axes = plt.subplots(len(shown), len(columns),
                             figsize=(2.3 * len(columns), 2.4 * len(shown)), squeeze=False)
    for col, (title, images) in enumerate(columns):
        last = col == len(columns) - 1
        psnr = None if last else image_scores(images, clean[shown])['psnr']
        for row, i in enumerate(shown):
            ax = axes[row, col]
            ax.imshow(images[row].permute(1, 2, 0).numpy())
            caption = photos[i] if last else f'{psnr[row]:.1f} dB'
            label = f'{title}\n{caption}' if row == 0 else caption
            ax.set_title(label, fontsize=8)
            ax.axis('off')
    fig.tight_layout()
    path = os.path.join(out, 'dehaze_examples.png')
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--full', action='store_true', help='3 seeds, 300 steps (~12 min)')
    parser.add_argument('--tiny', action='store_true', help='a few steps, for smoke tests')
    parser.add_argument('--models', nargs='+', default=list(MODELS), choices=MODELS)
    parser.add_argument('--seeds', type=int, nargs='+', help='override the run\'s seeds')
    parser.add_argument('--steps', type=int, help='override the run\'s training steps')
    parser.add_argument('--threads', type=int,
                        help='torch threads (default: torch\'s choice); on a busy shared '
                             'machine 1 can be several times faster than 2')
    parser.add_argument('--out', default='outputs/dehaze')
    parser.add_argument('--no-progress', action='store_true', help='hide progress bars')
    args = parser.parse_args(argv)
    cfg = dict(SETTINGS['full' if args.full else 'tiny' if args.tiny else 'short'])
    budget = Budget(args.steps or cfg['steps'], cfg['batch_size'],
                    tuple(args.seeds or cfg['seeds']), warmup=WARMUP)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.time()
    try:
        results, trained, test = run(args.models, budget, cfg['train_size'], cfg['test_size'],
                                     args.out, not args.no_progress)
    except MissingDataError as error:
        fail_with_hint(error)
    print('figure:', figure(trained, test, args.out))
    print(f"\n{experiment.table(DehazeTask(), results)}\n\n{time.time() - start:.0f} s; "
          f"results in {os.path.abspath(args.out)}")


if __name__ == '__main__':
    main()

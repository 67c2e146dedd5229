"""Tutorial: removing synthetic haze from real photos, with and without LGA.

The LGA paper evaluates on dehazing; we reproduce the *kind* of experiment at a small scale,
and say plainly what is synthetic. Run it with ``python examples/dehaze.py --help``.
The steps, each in its own function below:

1. Data (:func:`make_data`): 64x64 crops of real photos that ship with scikit-image, hazed
   with the atmospheric scattering model I = J t + A (1 - t), t = exp(-beta d), on a
   synthetic depth d (a tilted ramp plus smooth noise; the photos have no depth maps),
   A uniform in [0.7, 1.0], beta uniform in [0.8, 2.0] (:class:`datasets.HazyCrops`).
   Train crops come from astronaut, coffee, immunohistochemistry, camera, brick, grass and
   clock; test crops from rocket, chelsea, coins and gravel: no photo is in both.
2. Model (:class:`models.DehazeNet`): a small U-Net-like CNN predicting a residual
   (clean = hazy + residual), with no context block, with LGA (4 layers) or with LatentGNN
   on its 1/4-resolution map. Every model gets the same data, steps, batch and optimiser.
3. Training loop (:func:`train_model`): L1 loss between prediction and clean crop.
4. Evaluation (:func:`evaluate`): PSNR and SSIM (``skimage.metrics``) on the test crops,
   mean +- std over seeds; the hazy input's own PSNR/SSIM is the trivial baseline;
   parameters, MACs (torch's flop counter) and the median time per training step.

Outputs (``--out``): ``dehaze.json``, ``dehaze.md`` and the figure ``dehaze_examples.png``
(hazy | prediction without LGA | with LGA | (with LatentGNN) | clean).
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

from datasets import (DEHAZE_TEST_PHOTOS, DEHAZE_TRAIN_PHOTOS, HazyCrops, MissingDataError,
                      fail_with_hint)
from models import DehazeNet
from training import count_macs, count_parameters, markdown_table

MODELS = ('none', 'lga', 'latentgnn')
LABELS = {'none': 'base (U-Net-like CNN)', 'lga': 'base + LGA (4 layers)',
          'latentgnn': 'base + LatentGNN (d = 32)', 'hazy': 'hazy input (no model)'}
SETTINGS = {
    # the run behind docs/dehaze_examples.png and the README table: 732 s with --threads 1 on 2
    # cores that other jobs were using at the same time (load average about 4)
    'full': dict(steps=300, batch_size=16, train_size=2000, test_size=200, seeds=[0, 1, 2]),
    'short': dict(steps=150, batch_size=16, train_size=1000, test_size=100, seeds=[0]),
    'tiny': dict(steps=3, batch_size=2, train_size=8, test_size=4, seeds=[0]),  # smoke tests
}


# 1. Data ---------------------------------------------------------------------------------

def make_data(train_size: int, test_size: int, size: int = 64, progress: bool = True):
    """Hazy/clean tensors (N, 3, S, S) for both splits, built once and kept in memory."""
    def build(split, length):
        ds = HazyCrops(split, length, size=size)
        samples = [ds.sample(i) for i in tqdm(range(length), desc=f'hazing {split} crops',
                                              disable=not progress, leave=False)]
        hazy = torch.stack([s.hazy for s in samples])
        clean = torch.stack([s.clean for s in samples])
        return hazy, clean, [s.photo for s in samples]
    return build('train', train_size), build('test', test_size)


# 2.-3. Model and training loop -------------------------------------------------------------

def train_model(context: str, train, steps: int, batch_size: int, seed: int,
                progress: bool = True):
    torch.manual_seed(seed)
    model = DehazeNet(context)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    hazy, clean = train[0], train[1]
    g = torch.Generator().manual_seed(seed)
    step_times = []
    bar = tqdm(range(steps), desc=f'{context:>9} seed {seed}', disable=not progress, leave=False)
    model.train()
    for _ in bar:
        idx = torch.randint(hazy.size(0), (batch_size,), generator=g)
        start = time.perf_counter()
        loss = F.l1_loss(model(hazy[idx]), clean[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        step_times.append(time.perf_counter() - start)
        bar.set_postfix(l1=f'{loss.item():.4f}')
    return model, statistics.median(step_times)


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


def run(models: List[str], seeds: List[int], steps: int, batch_size: int, train_size: int,
        test_size: int, out: str, progress: bool = True):
    start = time.time()
    train, test = make_data(train_size, test_size, progress=progress)
    print(f"dehazing: {train_size} train crops ({', '.join(DEHAZE_TRAIN_PHOTOS)}) / {test_size} "
          f"test crops ({', '.join(DEHAZE_TEST_PHOTOS)}), 64x64, synthetic haze; "
          f"{steps} steps of batch {batch_size} per model and seed")
    hazy_scores = evaluate(torch.nn.Identity(), test)  # the input itself: the trivial baseline
    rows = [{'model': LABELS['hazy'], 'PSNR (dB)': f"{hazy_scores['psnr']:.2f}",
             'SSIM': f"{hazy_scores['ssim']:.3f}", 'params': '0', 'GMACs / crop': '0',
             'ms / train step': '-'}]
    raw = {'hazy': {'psnr': [hazy_scores['psnr']], 'ssim': [hazy_scores['ssim']]}}
    trained = {}
    for context in models:
        scores, step_times = [], []
        for seed in seeds:
            model, step_time = train_model(context, train, steps, batch_size, seed, progress)
            scores.append(evaluate(model, test))
            step_times.append(step_time)
            trained.setdefault(context, model)
        macs = count_macs(trained[context], test[0][:1])
        raw[context] = {'psnr': [s['psnr'] for s in scores], 'ssim': [s['ssim'] for s in scores],
                        'ms_per_step': [1000 * t for t in step_times],
                        'params': count_parameters(trained[context]), 'macs': macs}
        row = {'model': LABELS[context],
               'PSNR (dB)': fmt(raw[context]['psnr'], 2),
               'SSIM': fmt(raw[context]['ssim'], 3),
               'params': f'{count_parameters(trained[context]):,}',
               'GMACs / crop': f'{macs / 1e9:.3f}',
               'ms / train step': f'{1000 * statistics.median(step_times):.0f}'}
        rows.append(row)
        print(f"  {row['model']:<26} PSNR {row['PSNR (dB)']:>14}  SSIM {row['SSIM']:>14}  "
              f"({row['ms / train step']} ms/step)")
    os.makedirs(out, exist_ok=True)
    wall = time.time() - start
    with open(os.path.join(out, 'dehaze.json'), 'w') as f:
        json.dump({'seeds': seeds, 'steps': steps, 'batch_size': batch_size,
                   'train_size': train_size, 'test_size': test_size, 'crop': 64,
                   'train_photos': DEHAZE_TRAIN_PHOTOS, 'test_photos': DEHAZE_TEST_PHOTOS,
                   'haze': {'airlight': [0.7, 1.0], 'beta': [0.8, 2.0], 'depth': [0.1, 1.0]},
                   'threads': torch.get_num_threads(), 'wall_s': round(wall, 1),
                   'rows': rows, 'raw': raw}, f, indent=2)
    with open(os.path.join(out, 'dehaze.md'), 'w') as f:
        f.write(markdown_table(rows) + '\n')
    return rows, trained, test


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
    cfg['seeds'] = args.seeds or cfg['seeds']
    cfg['steps'] = args.steps or cfg['steps']
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.time()
    try:
        rows, trained, test = run(args.models, cfg['seeds'], cfg['steps'], cfg['batch_size'],
                                  cfg['train_size'], cfg['test_size'], args.out,
                                  not args.no_progress)
    except MissingDataError as error:
        fail_with_hint(error)
    print('figure:', figure(trained, test, args.out))
    print(f"\n{markdown_table(rows)}\n\n{time.time() - start:.0f} s; results in "
          f"{os.path.abspath(args.out)}")


if __name__ == '__main__':
    main()

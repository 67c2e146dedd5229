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
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

import distributed
import experiment
from datasets import FashionCollages, MissingDataError, fail_with_hint, load_fashion_mnist
from experiment import Budget, Task
from models import CONTEXTS, DISPLAY_NAMES, SegNet
from training import confusion_matrix, segmentation_scores

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


class CollageTask(Task):
    """The collage comparison: :class:`models.SegNet` with each context block, cross-entropy
    (+ ``lga_loss_weight`` x :class:`~graphattn.LGALoss` on the LGA block's output for the
    ``'lga+loss'`` row), random horizontal flips; mIoU and pixel accuracy on the test
    collages, beside the all-background predictor."""

    name = 'collages'
    rows = {'majority': 'trivial: all background', **DISPLAY_NAMES}
    unit = 'image'

    def __init__(self, train_size: int = 2000, test_size: int = 500,
                 lga_loss_weight: float = 0.1, lga_loss_temperature: float = 1.0):
        self.train_size, self.test_size = train_size, test_size
        self.lga_loss_weight = lga_loss_weight
        self.contrastive = LGALoss(ignore_index=-100, temperature=lga_loss_temperature)

    def make_data(self):
        return make_data(self.train_size, self.test_size)

    def build(self, row: str) -> SegNet:
        return SegNet(row)

    def sample(self, train, batch_size: int, generator: torch.Generator):
        images, labels = train
        idx = torch.randint(images.size(0), (batch_size,), generator=generator)
        x, y = images[idx], labels[idx]
        if bool(torch.rand((), generator=generator) < 0.5):   # a mirrored item keeps its class
            x, y = x.flip(-1), y.flip(-1)
        return x, y

    def loss(self, model, row: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if row != 'lga+loss':
            return F.cross_entropy(model(x), y)
        logits, latent = model(x, return_latent=True)
        return F.cross_entropy(logits, y) + self.lga_loss_weight * self.contrastive(latent, y)

    def evaluate(self, model, row: str, test) -> Dict[str, float]:
        return evaluate(model, test)

    def trivial(self, train, test) -> Dict[str, Dict[str, float]]:
        return {'majority': majority_scores(test)}

    def config(self) -> Dict[str, object]:
        return {'train_size': self.train_size, 'test_size': self.test_size,
                'collage': COLLAGE, 'lga_loss_weight': self.lga_loss_weight,
                'lga_loss_temperature': self.contrastive.temperature,
                'augmentation': 'random horizontal flip'}


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


def run(models: List[str], budget: Budget, train_size: int = 2000, test_size: int = 500,
        out: Optional[str] = None, progress: bool = True):
    """The collage comparison of ``models`` (rows of :data:`models.CONTEXTS`); returns
    :func:`experiment.run`'s ``(results, models, test)``."""
    task = CollageTask(train_size, test_size)
    size = COLLAGE['size']
    if distributed.is_main():
        print(f"collages: {train_size} train / {test_size} test, {size}x{size}, 11 classes; "
              f"{budget.steps} steps of batch {budget.batch_size} per model and seed; seeds "
              f"{list(budget.seeds)}"
              + (" (ONE seed: no spread is measured)" if len(budget.seeds) == 1 else ""))
    return experiment.run(task, models, budget, out, progress)


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
    budget = Budget(args.steps, args.batch_size, tuple(args.seeds))
    try:
        results, _, _ = run(args.models, budget, args.train_size, args.test_size, args.out)
    except MissingDataError as error:
        fail_with_hint(error)
    if distributed.is_main():
        print(experiment.table(CollageTask(), results))
    distributed.cleanup()


if __name__ == '__main__':
    main()

"""Training helpers shared by the examples: metrics, cost counting, result tables."""
from __future__ import annotations

import statistics
from typing import Dict, List

import torch
from torch import nn


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = -1) -> torch.Tensor:
    keep = target != ignore_index
    index = target[keep] * num_classes + pred[keep]
    return torch.bincount(index, minlength=num_classes ** 2).view(num_classes, num_classes)


def segmentation_scores(confusion: torch.Tensor) -> Dict[str, float]:
    """mIoU over the classes present in the targets or predictions, and pixel accuracy."""
    confusion = confusion.double()
    tp = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - tp
    present = union > 0
    iou = tp[present] / union[present]
    return {'miou': float(iou.mean()) * 100, 'pixel_acc': float(tp.sum() / confusion.sum()) * 100}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model: nn.Module, *inputs, **kwargs) -> int:
    """Multiply-accumulates of one forward pass, by torch's own flop counter."""
    from torch.utils.flop_counter import FlopCounterMode
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*inputs, **kwargs)
    model.train(was_training)
    return counter.get_total_flops() // 2


def mean_std(values: List[float]) -> str:
    if len(values) == 1:
        return f'{values[0]:.1f}'
    return f'{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}'


def markdown_table(rows: List[Dict[str, object]]) -> str:
    keys = list(rows[0])
    lines = ['| ' + ' | '.join(keys) + ' |', '|' + '|'.join('---' for _ in keys) + '|']
    lines += ['| ' + ' | '.join(str(r[k]) for k in keys) + ' |' for r in rows]
    return '\n'.join(lines)

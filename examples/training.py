"""Training helpers shared by the examples: metrics, cost counting, result tables."""
from __future__ import annotations

import datetime
import os
import platform
import re
import statistics
from typing import Dict, List, Optional

import torch

import graphs
from torch import nn


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = -1) -> torch.Tensor:
    """``M[t, p]``, pixels (points) of class ``t`` predicted ``p``: :func:`graphs.confusion_matrix`."""
    return graphs.confusion_matrix(pred, target, num_classes, ignore_index=ignore_index)


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


def _cpu_model() -> Optional[str]:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:  # not Linux
        pass
    return platform.processor() or None


def _onednn_version() -> Optional[str]:
    found = re.search(r'(?:MKL-DNN|oneDNN) (v[\d.]+)', torch.__config__.show())
    return found.group(1) if found else None


def run_environment() -> Dict[str, object]:
    """What a reader needs to judge the timings and to pair runs: threads, cores, load,
    versions, date, and what decides the CPU kernels' rounding (the torch build, the CPU and
    the instruction set its kernels use, oneDNN's version): the same code gave other digits
    after the environment was rebuilt (docs/runs/2026-12-05-base-drift/)."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not available on this platform
        load = None
    return {'torch_threads': torch.get_num_threads(), 'cpu_count': os.cpu_count(),
            'load_average_1_5_15_min': load, 'torch': torch.__version__,
            'torch_git': (torch.version.git_version or '')[:12] or None,
            'cpu_capability': torch.backends.cpu.get_cpu_capability(),
            'onednn': _onednn_version(),
            'python': platform.python_version(), 'machine': platform.machine(),
            'processor': _cpu_model(),
            'date_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}


def markdown_table(rows: List[Dict[str, object]]) -> str:
    keys = list(rows[0])
    lines = ['| ' + ' | '.join(keys) + ' |', '|' + '|'.join('---' for _ in keys) + '|']
    lines += ['| ' + ' | '.join(str(r[k]) for k in keys) + ' |' for r in rows]
    return '\n'.join(lines)

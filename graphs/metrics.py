"""Per-point segmentation scores: the confusion matrix and per-class IoU."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .validation import check_positive_int

__all__ = ['confusion_matrix', 'per_class_iou']


def _check_labels(name: str, labels: Tensor) -> Tensor:
    if not isinstance(labels, Tensor) or labels.is_floating_point() or labels.is_complex() \
            or labels.dtype == torch.bool:
        raise TypeError(f"'{name}' must be an integer tensor of class indices (got "
                        f"{getattr(labels, 'dtype', type(labels).__name__)}); take "
                        "probabilities' argmax(-1) first")
    return labels.reshape(-1).long()


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, *,
                     ignore_index: Optional[int] = None) -> Tensor:
    """``M[t, p]``: how many points of class ``t`` were predicted ``p``.

    Args:
        pred (LongTensor): Predicted classes, any shape.
        target (LongTensor): True classes, the same shape.
        num_classes (int): Number of classes.
        ignore_index (int, optional): Target value of unlabelled points
            (skipped).

    Returns:
        LongTensor ``(num_classes, num_classes)``.
    """
    check_positive_int('num_classes', num_classes)
    if isinstance(pred, Tensor) and isinstance(target, Tensor) and pred.shape != target.shape:
        raise ValueError(f"'pred' and 'target' must have the same shape (got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)})")
    pred, target = _check_labels('pred', pred), _check_labels('target', target)
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    for name, labels in (('pred', pred), ('target', target)):
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise ValueError(f"'{name}' holds classes outside [0, {num_classes})"
                             + (" (set 'ignore_index' for unlabelled points)"
                                if name == 'target' else ''))
    flat = target * num_classes + pred
    return torch.bincount(flat, minlength=num_classes ** 2).view(num_classes, num_classes)


def per_class_iou(pred: Tensor, target: Tensor, num_classes: int, *,
                  ignore_index: Optional[int] = None) -> Tensor:
    r"""Intersection over union of every class,
    :math:`\mathrm{IoU}_c = \frac{|P_c \cap T_c|}{|P_c \cup T_c|}`
    (:math:`P_c`: points predicted :math:`c`, :math:`T_c`: points of class
    :math:`c`), from :func:`confusion_matrix`.

    A class that is neither present nor predicted gets NaN (no evidence
    either way), so ``torch.nanmean`` of the result is the mean IoU over the
    classes that occur.

    Returns:
        Tensor ``(num_classes,)`` of floats in ``[0, 1]`` or NaN.
    """
    matrix = confusion_matrix(pred, target, num_classes, ignore_index=ignore_index).double()
    inter = matrix.diagonal()
    union = matrix.sum(0) + matrix.sum(1) - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.nan).float()

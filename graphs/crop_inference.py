"""Per-point predictions over a whole cloud from a model that sees crops: every crop
is predicted, and each point's class probabilities are averaged over the crops that
hold it.

It lives in :mod:`graphs` because it only needs a callable (``Batch -> logits``):
nothing here knows of layers."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import Tensor
from torch_geometric.data import Batch

from .collate import collate_clouds
from .validation import check_points, check_positive_int

__all__ = ['predict_by_crops']


@torch.no_grad()
def predict_by_crops(model: Callable[[Batch], Tensor], pos: Tensor, crops: Sequence[Tensor], *,
                     x: Optional[Tensor] = None, k: int = 16, loop: bool = True,
                     crops_per_batch: int = 8,
                     transform: Optional[Callable[[Tensor], Tensor]] = None,
                     engine: str = 'auto') -> Tensor:
    r"""Class probabilities of every point of a cloud, averaged over crops.

    .. math::
        \mathbf{P}_i = \frac{1}{|\{c : i \in c\}|} \sum_{c \ni i}
        \mathrm{softmax}\big(f(\mathcal{G}_c)\big)_i

    where :math:`\mathcal{G}_c` is crop :math:`c` as a kNN graph
    (:func:`graphs.collate_clouds`, ``k``, ``loop``) and :math:`f` the model.
    Crops are predicted ``crops_per_batch`` at a time, as one ``Batch``; a
    point repeated inside one crop (see :func:`graphs.resample`) counts once
    per copy.  Runs under :func:`torch.no_grad`; put the model in ``eval()``
    mode first.

    Args:
        model (callable): ``Batch -> logits`` ``(total points, num_classes)``
            (a batch holds ``pos``, ``edge_index``, ``edge_attr``, ``batch``
            and ``x`` if given).
        pos (Tensor): Coordinates ``(N, D)`` of the whole cloud.
        crops (list of LongTensor): Point indices of each crop (e.g.
            :func:`graphs.covering_crops`); together they must cover every point.
        x (Tensor, optional): Point features ``(N, C)``.
        k (int, optional): Neighbours per point. (default: :obj:`16`)
        loop (bool, optional): Self-loops. (default: :obj:`True`)
        crops_per_batch (int, optional): Crops per model call. (default: :obj:`8`)
        transform (callable, optional): Applied to each crop's coordinates
            ``(n, D)`` before its graph is built (the normalisation used in
            training, e.g. centring and scaling).

    Returns:
        Tensor ``(N, num_classes)`` of averaged probabilities.
    """
    pos = check_points('pos', pos)
    check_positive_int('crops_per_batch', crops_per_batch)
    n = pos.size(0)
    if len(crops) == 0:
        raise ValueError("'crops' is empty: give crops that cover the cloud "
                         "(graphs.covering_crops)")
    for i, index in enumerate(crops):
        if not isinstance(index, Tensor) or index.dim() != 1 or index.is_floating_point() \
                or index.numel() == 0:
            raise ValueError(f"'crops[{i}]' must be a non-empty 1-D tensor of point indices")
        if int(index.min()) < 0 or int(index.max()) >= n:
            raise IndexError(f"'crops[{i}]' holds point indices outside [0, {n})")
    sums: Optional[Tensor] = None
    counts = torch.zeros(n, dtype=pos.dtype, device=pos.device)
    for start in range(0, len(crops), crops_per_batch):
        chunk = [index.to(pos.device) for index in crops[start:start + crops_per_batch]]
        crop_pos = [pos[index] if transform is None else transform(pos[index])
                    for index in chunk]
        batch = collate_clouds(crop_pos, None if x is None else [x[index] for index in chunk],
                               k=k, loop=loop, engine=engine)
        logits = model(batch)
        total = sum(index.numel() for index in chunk)
        if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.size(0) != total:
            raise ValueError(f"'model' must return logits of shape ({total}, num_classes) for "
                             f"a batch of {total} points (got "
                             f"{getattr(logits, 'shape', type(logits).__name__)})")
        index = torch.cat(chunk)
        if sums is None:
            sums = logits.new_zeros(n, logits.size(1))
        sums.index_add_(0, index, logits.softmax(-1).to(sums.dtype))
        counts.index_add_(0, index, torch.ones_like(index, dtype=counts.dtype))
    missing = int((counts == 0).sum())
    if missing:
        raise ValueError(f"'crops' leave {missing} of {n} points uncovered: every point must "
                         "be in at least one crop (graphs.covering_crops)")
    assert sums is not None
    return sums / counts.to(sums.dtype).unsqueeze(-1)

"""Crops of large point clouds: ball or kNN crops around a centre, random crops for
training, crops that cover a whole cloud for inference, resampling of a crop to a
fixed size (so that crops batch into equal-sized clouds) and its inference
counterpart, a crop split into parts of at most that size."""
from __future__ import annotations

from typing import List, Optional, Union

import torch
from torch import Tensor

from .validation import check_points, check_positive_float, check_positive_int

__all__ = ['crop', 'random_crops', 'covering_crops', 'resample', 'split_crop']


def _check_size(num_points: Optional[int], radius: Optional[float]) -> None:
    if (num_points is None) == (radius is None):
        raise ValueError("give exactly one of 'num_points' (the nearest points of the centre) "
                         "or 'radius' (every point closer than it)")
    if num_points is not None:
        check_positive_int('num_points', num_points)
    else:
        check_positive_float('radius', radius)


def _crop(pos: Tensor, center: Tensor, num_points: Optional[int],
          radius: Optional[float]) -> Tensor:
    """Unchecked :func:`crop` on a centre given as coordinates ``(D,)``."""
    dist = (pos - center).pow(2).sum(-1)
    # A stable sort: ties (equal distances) in index order, the same on every run.
    order = torch.sort(dist, stable=True).indices
    if num_points is not None:
        return order[:num_points]
    return order[:int((dist < radius * radius).sum())]


def _center(pos: Tensor, center: Union[int, Tensor]) -> Tensor:
    if isinstance(center, int) and not isinstance(center, bool):
        if not 0 <= center < pos.size(0):
            raise IndexError(f"'center' is a point index and must be in [0, {pos.size(0)}) "
                             f"(got {center})")
        return pos[center]
    if not isinstance(center, Tensor) or center.shape != pos.shape[1:]:
        raise ValueError(f"'center' must be a point index or coordinates of shape "
                         f"({pos.size(1)},) (got {getattr(center, 'shape', center)!r})")
    return center.to(pos.dtype)


def crop(pos: Tensor, center: Union[int, Tensor], *, num_points: Optional[int] = None,
         radius: Optional[float] = None) -> Tensor:
    r"""The points of a cloud around a centre.

    Exactly one of ``num_points`` (the ``num_points`` nearest points of the
    centre, all points if the cloud has fewer: a kNN crop, of fixed size) or
    ``radius`` (every point with :math:`\lVert \mathbf{p} - \mathbf{c}
    \rVert < r`: a ball crop, of varying size) must be given.

    Args:
        pos (Tensor): Point coordinates ``(N, D)``.
        center (int or Tensor): A point index, or coordinates ``(D,)``.
        num_points (int, optional): Size of a kNN crop.
        radius (float, optional): Radius of a ball crop.

    Returns:
        LongTensor of point indices, nearest first (ties in index order).
    """
    pos = check_points('pos', pos)
    _check_size(num_points, radius)
    return _crop(pos, _center(pos, center), num_points, radius)


def random_crops(pos: Tensor, num_crops: int, *, num_points: Optional[int] = None,
                 radius: Optional[float] = None,
                 generator: Optional[torch.Generator] = None) -> List[Tensor]:
    """``num_crops`` crops (see :func:`crop`) around centres drawn uniformly
    among the points (with replacement), for training.

    Returns:
        A list of ``num_crops`` LongTensors of point indices.
    """
    pos = check_points('pos', pos)
    check_positive_int('num_crops', num_crops)
    _check_size(num_points, radius)
    if pos.size(0) == 0:
        raise ValueError("'pos' holds no point to crop")
    centers = torch.randint(pos.size(0), (num_crops,), generator=generator)
    return [_crop(pos, pos[int(c)], num_points, radius) for c in centers]


def covering_crops(pos: Tensor, *, num_points: Optional[int] = None,
                   radius: Optional[float] = None, coverage: int = 1,
                   generator: Optional[torch.Generator] = None) -> List[Tensor]:
    """Crops (see :func:`crop`) whose union covers every point at least
    ``coverage`` times, for inference over a whole cloud.

    Centres are drawn one at a time, uniformly among the points still covered
    fewer than ``coverage`` times (a centre is always inside its own crop, so
    every crop adds coverage and the loop ends). Neighbouring crops overlap;
    :func:`graphs.predict_by_crops` averages the predictions of every crop
    that holds a point.

    Args:
        pos (Tensor): Point coordinates ``(N, D)``.
        num_points (int, optional): Size of kNN crops.
        radius (float, optional): Radius of ball crops.
        coverage (int, optional): The fewest crops that hold each point.
            (default: :obj:`1`)
        generator (torch.Generator, optional): Source of the centres.

    Returns:
        A list of LongTensors of point indices (empty for an empty cloud).
    """
    pos = check_points('pos', pos)
    _check_size(num_points, radius)
    check_positive_int('coverage', coverage)
    counts = torch.zeros(pos.size(0), dtype=torch.long)
    crops: List[Tensor] = []
    while True:
        open_points = torch.nonzero(counts < coverage).view(-1)
        if open_points.numel() == 0:
            return crops
        pick = int(torch.randint(open_points.numel(), (1,), generator=generator))
        index = _crop(pos, pos[int(open_points[pick])], num_points, radius)
        counts[index.cpu()] += 1
        crops.append(index)


def _check_index(index) -> None:
    if not isinstance(index, Tensor) or index.dim() != 1 or index.is_floating_point() \
            or index.dtype == torch.bool:
        raise ValueError("'index' must be a 1-D integer tensor of point indices (got "
                         f"{getattr(index, 'shape', type(index).__name__)})")


def resample(index: Tensor, size: int, *, generator: Optional[torch.Generator] = None) -> Tensor:
    """A crop's point indices resampled to exactly ``size`` entries.

    A larger crop keeps a random subset of ``size`` distinct points; a smaller
    one keeps all its points and repeats randomly drawn ones (with replacement)
    up to ``size``. Repeated points are duplicates at distance 0 in a kNN graph.

    Args:
        index (LongTensor): Point indices ``(n,)``, ``n >= 1``.
        size (int): The size wanted.
        generator (torch.Generator, optional): Source of the draws.

    Returns:
        LongTensor ``(size,)`` in random order.
    """
    check_positive_int('size', size)
    _check_index(index)
    n = index.numel()
    if n == 0:
        raise ValueError("'index' is empty: there is no point to resample")
    if n >= size:
        return index[torch.randperm(n, generator=generator)[:size].to(index.device)]
    extra = torch.randint(n, (size - n,), generator=generator).to(index.device)
    order = torch.randperm(size, generator=generator).to(index.device)
    return torch.cat([index, index[extra]])[order]


def split_crop(index: Tensor, size: int, *,
               generator: Optional[torch.Generator] = None) -> List[Tensor]:
    """A crop's points split at random into :math:`\\lceil n / size \\rceil`
    disjoint parts of near-equal size (at most ``size``), which together hold
    every point once: the inference counterpart of :func:`resample` (a part
    has about the density of a resampled training crop, and no point is left
    out).

    Returns:
        A list of LongTensors (empty for an empty crop).
    """
    check_positive_int('size', size)
    _check_index(index)
    n = index.numel()
    if n == 0:
        return []
    parts = -(-n // size)
    order = torch.randperm(n, generator=generator).to(index.device)
    return list(index[order].tensor_split(parts))

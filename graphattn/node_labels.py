"""Labels of graph nodes: integer checks, and the reduction of a pixel label map to the
nodes of a coarser feature grid (one majority label per patch)."""
from __future__ import annotations

from typing import Any, Sequence, Union

import torch
from torch import Tensor

__all__ = ['patch_labels', 'check_labels']


def check_labels(name: str, labels: Any) -> Tensor:
    """``labels`` must be an integer tensor (any integer dtype; returned as ``long``)."""
    if not isinstance(labels, Tensor):
        raise TypeError(f"'{name}' must be an integer Tensor (got {type(labels).__name__})")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"'{name}' must be an integer tensor (got {labels.dtype})")
    return labels.long()


def patch_labels(label_map: Tensor, grid_size: Union[int, Sequence[int]],
                 ignore_index: int = -100) -> Tensor:
    r"""Reduce a label map to one label per feature-map node: the patch's majority class.

    The ``(H, W)`` label map is cut into ``h x w`` patches of
    ``(H // h) x (W // w)`` pixels, one per node of the ``(h, w)`` feature
    grid (patch ``(r, c)`` covers rows ``r * H // h`` to ``(r + 1) * H // h - 1``,
    likewise for columns). Each node gets the most frequent label of its patch,
    pixels equal to ``ignore_index`` not counted; ties go to the smallest
    label; a patch with only ignored pixels gets ``ignore_index``.

    Rule for sizes: ``H`` must be a multiple of ``h`` and ``W`` of ``w``
    (e.g. a 512x512 label map on a stride-8 64x64 feature grid); otherwise a
    :class:`ValueError` is raised (resize or crop the label map first, with
    nearest-neighbour interpolation, to a multiple of the grid).

    Args:
        label_map (LongTensor): ``(B, H, W)`` or ``(H, W)`` class indices.
        grid_size (int or (int, int)): The feature grid ``(h, w)``.
        ignore_index (int, optional): Label of pixels to ignore.
            (default: :obj:`-100`)

    Returns:
        LongTensor ``(B, h, w)`` (or ``(h, w)`` for a 2-D ``label_map``).
    """
    label_map = check_labels('label_map', label_map)
    if label_map.dim() not in (2, 3):
        raise ValueError("'label_map' must have shape (B, H, W) or (H, W) "
                         f"(got shape {tuple(label_map.shape)})")
    if isinstance(grid_size, int) and not isinstance(grid_size, bool):
        grid_size = (grid_size, grid_size)
    if (not isinstance(grid_size, (tuple, list)) or len(grid_size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                       for s in grid_size)):
        raise ValueError(f"'grid_size' must be a pair of positive ints (h, w) (got {grid_size!r})")
    squeeze = label_map.dim() == 2
    if squeeze:
        label_map = label_map.unsqueeze(0)
    b, height, width = label_map.shape
    h, w = grid_size
    if height % h or width % w:
        raise ValueError(f"'label_map' of size {height}x{width} does not divide into the "
                         f"feature grid 'grid_size'={h}x{w}: H and W must be multiples of h "
                         f"and w")
    if height == 0 or width == 0:
        raise ValueError(f"'label_map' must have H, W >= 1 (got shape {tuple(label_map.shape)})")
    valid = label_map != ignore_index
    # The value check reads the data: skipped under torch.compile (no graph break).
    if not torch.compiler.is_compiling() and bool(((label_map < 0) & valid).any()):
        raise ValueError(f"'label_map' holds negative labels other than "
                         f"ignore_index={ignore_index}")
    ph, pw = height // h, width // w
    if ph == 1 and pw == 1:
        out = label_map.clone()
        return out.squeeze(0) if squeeze else out
    patches = label_map.view(b, h, ph, w, pw).permute(0, 1, 3, 2, 4).reshape(b, h, w, ph * pw)
    valid = valid.view(b, h, ph, w, pw).permute(0, 1, 3, 2, 4).reshape(b, h, w, ph * pw)
    # Majority without a class count (no data-dependent shape): sort each patch,
    # ignored pixels last; a label's count is the length of its run of equal values.
    big = torch.iinfo(torch.long).max
    ranked = torch.where(valid, patches, big).sort(dim=-1).values.contiguous()
    counts = (torch.searchsorted(ranked, ranked, right=True)
              - torch.searchsorted(ranked, ranked, right=False))
    kept = torch.arange(ph * pw, device=label_map.device) < valid.sum(dim=-1, keepdim=True)
    counts = torch.where(kept, counts, 0)
    # The first maximum in ascending order: ties go to the smallest label.
    out = ranked.gather(-1, counts.argmax(dim=-1, keepdim=True)).squeeze(-1)
    out = torch.where(valid.any(dim=-1), out, torch.full_like(out, ignore_index))
    return out.squeeze(0) if squeeze else out

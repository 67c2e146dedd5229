"""The grid kernel of LGA: one layer on ``(B, H, W, ...)`` maps without an edge list.

A grid graph's neighbourhoods are the same stencil at every pixel, so one LGA
layer on it is a weighted sum of shifted copies of the value map:

.. math::
    \\mathbf{o}^h[y, x] = \\sum_{t} \\alpha^h_t[y, x]\\,
    \\mathbf{v}^h[y + dy_t, x + dx_t],

with the weights of out-of-image neighbours set to zero (for the softmax: left
out of the normalisation), exactly what the message-passing path does, where
those neighbours have no edge. Scores that depend on the neighbour
(``score='neighbor'`` or ``'pair'``) are per-direction score maps computed once
per pixel and then shifted, never a gathered ``(E, C)`` tensor.

:class:`ShiftedWeightedSum` computes the sum from shifted slices of a once
padded tensor and stores only its two inputs for the backward pass (never a
``(S, C, H, W)`` stack of the shifted copies): its backward recomputes the
shifted products, the backward of a shift being the opposite shift. Tensors are
channels-last, ``(B, H, W, heads, C)``: on CPU this makes the shifted
multiply-adds several times faster than on ``(B, C, H, W)``.
:func:`shifted_weighted_sum_reference` is the plain-autograd sum it is tested
against.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .lga_scores import edge_scores, normalize_dense

__all__ = ['ShiftedWeightedSum', 'shifted_weighted_sum', 'shifted_weighted_sum_reference',
           'grid_neighbor_mask', 'grid_scores', 'grid_attention']

Offsets = Tuple[Tuple[int, int], ...]


def _as_offsets(offsets: Sequence[Sequence[int]]) -> Offsets:
    return tuple((int(dx), int(dy)) for dx, dy in offsets)


def _padding(offsets: Offsets) -> int:
    return max(max(abs(dx), abs(dy)) for dx, dy in offsets)


def _pad_hw(value: Tensor, p: int) -> Tensor:
    """Zero-pad dims 1 and 2 (H, W) of a ``(B, H, W, ...)`` tensor by ``p``."""
    # F.pad, not a zero tensor filled by slice assignment: under torch.compile, torch 2.4
    # dropped the gradient through that assignment (score='neighbor' trained no keys).
    # On torch 2.13 both forms give bit-identical values and gradients.
    return F.pad(value, (0, 0) * (value.dim() - 3) + (p, p, p, p))


def _shifted(padded: Tensor, p: int, dx: int, dy: int, height: int, width: int) -> Tensor:
    """The view of a padded map whose pixel ``(y, x)`` holds ``(y + dy, x + dx)``."""
    return padded[:, p + dy:p + dy + height, p + dx:p + dx + width]


def _overlap(d: int, size: int) -> Tuple[slice, slice]:
    """Along one axis of length ``size``: the centres whose neighbour at offset
    ``d`` is inside, and those neighbours (empty slices when ``|d| >= size``)."""
    lo, hi = max(0, -d), min(size, size - d)
    hi = max(hi, lo)
    return slice(lo, hi), slice(lo + d, hi + d)


def _tap(dx: int, dy: int, height: int, width: int):
    """Index tuples ``(centres, neighbours)`` of one stencil tap on ``(B, H, W, ...)``
    maps: only the in-image part, so that no padded copy is ever made."""
    (ys, ny), (xs, nx) = _overlap(dy, height), _overlap(dx, width)
    return (slice(None), ys, xs), (slice(None), ny, nx)


class ShiftedWeightedSum(torch.autograd.Function):
    """``out[b, y, x, g] = sum_t weight[b, y, x, g, t] * value[b, y + dy_t, x + dx_t, g]``.

    ``weight`` is ``(B, H, W, G, S)`` (``G`` heads), ``value`` and the output
    ``(B, H, W, G, D)``. Neighbours outside the map read zeros. Saves
    ``weight`` and ``value`` only. Each tap works on the in-image sub-rectangle
    of the maps (views, no padded copy), so a forward allocates only its output
    and a backward only its two gradients. The backward is made of
    differentiable torch ops (no ``once_differentiable``), so double backward
    works through it.
    """

    @staticmethod
    def forward(ctx, weight: Tensor, value: Tensor, offsets: Offsets) -> Tensor:
        height, width = value.shape[1:3]
        out = torch.zeros_like(value, memory_format=torch.contiguous_format)
        for t, (dx, dy) in enumerate(offsets):
            centre, neighbour = _tap(dx, dy, height, width)
            out[centre].addcmul_(weight[centre][..., t:t + 1], value[neighbour])
        ctx.save_for_backward(weight, value)
        ctx.offsets = offsets
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        weight, value = ctx.saved_tensors
        offsets = ctx.offsets
        height, width = value.shape[1:3]
        grad_out = grad_out.contiguous()
        grad_weight = grad_value = None
        if ctx.needs_input_grad[0]:
            grad_weight = weight.new_zeros(weight.shape)  # out-of-image taps stay zero
            for t, (dx, dy) in enumerate(offsets):
                centre, neighbour = _tap(dx, dy, height, width)
                grad_weight[centre + (Ellipsis, t)] = torch.linalg.vecdot(
                    grad_out[centre], value[neighbour])
        if ctx.needs_input_grad[1]:
            grad_value = torch.zeros_like(grad_out)
            for t, (dx, dy) in enumerate(offsets):  # the backward of a shift: the opposite one
                centre, neighbour = _tap(dx, dy, height, width)
                grad_value[neighbour].addcmul_(weight[centre][..., t:t + 1], grad_out[centre])
        return grad_weight, grad_value, None


def shifted_weighted_sum(weight: Tensor, value: Tensor,
                         offsets: Sequence[Sequence[int]]) -> Tensor:
    """The memory-lean weighted sum of shifted values (see :class:`ShiftedWeightedSum`).

    Args:
        weight (Tensor): ``(B, H, W, G, S)``, one weight per head and stencil
            offset (``(B, H, W, S)`` is read as one head).
        value (Tensor): ``(B, H, W, G, D)`` (``(B, H, W, C)``: one head).
        offsets: ``S`` pairs ``(dx, dy)`` (e.g. :func:`graphs.grid_stencil`).

    Returns:
        The weighted sum, shaped like ``value``.
    """
    if value.dim() == 4:
        return ShiftedWeightedSum.apply(weight.unsqueeze(-2), value.unsqueeze(-2),
                                        _as_offsets(offsets)).squeeze(-2)
    return ShiftedWeightedSum.apply(weight, value, _as_offsets(offsets))


def shifted_weighted_sum_reference(weight: Tensor, value: Tensor,
                                   offsets: Sequence[Sequence[int]]) -> Tensor:
    """The same sum with plain autograd (keeps every shifted product); for tests."""
    offsets = _as_offsets(offsets)
    p = _padding(offsets)
    height, width = value.shape[1:3]
    vpad = F.pad(value, (0, 0) * (value.dim() - 3) + (p, p, p, p))
    terms = [weight[..., t:t + 1] * _shifted(vpad, p, dx, dy, height, width)
             for t, (dx, dy) in enumerate(offsets)]
    return torch.stack(terms, dim=0).sum(dim=0)


def grid_neighbor_mask(height: int, width: int, offsets: Sequence[Sequence[int]],
                       device: Optional[torch.device] = None) -> Tensor:
    """``(H, W, S)`` bool: whether pixel ``(y, x)``'s neighbour at offset ``t`` is inside."""
    offsets_t = torch.tensor(_as_offsets(offsets), dtype=torch.long, device=device)
    rows = torch.arange(height, device=device).view(-1, 1, 1)
    cols = torch.arange(width, device=device).view(1, -1, 1)
    ny = rows + offsets_t[:, 1].view(1, 1, -1)
    nx = cols + offsets_t[:, 0].view(1, 1, -1)
    return (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)


def grid_scores(score: str, query: Optional[Tensor], key: Optional[Tensor], phi: Tensor,
                offsets: Sequence[Sequence[int]], att: Optional[Tensor] = None,
                negative_slope: float = 0.2) -> Tensor:
    """The score of every pixel's edge to its neighbour at each offset.

    Args:
        score (str): ``'center'``, ``'neighbor'`` or ``'pair'`` (see
            :mod:`graphattn.lga_scores`).
        query (Tensor, optional): Centre terms ``(B, H, W, G, A)``.
        key (Tensor, optional): Neighbour terms ``(B, H, W, G, A)``.
        phi (Tensor): The ``S`` directions' edge encodings, ``(S, A)``.
        offsets: ``S`` pairs ``(dx, dy)``.
        att (Tensor, optional): ``(G, A)``, for ``'pair'``.

    Returns:
        ``(B, H, W, G, S)``; entries of out-of-image neighbours are arbitrary
        (they are masked by the normalisation).
    """
    offsets = _as_offsets(offsets)
    if score == 'center':  # one product for all directions: the per-direction 1x1 convs
        return query @ phi.t()
    source = key @ phi.t() if score == 'neighbor' else key  # (B, H, W, G, S) or (.., A)
    p = _padding(offsets)
    height, width = source.shape[1:3]
    spad = _pad_hw(source, p)
    maps = []
    for t, (dx, dy) in enumerate(offsets):
        k_j = _shifted(spad, p, dx, dy, height, width)
        if score == 'neighbor':  # direction t's 1x1 conv, read at the neighbour
            maps.append(k_j[..., t])
        else:
            maps.append(edge_scores('pair', query, k_j, phi[t], att, negative_slope))
    return torch.stack(maps, dim=-1)


def grid_attention(scores: Tensor, value: Tensor, offsets: Sequence[Sequence[int]],
                   normalize: str = 'softmax') -> Tuple[Tensor, Tensor]:
    """One LGA aggregation on a grid: normalise the scores, sum the shifted values.

    Args:
        scores (Tensor): ``(B, H, W, G, S)`` from :func:`grid_scores`.
        value (Tensor): ``(B, H, W, G, D)``, the value map ``V h`` split in heads.
        offsets: ``S`` pairs ``(dx, dy)``.
        normalize (str): ``'softmax'`` over the in-image neighbours or
            ``'sigmoid'`` per edge (out-of-image edges weigh zero).

    Returns:
        ``(out, alpha)``: ``(B, H, W, G, D)`` and the weights ``(B, H, W, G, S)``.
    """
    offsets = _as_offsets(offsets)
    mask = grid_neighbor_mask(value.size(1), value.size(2), offsets, value.device)
    alpha = normalize_dense(scores, mask.unsqueeze(-2), normalize)
    return ShiftedWeightedSum.apply(alpha, value, offsets), alpha

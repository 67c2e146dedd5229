"""The fast grid path of LGA: local attention on (B, C, H, W) maps without an edge list.

A grid graph's neighbourhoods are the same stencil at every pixel, so one LGA
layer on it is a weighted sum of shifted copies of the value map:

.. math::
    \\mathbf{o}[y, x] = \\sum_{t} \\alpha_t[y, x]\\,
    \\mathbf{v}[y + dy_t, x + dx_t],

with the weights of the out-of-image neighbours set to zero (for the softmax:
left out of the normalisation), which is exactly what the message-passing path
does, where those neighbours simply have no edge.

:class:`ShiftedWeightedSum` computes the sum from shifted slices of a once
padded tensor and stores only its two inputs for the backward pass (never a
``(S, C, H, W)`` stack of the shifted copies): its backward recomputes the
shifted products, the backward of a shift being the opposite shift. Tensors are
channels-last, ``(B, H, W, C)``: on CPU this makes the shifted multiply-adds
several times faster than on ``(B, C, H, W)``.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from graphs.grid import grid_edges

__all__ = ['ShiftedWeightedSum', 'shifted_weighted_sum', 'shifted_weighted_sum_reference',
           'grid_neighbor_mask', 'grid_edges', 'grid_attention']

Offsets = Tuple[Tuple[int, int], ...]


def _as_offsets(offsets: Sequence[Sequence[int]]) -> Offsets:
    return tuple((int(dx), int(dy)) for dx, dy in offsets)


def _padding(offsets: Offsets) -> int:
    return max(max(abs(dx), abs(dy)) for dx, dy in offsets)


class ShiftedWeightedSum(torch.autograd.Function):
    """``out[b, y, x, :] = sum_t weight[b, y, x, t] * value[b, y + dy_t, x + dx_t, :]``.

    Channels-last layout: ``weight`` is ``(B, H, W, S)``, ``value`` and the
    output ``(B, H, W, C)`` (contiguous channels make each shifted
    multiply-add and the backward's per-pixel dot products stream memory).
    Neighbours outside the map read zeros. Saves ``weight`` and ``value`` only.
    The backward is made of differentiable torch ops (no ``once_differentiable``),
    so double backward works through it (gradgradcheck in ``tests/test_numerics.py``).
    """

    @staticmethod
    def forward(ctx, weight: Tensor, value: Tensor, offsets: Offsets) -> Tensor:
        p = _padding(offsets)
        height, width = value.shape[1:3]
        vpad = _pad_hw(value, p)
        out = torch.zeros_like(value, memory_format=torch.contiguous_format)
        for t, (dx, dy) in enumerate(offsets):
            shifted = vpad[:, p + dy:p + dy + height, p + dx:p + dx + width]
            out.addcmul_(weight[..., t:t + 1], shifted)
        ctx.save_for_backward(weight, value)
        ctx.offsets = offsets
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        weight, value = ctx.saved_tensors
        offsets = ctx.offsets
        p = _padding(offsets)
        height, width = value.shape[1:3]
        grad_out = grad_out.contiguous()
        grad_weight = grad_value = None
        if ctx.needs_input_grad[0]:
            vpad = _pad_hw(value, p)
            grad_weight = weight.new_empty(weight.shape)
            for t, (dx, dy) in enumerate(offsets):
                shifted = vpad[:, p + dy:p + dy + height, p + dx:p + dx + width]
                grad_weight[..., t] = torch.linalg.vecdot(grad_out, shifted)
        if ctx.needs_input_grad[1]:
            gpad = grad_out.new_zeros((grad_out.size(0), height + 2 * p, width + 2 * p,
                                       grad_out.size(3)))
            for t, (dx, dy) in enumerate(offsets):
                gpad[:, p + dy:p + dy + height, p + dx:p + dx + width].addcmul_(
                    weight[..., t:t + 1], grad_out)
            grad_value = gpad[:, p:p + height, p:p + width]
        return grad_weight, grad_value, None


def _pad_hw(value: Tensor, p: int) -> Tensor:
    """Zero-pad the two spatial dims of a ``(B, H, W, C)`` tensor by ``p``."""
    b, height, width, c = value.shape
    vpad = value.new_zeros((b, height + 2 * p, width + 2 * p, c))
    vpad[:, p:p + height, p:p + width] = value
    return vpad


def shifted_weighted_sum(weight: Tensor, value: Tensor,
                         offsets: Sequence[Sequence[int]]) -> Tensor:
    """The memory-lean weighted sum of shifted values (see :class:`ShiftedWeightedSum`).

    Args:
        weight (Tensor): ``(B, H, W, S)``, one weight per stencil offset.
        value (Tensor): ``(B, H, W, C)``.
        offsets: ``S`` pairs ``(dx, dy)`` (e.g. :func:`graphs.grid_stencil`).

    Returns:
        ``(B, H, W, C)``.
    """
    return ShiftedWeightedSum.apply(weight, value, _as_offsets(offsets))


def shifted_weighted_sum_reference(weight: Tensor, value: Tensor,
                                   offsets: Sequence[Sequence[int]]) -> Tensor:
    """The same sum with plain autograd (keeps every shifted product); for tests."""
    offsets = _as_offsets(offsets)
    p = _padding(offsets)
    height, width = value.shape[1:3]
    vpad = F.pad(value, (0, 0, p, p, p, p))
    terms = [weight[..., t:t + 1] * vpad[:, p + dy:p + dy + height, p + dx:p + dx + width]
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


def grid_attention(logits: Tensor, value: Tensor, offsets: Sequence[Sequence[int]],
                   normalize: str = 'softmax') -> Tuple[Tensor, Tensor]:
    """One LGA aggregation on a grid: normalise the logits, sum the shifted values.

    Channels-last layout throughout.

    Args:
        logits (Tensor): ``(B, H, W, S)``, the logit of each pixel's edge to its
            neighbour at each stencil offset.
        value (Tensor): ``(B, H, W, C)``, the value map ``V h``.
        offsets: ``S`` pairs ``(dx, dy)``.
        normalize (str): ``'softmax'`` over the in-image neighbours or
            ``'sigmoid'`` per edge (out-of-image edges weigh zero).

    Returns:
        ``(out, alpha)``: ``(B, H, W, C)`` and the weights ``(B, H, W, S)``.
    """
    offsets = _as_offsets(offsets)
    mask = grid_neighbor_mask(value.size(1), value.size(2), offsets, value.device)
    if normalize == 'softmax':
        alpha = torch.softmax(logits.masked_fill(~mask, float('-inf')), dim=-1)
    elif normalize == 'sigmoid':
        alpha = torch.sigmoid(logits) * mask
    else:
        raise ValueError(f"'normalize' must be 'softmax' or 'sigmoid' (got {normalize!r})")
    return ShiftedWeightedSum.apply(alpha, value, offsets), alpha

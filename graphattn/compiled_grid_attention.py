r"""The grid kernel of LGA compiled: normalisation and shifted sum in one loop per pass.

:func:`~graphattn.grid_attention.grid_attention` runs one eager torch op per
stencil tap, so every layer streams the value map through memory once per
tap, forward and backward. Here the same maths is written as two plain torch
functions, one for the forward and one for the backward, that
``torch.compile`` (inductor) turns into fused loops: C++/OpenMP on CPU, Triton
kernels on CUDA. Each pass reads every neighbourhood once:

* forward, per pixel: the masked normalisation of the ``S`` scores and
  :math:`\mathbf{o}^h = \sum_t \alpha^h_t \mathbf{v}^h_{p+\delta_t}`;
* backward, per pixel: :math:`g^h_t = \langle \partial \mathbf{o}^h,
  \mathbf{v}^h_{p+\delta_t} \rangle` and the normalisation's backward
  (softmax: :math:`\alpha_t (g_t - \sum_u \alpha_u g_u)`; sigmoid:
  :math:`g_t \alpha_t (1 - \alpha_t)`), then the value gradient
  :math:`\sum_t \alpha^h_{p-\delta_t, t}\, \partial\mathbf{o}^h_{p-\delta_t}`,
  the transposed stencil as a gather (no scatter).

The layer's default activation, a ReLU, runs in the same loops when it
applies right after the sum (heads concatenated or a single head).
Out-of-image neighbours are masked inside the loops (``F.pad`` of an input is
fused into its loads, never materialised). Only the scores' normalised
weights ``alpha`` (``S`` numbers per pixel and head) and the value map are
saved for the backward. The scores come in already computed, so every
reading of :class:`~graphattn.LGAConv` (``'center'``, ``'neighbor'``,
``'pair'``) and any number of heads run through the same kernel.

The first call for a new input shape compiles (seconds on CPU; inductor needs
a C++ compiler there, Triton on CUDA); later calls reuse the kernel. Double
backward (``create_graph=True``) raises an error; the eager kernel supports it.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_single_backward, detached
from .grid_attention import Offsets, _as_offsets, _padding, _shifted, grid_neighbor_mask
from .lga_scores import normalize_dense

__all__ = ['CompiledGridAttention', 'compiled_grid_attention']


def _pad(t: Tensor, p: int) -> Tensor:
    """Zero-pad dims 1 and 2 of ``(B, H, W, G, X)``; inside a compiled function
    inductor folds this into masked loads (no padded copy is made)."""
    return F.pad(t, (0, 0, 0, 0, p, p, p, p))


def _forward(scores: Tensor, value: Tensor, offsets: Offsets, normalize: str,
             relu: bool) -> Tuple[Tensor, Tensor]:
    height, width = value.shape[1:3]
    p = _padding(offsets)
    valid = grid_neighbor_mask(height, width, offsets, value.device).unsqueeze(-2)
    alpha = normalize_dense(scores, valid, normalize)
    vpad = _pad(value, p)
    out = value.new_zeros(())
    for t, (dx, dy) in enumerate(offsets):
        out = out + alpha[..., t:t + 1] * _shifted(vpad, p, dx, dy, height, width)
    return (torch.relu(out) if relu else out), alpha


def _backward(grad_out: Tensor, grad_alpha: Optional[Tensor], alpha: Tensor, value: Tensor,
              out: Optional[Tensor], offsets: Offsets, normalize: str) -> Tuple[Tensor, Tensor]:
    height, width = value.shape[1:3]
    p = _padding(offsets)
    if out is not None:  # the fused ReLU's backward
        grad_out = torch.where(out > 0, grad_out, 0.0)
    vpad = _pad(value, p)
    g = torch.stack([(grad_out * _shifted(vpad, p, dx, dy, height, width)).sum(-1)
                     for dx, dy in offsets], dim=-1)                 # d loss / d alpha
    if grad_alpha is not None:
        g = g + grad_alpha
    if normalize == 'softmax':
        grad_scores = alpha * (g - (alpha * g).sum(-1, keepdim=True))
    else:  # masked entries have alpha = 0, so their gradient is zero too
        grad_scores = g * alpha * (1 - alpha)
    gpad, apad = _pad(grad_out, p), _pad(alpha, p)
    grad_value = value.new_zeros(())
    for t, (dx, dy) in enumerate(offsets):  # pixel q is the neighbour at t of q - delta_t
        grad_value = grad_value + (_shifted(apad, p, -dx, -dy, height, width)[..., t:t + 1]
                                   * _shifted(gpad, p, -dx, -dy, height, width))
    return grad_scores, grad_value


_FUNCTIONS: Dict[str, Callable] = {'forward': _forward, 'backward': _backward}
_COMPILED: Dict[str, Callable] = {}


def _compiled(name: str) -> Callable:
    """The compiled function, made on first use (never at import time). Inside a
    user's ``torch.compile`` the plain function is traced into their graph
    instead (the branch is static there, and no global state is touched)."""
    if torch.compiler.is_compiling():
        return _FUNCTIONS[name]
    if name not in _COMPILED:
        _COMPILED[name] = torch.compile(_FUNCTIONS[name], fullgraph=True, dynamic=None)
    return _COMPILED[name]


class CompiledGridAttention(torch.autograd.Function):
    """``(out, alpha)`` from scores ``(B, H, W, G, S)`` and values
    ``(B, H, W, G, D)``: the function of
    :func:`~graphattn.grid_attention.grid_attention`, with compiled forward
    and backward loops. Saves ``alpha`` and ``value``."""

    @staticmethod
    def forward(ctx, scores: Tensor, value: Tensor, offsets: Offsets, normalize: str,
                relu: bool) -> Tuple[Tensor, Tensor]:
        out, alpha = _compiled('forward')(*detached(scores, value), offsets, normalize, relu)
        ctx.save_for_backward(alpha, value, out if relu else None)
        ctx.offsets, ctx.normalize = offsets, normalize
        return out, alpha

    @staticmethod
    def backward(ctx, grad_out: Optional[Tensor], grad_alpha: Optional[Tensor]):
        check_single_backward()
        alpha, value, out = ctx.saved_tensors
        grad_out = torch.zeros_like(value) if grad_out is None else grad_out.contiguous()
        grad_alpha = None if grad_alpha is None else grad_alpha.contiguous()
        grad_scores, grad_value = _compiled('backward')(*detached(grad_out, grad_alpha, alpha,
                                                                  value, out),
                                                        ctx.offsets, ctx.normalize)
        return grad_scores, grad_value, None, None, None


def compiled_grid_attention(scores: Tensor, value: Tensor, offsets: Sequence[Sequence[int]],
                            normalize: str = 'softmax', relu: bool = False
                            ) -> Tuple[Tensor, Tensor]:
    """One LGA aggregation on a grid through the compiled kernel.

    Args:
        scores (Tensor): ``(B, H, W, G, S)``, from
            :func:`~graphattn.grid_attention.grid_scores`.
        value (Tensor): ``(B, H, W, G, D)``.
        offsets: ``S`` pairs ``(dx, dy)``.
        normalize (str): ``'softmax'`` or ``'sigmoid'``.
        relu (bool): Apply a ReLU to ``out`` in the same loop (the layer's
            default activation; saves one pass over the map each way).

    Returns:
        ``(out, alpha)`` as :func:`~graphattn.grid_attention.grid_attention`
        (``out`` after the ReLU when ``relu=True``).
    """
    return CompiledGridAttention.apply(scores.contiguous(), value.contiguous(),
                                       _as_offsets(offsets), normalize, relu)

r"""The neighbour-table kernel of LGA compiled: normalisation and weighted sum per pass.

On the CPU the table path's weighted sum runs as CSR products
(:mod:`graphattn.neighbor_attention`); elsewhere it gathers an ``(n, K, C)``
block per chunk of centres, writes it to memory and reads it back. Here the same
maths is written as two plain torch functions, one for the forward and one for the
backward, that ``torch.compile`` (inductor) turns into fused loops (Triton kernels
on CUDA, C++/OpenMP on the CPU), so that no ``(N, K, C)`` tensor is ever made. With
``index`` the ``(N, K)`` table (``-1`` padding), per head :math:`h`:

* forward, per centre :math:`i`: the masked normalisation of its ``K`` scores and

  .. math::
      \mathbf{o}^h_i = \sum_{k} \alpha^h_{i,k}\, \mathbf{v}^h_{n(i,k)},

  the neighbours' values read straight from ``value`` inside the reduction;
* backward, per centre: :math:`g^h_{i,k} = \langle \partial \mathbf{o}^h_i,
  \mathbf{v}^h_{n(i,k)} \rangle` (the values gathered again, not stored) and the
  normalisation's backward (softmax: :math:`\alpha_k (g_k - \sum_u \alpha_u g_u)`;
  sigmoid: :math:`g_k \alpha_k (1 - \alpha_k)`); then the values' gradient

  .. math::
      \partial \mathbf{v}^h_j = \sum_{(i, k):\, n(i,k) = j} \alpha^h_{i,k}\,
      \partial \mathbf{o}^h_i,

  a scatter-add whose products are formed inside the scatter's loop (atomic adds
  on CUDA), so repeated neighbours add up as in the eager kernel.

Padding reads a zero row appended to the values (``F.pad``, folded into the
loads), never a real node, and weighs exactly zero; an empty row gives zero
weights and a zero output, as message passing gives a node without edges. Only
the normalised weights ``alpha`` (``(B, N, G, K)``) and the values are saved for
the backward. The scores come in already computed (by
:func:`~graphattn.neighbor_attention.neighbor_scores`), so every reading of
:class:`~graphattn.LGAConv` and any number of heads run through the same kernel;
the layer's ReLU runs in the same loops when it applies right after the sum.

The first call for a new shape compiles (a cloud of another size then compiles
once more, with dynamic shapes); nothing compiles at import. Each normalisation,
ReLU setting and dtype is a trace of its own, and Dynamo keeps at most
``torch._dynamo.config.recompile_limit`` (8) traces per function, past which
the compile fails (``fullgraph=True``); raise that limit for a process that runs
many configurations (the property tests do). A table without entries runs the
same functions uncompiled. Double backward
(``create_graph=True``) raises an error; the eager kernel (``'fused'``)
supports it.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_single_backward, detached
from .lga_scores import normalize_dense

__all__ = ['CompiledNeighborAttention', 'compiled_neighbor_attention']


def _gathered(value: Tensor, index: Tensor) -> Tensor:
    """``(B, N, K, G, D)``: ``value[:, index]`` with padding (``-1``) reading a zero
    row. Inside a compiled function this is an indirect load fused into the
    reduction that consumes it: never materialised."""
    num_rows = value.size(1)
    padded = F.pad(value, (0, 0, 0, 0, 0, 1))                      # row M: zeros
    return padded[:, torch.where(index >= 0, index, num_rows)]


def _forward(scores: Tensor, value: Tensor, index: Tensor, normalize: str,
             relu: bool) -> Tuple[Tensor, Tensor]:
    valid = (index >= 0)[None, :, None, :]                         # (1, N, 1, K)
    alpha = normalize_dense(scores, valid, normalize)              # (B, N, G, K)
    out = (alpha.transpose(-1, -2).unsqueeze(-1) * _gathered(value, index)).sum(2)
    return (torch.relu(out) if relu else out), alpha


def _backward(grad_out: Tensor, grad_alpha: Optional[Tensor], alpha: Tensor, value: Tensor,
              index: Tensor, out: Optional[Tensor], normalize: str) -> Tuple[Tensor, Tensor]:
    if out is not None:  # the fused ReLU's backward
        grad_out = torch.where(out > 0, grad_out, 0.0)
    # d loss / d alpha, (B, N, G, K): the values gathered again, reduced over D at once
    g = (_gathered(value, index) * grad_out.unsqueeze(2)).sum(-1).transpose(-1, -2)
    if grad_alpha is not None:
        g = g + grad_alpha
    # Padding has alpha = 0; where() also keeps a NaN or inf gradient there out of the
    # sums below, as the eager path's masked normalisation does.
    g = torch.where((index >= 0)[None, :, None, :], g, 0.0)
    if normalize == 'softmax':
        grad_scores = alpha * (g - (alpha * g).sum(-1, keepdim=True))
    else:
        grad_scores = g * alpha * (1 - alpha)
    b, n, heads, k = alpha.shape
    m = value.size(1)
    contrib = alpha.transpose(-1, -2).unsqueeze(-1) * grad_out.unsqueeze(2)  # (B, N, K, G, D)
    rows = torch.where(index >= 0, index, m).reshape(-1)           # padding: row M, dropped
    grad_value = value.new_zeros(b, m + 1, heads, value.size(-1)).index_add_(   # autocast:
        1, rows, contrib.reshape(b, n * k, heads, value.size(-1)).to(value.dtype))  # fp32 alpha
    return grad_scores, grad_value[:, :m]


_FUNCTIONS: Dict[str, Callable] = {'forward': _forward, 'backward': _backward}
_COMPILED: Dict[str, Callable] = {}


def _compiled(name: str, empty: bool) -> Callable:
    """The compiled function, made on first use (never at import time). Inside a
    user's ``torch.compile`` the plain function is traced into their graph instead;
    an empty table runs it uncompiled (nothing to fuse, and no compile for a
    zero-size shape)."""
    if empty or torch.compiler.is_compiling():
        return _FUNCTIONS[name]
    if name not in _COMPILED:
        _COMPILED[name] = torch.compile(_FUNCTIONS[name], fullgraph=True, dynamic=None)
    return _COMPILED[name]


class CompiledNeighborAttention(torch.autograd.Function):
    """``(out, alpha)`` from scores ``(B, N, G, K)``, values ``(B, M, G, D)`` and an
    ``(N, K)`` long table with entries in ``[-1, M)``: the function of
    :func:`~graphattn.lga_scores.normalize_dense` followed by
    :func:`~graphattn.neighbor_attention.neighbor_weighted_sum`, with compiled
    forward and backward loops. Saves ``alpha``, ``value`` and ``index``."""

    @staticmethod
    def forward(ctx, scores: Tensor, value: Tensor, index: Tensor, normalize: str,
                relu: bool) -> Tuple[Tensor, Tensor]:
        empty = index.numel() == 0
        out, alpha = _compiled('forward', empty)(*detached(scores, value), index, normalize,
                                                 relu)
        ctx.save_for_backward(alpha, value, index, out if relu else None)
        ctx.normalize, ctx.empty = normalize, empty
        return out, alpha

    @staticmethod
    def backward(ctx, grad_out: Optional[Tensor], grad_alpha: Optional[Tensor]):
        check_single_backward()
        alpha, value, index, out = ctx.saved_tensors
        if grad_out is None:
            grad_out = alpha.new_zeros(*alpha.shape[:3], value.size(-1))
        grad_out = grad_out.contiguous()
        grad_alpha = None if grad_alpha is None else grad_alpha.contiguous()
        grad_scores, grad_value = _compiled('backward', ctx.empty)(
            *detached(grad_out, grad_alpha, alpha, value), index,
            *detached(out), ctx.normalize)
        return grad_scores, grad_value, None, None, None


def compiled_neighbor_attention(scores: Tensor, value: Tensor, index: Tensor,
                                normalize: str = 'softmax', relu: bool = False
                                ) -> Tuple[Tensor, Tensor]:
    """One LGA aggregation over a neighbour table through the compiled kernel.

    Args:
        scores (Tensor): ``(B, N, G, K)``, from
            :func:`~graphattn.neighbor_attention.neighbor_scores`.
        value (Tensor): ``(B, M, G, D)``.
        index (LongTensor): ``(N, K)`` neighbours in ``[0, M)``, ``-1`` padding
            (validated by the caller: entries are not checked here).
        normalize (str): ``'softmax'`` or ``'sigmoid'``.
        relu (bool): Apply a ReLU to ``out`` in the same loop.

    Returns:
        ``(out, alpha)``: ``out`` ``(B, N, G, D)`` (after the ReLU when
        ``relu=True``) and the weights ``alpha`` ``(B, N, G, K)``, zero at padding.
    """
    return CompiledNeighborAttention.apply(scores.contiguous(), value.contiguous(),
                                           index.long().contiguous(), normalize, relu)

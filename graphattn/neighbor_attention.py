"""The dense neighbour-table path of LGA: attention over an ``(N, K)`` table.

A kNN graph gives every node the same number ``K`` of neighbours, so its edges
fit an ``(N, K)`` table of neighbour indices (``-1`` pads nodes with fewer; see
:func:`graphs.to_neighbor_table`). On that layout one LGA layer is

.. math::
    \\mathbf{o}_i = \\sum_{k} \\alpha_{i,k}\\, \\mathbf{v}_{n(i, k)}, \\qquad
    \\alpha_{i,\\cdot} = \\operatorname{softmax}_k\\big(\\mathbf{q}_i^{\\top}
    \\phi(\\mathbf{e}_{i,k})\\big),

the same function as the message-passing path, which materialises per-edge
tensors of shape ``(E, C)`` (messages, gathered values) and ``(E, A)`` (edge
encodings, their hidden layer, the gathered queries) and keeps them for the
backward pass. Here nothing of size ``E x C`` or ``E x A`` outlives a chunk of
nodes:

* the logits are computed chunk by chunk under activation checkpointing
  (:func:`neighbor_logits`), so only the ``(N, K)`` logits are stored and the
  edge encoder runs again, per chunk, in the backward pass;
* the weighted sum is :class:`NeighborWeightedSum`, which saves only the
  weights ``(N, K)`` and the values ``(N, C)`` and recomputes its gathers in
  the backward pass.

Peak memory is then ``O(N (K + C + A))`` plus one chunk's ``O(n K (C + A))``.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

__all__ = ['NeighborWeightedSum', 'neighbor_weighted_sum', 'neighbor_logits',
           'neighbor_softmax', 'default_chunk_size']

#: Elements of one chunk's gathered ``(n, K, C)`` block: 16M floats = 64 MB in fp32.
CHUNK_ELEMENTS = 1 << 24


def default_chunk_size(num_nodes: int, width: int, channels: int) -> int:
    """Nodes per chunk so that a chunk's ``(n, K, C)`` block stays near 64 MB."""
    return max(1, min(num_nodes, CHUNK_ELEMENTS // max(1, width * channels)))


def _gather(value: Tensor, index: Tensor) -> Tensor:
    """``value[:, index]`` for ``value`` ``(B, M, C)`` and ``index`` ``(n, K)``: ``(B, n, K, C)``."""
    b, _, c = value.shape
    return value.index_select(1, index.reshape(-1)).view(b, index.size(0), index.size(1), c)


class NeighborWeightedSum(torch.autograd.Function):
    """``out[b, i] = sum_k alpha[b, i, k] * value[b, index[i, k]]``, chunked over ``i``.

    ``alpha`` is ``(B, N, K)``, ``value`` ``(B, M, C)`` and ``index`` ``(N, K)``
    with entries in ``[0, M)`` (padding must carry zero weight). Saves
    ``alpha``, ``value`` and ``index`` only; the backward gathers again, chunk
    by chunk, and is itself differentiable (double backward works).
    """

    @staticmethod
    def forward(ctx, alpha: Tensor, value: Tensor, index: Tensor, chunk_size: int) -> Tensor:
        out = value.new_empty(alpha.size(0), alpha.size(1), value.size(2))
        for start in range(0, alpha.size(1), chunk_size):
            stop = min(start + chunk_size, alpha.size(1))
            gathered = _gather(value, index[start:stop])           # (B, n, K, C)
            out[:, start:stop] = (alpha[:, start:stop].unsqueeze(-2) @ gathered).squeeze(-2)
        ctx.save_for_backward(alpha, value, index)
        ctx.chunk_size = chunk_size
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        alpha, value, index = ctx.saved_tensors
        grad_alpha = grad_value = None
        parts = []
        if ctx.needs_input_grad[1]:
            grad_value = torch.zeros_like(value)
        for start in range(0, alpha.size(1), ctx.chunk_size):
            stop = min(start + ctx.chunk_size, alpha.size(1))
            g = grad_out[:, start:stop]                               # (B, n, C)
            if ctx.needs_input_grad[0]:
                gathered = _gather(value, index[start:stop])
                parts.append((gathered @ g.unsqueeze(-1)).squeeze(-1))
            if grad_value is not None:
                contrib = alpha[:, start:stop].unsqueeze(-1) * g.unsqueeze(-2)  # (B, n, K, C)
                grad_value.index_add_(1, index[start:stop].reshape(-1), contrib.flatten(1, 2))
        if ctx.needs_input_grad[0]:
            grad_alpha = torch.cat(parts, dim=1)
        return grad_alpha, grad_value, None, None


def neighbor_weighted_sum(alpha: Tensor, value: Tensor, index: Tensor,
                          chunk_size: int) -> Tensor:
    """See :class:`NeighborWeightedSum`; ``index`` may hold ``-1`` where ``alpha`` is zero."""
    return NeighborWeightedSum.apply(alpha, value, index.clamp(min=0), chunk_size)


def _logits_chunk(query: Tensor, attr: Tensor, encoder: Optional[Callable[[Tensor], Tensor]]
                  ) -> Tensor:
    # query (B, n, A); attr (n, K, D) -> (B, n, K). The encoder sees (n * K, D) rows,
    # the (|E|, D) form it gets on the message-passing path.
    n, k, d = attr.shape
    phi = attr if encoder is None else encoder(attr.reshape(n * k, d)).view(n, k, -1)
    # One (K, A) @ (A, B) product per node; a broadcast (B, n, K, A) copy of phi is avoided.
    return torch.bmm(phi, query.permute(1, 2, 0)).permute(2, 0, 1)


def _relative_chunk(query: Tensor, pos_src: Tensor, pos_dst: Tensor, index: Tensor,
                    encoder: Optional[Callable[[Tensor], Tensor]]) -> Tensor:
    attr = pos_src[index.clamp(min=0)] - pos_dst.unsqueeze(1)
    return _logits_chunk(query, attr.to(query.dtype), encoder)


def neighbor_logits(query: Tensor, index: Tensor, encoder: Optional[Callable[[Tensor], Tensor]],
                    chunk_size: int, *, edge_attr: Optional[Tensor] = None,
                    pos_src: Optional[Tensor] = None, pos_dst: Optional[Tensor] = None) -> Tensor:
    """The logits ``q_i^T phi(e_{i,k})`` of every table entry, ``(B, N, K)``.

    The edge attributes are either given in the table's layout
    (``edge_attr``, ``(N, K, D)``) or computed per chunk as ``pos_src[j] -
    pos_dst[i]``. Each chunk runs under activation checkpointing, so the
    encoder's ``(n, K, A)`` activations are freed after the chunk and
    recomputed in the backward pass.
    """
    parts = []
    grad = torch.is_grad_enabled()
    for start, q in zip(range(0, query.size(1), chunk_size), query.split(chunk_size, dim=1)):
        stop = start + q.size(1)
        if edge_attr is not None:
            args = (q, edge_attr[start:stop], encoder)
            fn = _logits_chunk
        else:
            args = (q, pos_src, pos_dst[start:stop], index[start:stop], encoder)
            fn = _relative_chunk
        parts.append(checkpoint(fn, *args, use_reentrant=False) if grad else fn(*args))
    return torch.cat(parts, dim=1)


def neighbor_softmax(logits: Tensor, valid: Tensor, normalize: str = 'softmax') -> Tensor:
    """Normalise ``(B, N, K)`` logits over the valid entries of each row.

    Padding gets weight zero; a node without neighbours gets all-zero weights
    (an output of zero, as message passing gives a node without edges).
    """
    if normalize == 'softmax':
        # A finite fill keeps rows without any neighbour free of NaN.
        filled = logits.masked_fill(~valid, torch.finfo(logits.dtype).min)
        return torch.softmax(filled, dim=-1).masked_fill(~valid, 0.0)
    return torch.sigmoid(logits).masked_fill(~valid, 0.0)

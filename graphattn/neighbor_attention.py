"""The neighbour-table kernel of LGA: attention over an ``(N, K)`` table.

A kNN graph gives every node the same number ``K`` of neighbours, so its edges
fit an ``(N, K)`` table of neighbour indices (``-1`` pads nodes with fewer; see
:func:`graphs.to_neighbor_table`). On that layout one LGA layer is

.. math::
    \\mathbf{o}^h_i = \\sum_{k} \\alpha^h_{i,k}\\, \\mathbf{v}^h_{n(i, k)}, \\qquad
    \\alpha^h_{i,\\cdot} = \\operatorname{softmax}_k\\big(s^h_{i, n(i,k)}\\big),

with the scores :math:`s` of :mod:`graphattn.lga_scores`: the same function as
the message-passing path, which materialises per-edge tensors of shape
``(E, C)`` and ``(E, A)`` and keeps them for the backward pass. Here nothing
of size ``E x C`` or ``E x A`` outlives a chunk of nodes:

* the scores are computed chunk by chunk under activation checkpointing
  (:func:`neighbor_scores`), so only the ``(N, G, K)`` scores are stored and
  the edge encoder runs again, per chunk, in the backward pass;
* the weighted sum is :class:`NeighborWeightedSum`, which saves only the
  weights and the values and recomputes its gathers in the backward pass.

Padding never reads a real node: padded entries point at a zero row appended
to the values (one copy of the values, not a pass over the gathered block),
so a NaN or inf at node 0 stays at node 0. Peak memory is ``O(N (K + C + A))`` plus one chunk's
``O(n K (C + A))``.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from .lga_scores import edge_scores

__all__ = ['NeighborWeightedSum', 'neighbor_weighted_sum', 'neighbor_scores',
           'default_chunk_size']

#: Elements of one chunk's gathered ``(n, K, C)`` block: 16M floats = 64 MB in fp32.
CHUNK_ELEMENTS = 1 << 24


def default_chunk_size(num_nodes: int, width: int, channels: int) -> int:
    """Nodes per chunk so that a chunk's ``(n, K, C)`` block stays near 64 MB."""
    return max(1, min(num_nodes, CHUNK_ELEMENTS // max(1, width * channels)))


def _spans(num_nodes: int, chunk_size: int):
    """``(start, stop)`` of each chunk. Under :func:`torch.compile` one span: a
    Python loop over a node count would specialise the trace to that count (one
    recompilation per cloud size), and the compiler fuses the chunk anyway."""
    if torch.compiler.is_compiling():
        return [(0, num_nodes)]
    return [(start, min(start + chunk_size, num_nodes))
            for start in range(0, num_nodes, chunk_size)]


def _with_zero_row(value: Tensor) -> Tensor:
    """``value`` ``(B, M, ...)`` with a zero row ``M`` appended: where padding reads."""
    return torch.cat([value, value.new_zeros(value.size(0), 1, *value.shape[2:])], dim=1)


def _padding_to_zero_row(index: Tensor, num_rows: int) -> Tensor:
    """``index`` with its ``-1`` padding pointing at the zero row ``num_rows``."""
    return torch.where(index >= 0, index, num_rows)


def _gather(value: Tensor, index: Tensor) -> Tensor:
    """``value[:, index]`` for ``value`` ``(B, M, ...)`` and an ``(n, K)`` index:
    ``(B, n, K, ...)``. Padding must already point at a zero row (never a real
    node: a NaN at node 0 must stay there, which ``0 * NaN`` would not do)."""
    b, _, *rest = value.shape
    n, k = index.shape
    return value.index_select(1, index.reshape(-1)).view(b, n, k, *rest)


class NeighborWeightedSum(torch.autograd.Function):
    """``out[b, i] = sum_k alpha[b, i, k] * value[b, index[i, k]]``, chunked over ``i``.

    ``alpha`` is ``(B, N, K)``, ``value`` ``(B, M, C)`` and ``index`` ``(N, K)``
    with entries in ``[0, M]``, ``M`` standing for padding (read as a zero
    vector). Saves ``alpha``, ``value`` and ``index`` only; the backward
    gathers again, chunk by chunk, and is itself differentiable (double
    backward works).
    """

    @staticmethod
    def forward(ctx, alpha: Tensor, value: Tensor, index: Tensor, chunk_size: int) -> Tensor:
        out = value.new_zeros(alpha.size(0), alpha.size(1), value.size(2))
        padded = _with_zero_row(value)
        for start, stop in _spans(alpha.size(1), chunk_size):
            gathered = _gather(padded, index[start:stop])          # (B, n, K, C)
            out[:, start:stop] = (alpha[:, start:stop].unsqueeze(-2) @ gathered).squeeze(-2)
        ctx.save_for_backward(alpha, value, index)
        ctx.chunk_size = chunk_size
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        alpha, value, index = ctx.saved_tensors
        grad_alpha = grad_value = None
        parts = []
        padded = _with_zero_row(value) if ctx.needs_input_grad[0] else None
        if ctx.needs_input_grad[1]:   # row M collects the padding's share, then is dropped
            grad_value = value.new_zeros(value.size(0), value.size(1) + 1, value.size(2))
        for start, stop in _spans(alpha.size(1), ctx.chunk_size):
            g = grad_out[:, start:stop]                               # (B, n, C)
            if padded is not None:
                gathered = _gather(padded, index[start:stop])
                parts.append((gathered @ g.unsqueeze(-1)).squeeze(-1))
            if grad_value is not None:
                contrib = alpha[:, start:stop].unsqueeze(-1) * g.unsqueeze(-2)  # (B, n, K, C)
                grad_value.index_add_(1, index[start:stop].reshape(-1), contrib.flatten(1, 2))
        if ctx.needs_input_grad[0]:
            grad_alpha = torch.cat(parts, dim=1) if parts else alpha.new_zeros(alpha.shape)
        if grad_value is not None:
            grad_value = grad_value[:, :value.size(1)]
        return grad_alpha, grad_value, None, None


def neighbor_weighted_sum(alpha: Tensor, value: Tensor, index: Tensor,
                          chunk_size: int) -> Tensor:
    """Heads-aware weighted sum over a neighbour table.

    Args:
        alpha (Tensor): ``(B, N, G, K)`` weights (zero at padding).
        value (Tensor): ``(B, M, G, D)`` values.
        index (LongTensor): ``(N, K)`` neighbours, ``-1`` padding.
        chunk_size (int): Centre nodes per chunk.

    Returns:
        ``(B, N, G, D)``.
    """
    b, n, g, k = alpha.shape
    d = value.size(-1)
    # Heads join the batch: each head is a weighted sum over the same table.
    a = alpha.permute(0, 2, 1, 3).reshape(b * g, n, k)
    v = value.permute(0, 2, 1, 3).reshape(b * g, value.size(1), d)
    out = NeighborWeightedSum.apply(a, v, _padding_to_zero_row(index, value.size(1)), chunk_size)
    return out.view(b, g, n, d).permute(0, 2, 1, 3)


def _encode(attr: Tensor, encoder: Optional[Callable[[Tensor], Tensor]]) -> Tensor:
    # The encoder sees (n * K, D) rows, the (|E|, D) form of the message-passing path;
    # the output width is read from the output, so an empty chunk (K = 0) reshapes too.
    if encoder is None:
        return attr
    n, k, d = attr.shape
    out = encoder(attr.reshape(n * k, d))
    return out.reshape(n, k, out.size(-1))


def _scores_chunk(score: str, query: Optional[Tensor], key: Optional[Tensor], attr: Tensor,
                  index: Tensor, encoder: Optional[Callable[[Tensor], Tensor]],
                  att: Optional[Tensor], negative_slope: float) -> Tensor:
    """Scores ``(B, n, G, K)`` of one chunk of ``n`` centres."""
    phi = _encode(attr, encoder)                                     # (n, K, A)
    if score == 'center':
        # One (K, A) @ (A, B*G) product per node; no broadcast (B, n, K, G, A) copy.
        b, n, g, a = query.shape
        s = torch.bmm(phi, query.permute(1, 3, 0, 2).reshape(n, a, b * g))  # (n, K, B*G)
        return s.view(n, -1, b, g).permute(2, 0, 3, 1)
    k_j = _gather(key, index)                         # (B, n, K, G, A); key has a zero row
    q_i = None if query is None else query.unsqueeze(2)               # (B, n, 1, G, A)
    s = edge_scores(score, q_i, k_j, phi.unsqueeze(-2).unsqueeze(0), att, negative_slope)
    return s.transpose(-1, -2)                                        # (B, n, G, K)


def neighbor_scores(score: str, query: Optional[Tensor], key: Optional[Tensor],
                    index: Tensor, encoder: Optional[Callable[[Tensor], Tensor]],
                    chunk_size: int, *, edge_attr: Optional[Tensor] = None,
                    pos_src: Optional[Tensor] = None, pos_dst: Optional[Tensor] = None,
                    att: Optional[Tensor] = None, negative_slope: float = 0.2) -> Tensor:
    """The scores of every table entry, ``(B, N, G, K)``.

    ``query`` is ``(B, N, G, A)`` (centres), ``key`` ``(B, M, G, A)``
    (neighbours); either may be :obj:`None` when the reading does not use it.
    The edge attributes are either given in the table's layout (``edge_attr``,
    ``(N, K, D)``) or computed per chunk as ``pos_src[j] - pos_dst[i]``. Each
    chunk runs under activation checkpointing, so the encoder's ``(n, K, A)``
    activations are freed after the chunk and recomputed in the backward pass.
    """
    parts = []
    grad = torch.is_grad_enabled()
    if key is not None:   # padding reads a zero row, never a real node
        key, key_index = _with_zero_row(key), _padding_to_zero_row(index, key.size(1))
    for start, stop in _spans(index.size(0), chunk_size):
        idx = index[start:stop]
        if edge_attr is not None:
            attr = edge_attr[start:stop]
        else:
            attr = torch.where((idx >= 0).unsqueeze(-1),
                               pos_src[idx.clamp(min=0)] - pos_dst[start:stop].unsqueeze(1),
                               pos_src.new_zeros(()))
        q = None if query is None else query[:, start:stop]
        args = (score, q, key, attr.to(q.dtype if q is not None else key.dtype),
                idx if key is None else key_index[start:stop], encoder, att, negative_slope)
        parts.append(checkpoint(_scores_chunk, *args, use_reentrant=False) if grad
                     else _scores_chunk(*args))
    if not parts:
        ref = query if query is not None else key
        return ref.new_zeros(ref.size(0), 0, ref.size(2), index.size(1))
    return torch.cat(parts, dim=1)

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
  the edge encoder runs again, per chunk, in the backward pass; an encoder
  ending in a linear map (``'mlp'``) has that map folded into the node terms,
  so per edge only its hidden layer runs;
* the weighted sum is :class:`NeighborWeightedSum`, which saves only the
  weights and the values; on the CPU it runs as sparse (CSR) products with the
  table as the sparsity pattern, elsewhere it gathers chunk by chunk.

Padding never reads a real node: padded entries point at a zero row appended
to the values (one copy of the values, not a pass over the gathered block),
so a NaN or inf at node 0 stays at node 0. Peak memory is ``O(N (K + C + A))``
plus one chunk's ``O(n K (C + A))`` (``n`` = ``chunk_size``, by default about
8 MB of ``(n, K, C)`` block).

Speed on the CPU (one thread, 100k points, k = 16, C = 32, two layers,
forward + backward): the CSR products replace gathers, batched products and an
``index_add_`` (the slowest single operation before) with MKL's sparse kernels,
measured 7x faster for the forward product, 6x for the weights' gradient and
about 2.5x for the values' gradient (its sort included); the fold removes the
encoder's ``(E, A) @ (A, A)`` products. See docs/performance.md,
"Neighbour-table path", for the numbers.
"""
from __future__ import annotations

import warnings
from typing import Callable, List, Optional, Tuple, Union

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint
from torch_geometric.nn.dense.linear import Linear as PygLinear
from torch_geometric.nn.dense.linear import is_uninitialized_parameter

from .lga_scores import edge_scores

__all__ = ['NeighborWeightedSum', 'RowProduct', 'neighbor_weighted_sum', 'neighbor_scores',
           'split_last_linear', 'default_chunk_size']

#: Elements of one chunk's ``(n, K, C)`` block: 2M floats = 8 MB in fp32 (4096 centres at
#: K = 16, C = 32). At 100k points (LGA, 2 layers, one thread; rough runs, see
#: docs/performance.md) 64 MB blocks took about 1.3x the time and 1.6x the peak memory,
#: and 2 or 4 MB blocks saved neither.
CHUNK_ELEMENTS = 1 << 21


def default_chunk_size(num_nodes: int, width: int, channels: int) -> int:
    """Nodes per chunk so that a chunk's ``(n, K, C)`` block stays near 8 MB."""
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


#: The device types on which :class:`NeighborWeightedSum` runs as CSR products. The CPU's
#: (MKL) were measured 2.5-7x faster per product than gathers there; cuSPARSE's have not
#: been timed against the chunked gathers on a GPU: the device check's row "table, CSR
#: products" adds ``'cuda'`` here for its case, and ``tests/test_cuda_parity.py`` checks
#: that path's numbers.
SPARSE_DEVICES: Tuple[str, ...] = ('cpu',)


def _sparse_products(value: Tensor, index: Tensor) -> bool:
    """Whether :class:`NeighborWeightedSum` runs as CSR products: on a device type of
    :data:`SPARSE_DEVICES` in float32/64, not under :func:`torch.compile` (which does not
    trace sparse tensors) and not for an empty table. Elsewhere it gathers chunk by
    chunk."""
    return (value.device.type in SPARSE_DEVICES
            and value.dtype in (torch.float32, torch.float64)
            and index.numel() > 0 and not torch.compiler.is_compiling())


def _stack(parts: List[Tensor]) -> Tensor:
    """``torch.stack`` without its copy for the common single batch."""
    return parts[0].unsqueeze(0) if len(parts) == 1 else torch.stack(parts)


def _csr(index: Tensor, values: Tensor, num_cols: int) -> Tensor:
    """The ``(n, num_cols)`` CSR matrix with row ``i`` holding ``values[i, k]`` at
    column ``index[i, k]``; repeated columns in a row add up in every product."""
    n, k = index.shape
    crow = torch.arange(0, n * k + 1, k, device=index.device, dtype=index.dtype)
    return _csr_tensor(crow, index.reshape(-1), values.reshape(-1), (n, num_cols))


def _csr_tensor(crow: Tensor, col: Tensor, values: Tensor, size: Tuple[int, int]) -> Tensor:
    # The table was validated once (entries in [0, M]); columns need not be sorted
    # within a row for the products used here, so the per-call checks are skipped.
    # torch's one-time notices: "CSR support is in beta", and (torch 2.11, even with
    # check_invariants=False given) "invariant checks are implicitly disabled".
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='Sparse CSR tensor support is in beta')
        warnings.filterwarnings('ignore', message='Sparse invariant checks are implicitly')
        return torch.sparse_csr_tensor(crow, col, values, size, check_invariants=False)


def _transposed_csr(index: Tensor, num_cols: int) -> Tuple[Tensor, Tensor, Tensor]:
    """The structure of the transposed table, ``(crow, col, perm)``: row ``j`` of
    the transpose lists the centres that read ``j``, and ``perm`` orders the
    table's flat entries that way (one sort per backward, in int32 where it fits:
    a third faster than int64)."""
    flat = index.reshape(-1)
    keys = flat.int() if num_cols < 2 ** 31 else flat
    perm = torch.argsort(keys)
    counts = torch.bincount(flat, minlength=num_cols)
    crow = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    return crow, perm.div(index.size(1), rounding_mode='floor'), perm


class NeighborWeightedSum(torch.autograd.Function):
    """``out[b, i] = sum_k alpha[b, i, k] * value[b, index[i, k]]``.

    ``alpha`` is ``(B, N, K)``, ``value`` ``(B, M, C)`` and ``index`` ``(N, K)``
    with entries in ``[0, M]``, ``M`` standing for padding (read as a zero
    vector). Saves ``alpha``, ``value`` and ``index`` only.

    On the CPU (float32/64, outside :func:`torch.compile`) every product is a
    sparse one on the table read as a CSR matrix (MKL's kernels, no ``(N, K, C)``
    block at all): the forward ``A @ value``, the weights' gradient
    ``(grad_out @ value^T)`` sampled at the table
    (:func:`torch.sparse.sampled_addmm`) and the values' gradient ``A^T @
    grad_out`` (one sort of the table per backward gives ``A^T``); a table that
    repeats a neighbour in a row gets the weights' gradient by gathering instead
    (sampled_addmm needs distinct columns per row). Elsewhere,
    and for a double backward, it gathers chunk by chunk of ``chunk_size``
    centres with dense, differentiable operations.
    """

    @staticmethod
    def forward(ctx, alpha: Tensor, value: Tensor, index: Tensor, chunk_size: int) -> Tensor:
        padded = _with_zero_row(value)
        ctx.sparse = _sparse_products(value, index)
        if ctx.sparse:
            out = _stack([_csr(index, a, padded.size(1)) @ p for a, p in zip(alpha, padded)])
        else:
            out = value.new_zeros(alpha.size(0), alpha.size(1), value.size(2))
            for start, stop in _spans(alpha.size(1), chunk_size):
                gathered = _gather(padded, index[start:stop])          # (B, n, K, C)
                out[:, start:stop] = (alpha[:, start:stop].unsqueeze(-2) @ gathered).squeeze(-2)
        ctx.save_for_backward(alpha, value, index)
        ctx.chunk_size = chunk_size
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        alpha, value, index = ctx.saved_tensors
        need_alpha, need_value = ctx.needs_input_grad[:2]
        # Grad mode is on here only for a double backward: the sparse products
        # are not differentiable, the dense path is.
        if ctx.sparse and not torch.is_grad_enabled():
            grad_alpha, grad_value = _sparse_backward(alpha, value, index, grad_out.contiguous(),
                                                      need_alpha, need_value, ctx.chunk_size)
            return grad_alpha, grad_value, None, None
        grad_alpha = grad_value = None
        parts = []
        padded = _with_zero_row(value) if need_alpha else None
        if need_value:   # row M collects the padding's share, then is dropped
            grad_value = value.new_zeros(value.size(0), value.size(1) + 1, value.size(2))
        for start, stop in _spans(alpha.size(1), ctx.chunk_size):
            g = grad_out[:, start:stop]                               # (B, n, C)
            if padded is not None:
                gathered = _gather(padded, index[start:stop])
                parts.append((gathered @ g.unsqueeze(-1)).squeeze(-1))
            if grad_value is not None:
                contrib = alpha[:, start:stop].unsqueeze(-1) * g.unsqueeze(-2)  # (B, n, K, C)
                grad_value.index_add_(1, index[start:stop].reshape(-1),   # autocast: alpha
                                      contrib.flatten(1, 2).to(grad_value.dtype))  # is fp32
        if need_alpha:
            grad_alpha = torch.cat(parts, dim=1) if parts else alpha.new_zeros(alpha.shape)
        if grad_value is not None:
            grad_value = grad_value[:, :value.size(1)]
        return grad_alpha, grad_value, None, None


def _repeats_in_a_row(index: Tensor, num_cols: int) -> bool:
    """Whether a row of the table lists one column twice (one sort per backward, in
    int32 where it fits: 3x faster than int64 at 100k x 16)."""
    if index.size(1) < 2:
        return False
    keys = index.int() if num_cols <= 2 ** 31 else index
    ordered = keys.sort(dim=1).values
    return bool((ordered[:, 1:] == ordered[:, :-1]).any())


def _gathered_grad_alpha(value: Tensor, index: Tensor, grad_out: Tensor,
                         chunk_size: int) -> Tensor:
    """``grad_alpha[b, i, k] = grad_out[b, i] . value[b, index[i, k]]``, chunk by chunk."""
    padded = _with_zero_row(value)
    return torch.cat([(_gather(padded, index[start:stop])
                       @ grad_out[:, start:stop].unsqueeze(-1)).squeeze(-1)
                      for start, stop in _spans(index.size(0), chunk_size)], dim=1)


def _distinct_padding(index: Tensor, num_rows: int) -> Tensor:
    """``index`` with padding (``num_rows``) in column ``k`` pointing at zero row
    ``num_rows + k``: never twice in a row, unlike the one shared zero row."""
    slot = torch.arange(num_rows, num_rows + index.size(1), device=index.device,
                        dtype=index.dtype)
    return torch.where(index < num_rows, index, slot)


def _sampled_grad_alpha(value: Tensor, index: Tensor, grad_out: Tensor,
                        chunk_size: int) -> Tensor:
    """``grad_out @ value^T`` at the table's entries (:func:`torch.sparse.sampled_addmm`).

    With one shared zero row, a table wider than the rows it reads (``K > M + 1``: a
    small cloud, a ball query padded by repetition) made sampled_addmm fail with
    ``torch.copy_: only sparse compressed tensors with the same number of specified
    elements`` (measured on torch 2.13: exactly when a row holds more entries than the
    matrix has columns). Padding now gets one zero row per table column, so ``K < M +
    K`` always and padded rows keep the sparse product. A row that repeats a real
    neighbour is outside the CSR contract (distinct columns per row) even where it
    happens to work, so such tables take the gathering product."""
    m, k = value.size(1), index.size(1)
    cols = _distinct_padding(index, m)
    if _repeats_in_a_row(cols, m + k):
        return _gathered_grad_alpha(value, index, grad_out, chunk_size)
    padded = torch.cat([value, value.new_zeros(value.size(0), k, value.size(2))], dim=1)
    pattern = _csr(cols, value.new_zeros(index.shape), m + k)    # its values are ignored
    return _stack([torch.sparse.sampled_addmm(pattern, g, p.t(), beta=0.0).values()
                   .view(index.shape) for g, p in zip(grad_out, padded)])


def _sparse_backward(alpha: Tensor, value: Tensor, index: Tensor, grad_out: Tensor,
                     need_alpha: bool, need_value: bool, chunk_size: int
                     ) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """The gradients of :class:`NeighborWeightedSum` as CSR products."""
    grad_alpha = grad_value = None
    rows = value.size(1) + 1                                          # + the zero row
    if need_alpha:
        grad_alpha = _sampled_grad_alpha(value, index, grad_out, chunk_size)
    if need_value:   # repeated columns add up in a CSR product: no special case here
        crow, col, perm = _transposed_csr(index, rows)
        grad_value = _stack([
            _csr_tensor(crow, col, a.reshape(-1)[perm], (rows, index.size(0))) @ g
            for a, g in zip(alpha, grad_out)])[:, :-1]
    return grad_alpha, grad_value


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


class RowProduct(torch.autograd.Function):
    """``torch.bmm(phi, q)`` for ``phi`` ``(n, K, H)`` and a thin ``q`` ``(n, H, m)``
    (``m = B * heads``, mostly 1), whose backward forms ``grad_phi`` as a broadcast
    product when ``m = 1``: bmm's own backward runs an outer product as ``n``
    rank-1 matrix products, about 7x slower on the CPU. Differentiable twice."""

    @staticmethod
    def forward(ctx, phi: Tensor, q: Tensor) -> Tensor:
        ctx.save_for_backward(phi, q)
        return torch.bmm(phi, q)

    @staticmethod
    def backward(ctx, grad: Tensor):
        phi, q = ctx.saved_tensors
        grad_phi = grad_q = None
        if ctx.needs_input_grad[0]:
            qt = q.transpose(1, 2)                                     # (n, m, H)
            grad_phi = grad * qt if q.size(2) == 1 else torch.bmm(grad, qt)
        if ctx.needs_input_grad[1]:
            grad_q = torch.bmm(phi.transpose(1, 2), grad)
        return grad_phi, grad_q


def _encode(attr: Tensor, encoder: Optional[Callable[[Tensor], Tensor]]) -> Tensor:
    # The encoder sees (rows, D), the (|E|, D) form of the message-passing path; the
    # output width is read from the output, so an empty chunk (K = 0) reshapes too.
    if encoder is None:
        return attr
    *lead, d = attr.shape
    out = encoder(attr.reshape(-1, d))
    return out.reshape(*lead, out.size(-1))


def _chunk_attr(attr: Union[Tensor, Tuple[Tensor, Tensor, Tensor]], dtype: torch.dtype
                ) -> Tensor:
    """A chunk's ``(n, K, D)`` edge attributes: given, or ``(index, pos_src,
    pos_dst)`` to compute ``pos_src[j] - pos_dst[i]`` from (zero at padding);
    ``(B, n, K, D)`` when the positions have a batch dim (one set per sample).
    Computed inside the checkpointed chunk, so that no ``(N, K, D)`` copy is
    kept for the backward pass: only the positions and the table, alive anyway."""
    if isinstance(attr, Tensor):
        return attr.to(dtype)
    idx, pos_src, pos_dst = attr
    n, k = idx.shape
    d = pos_dst.size(-1)
    if pos_src.size(-2) == 0:   # no sources (a query against an empty set): all padding
        lead = torch.broadcast_shapes(pos_src.shape[:-2], pos_dst.shape[:-2])
        return pos_dst.new_zeros(*lead, n, k, d).to(dtype)
    # index_select: about twice as fast as advanced indexing here
    rel = pos_src.index_select(-2, idx.clamp(min=0).reshape(-1)).view(
        *pos_src.shape[:-2], n, k, d) - pos_dst.unsqueeze(-2)
    return torch.where((idx >= 0).unsqueeze(-1), rel, rel.new_zeros(())).to(dtype)


def _scores_chunk(score: str, query: Optional[Tensor], key: Optional[Tensor],
                  attr: Union[Tensor, Tuple[Tensor, Tensor, Tensor]], index: Tensor,
                  encoder: Optional[Callable[[Tensor], Tensor]], fold: Optional[Tensor],
                  fold_bias: Optional[Tensor], key_offset: Optional[Tensor],
                  att: Optional[Tensor], negative_slope: float) -> Tensor:
    """Scores ``(B, n, G, K)`` of one chunk of ``n`` centres.

    ``fold`` ``(A, H)`` and ``fold_bias`` ``(A,)``: the encoder's last linear map,
    folded into this chunk's queries (``'center'``); ``key_offset`` ``(B, M + 1,
    G)``: the folded bias term of every neighbour (``'neighbor'``, whose keys
    come already folded)."""
    ref = query if query is not None else key
    phi = _encode(_chunk_attr(attr, ref.dtype), encoder)            # (n, K, H)
    if score == 'center':
        offset = None
        if fold is not None:   # per node: q W and q . b, recomputed with the chunk
            offset = None if fold_bias is None else query @ fold_bias.to(query.dtype)
            query = query @ fold.to(query.dtype)
        if phi.dim() == 4:   # positions per sample: phi (B, n, K, H)
            s = torch.einsum('bnkh,bngh->bngk', phi, query)
        else:   # one (K, H) @ (H, B*G) product per node; no (B, n, K, G, H) copy
            b, n, g, a = query.shape
            s = RowProduct.apply(phi, query.permute(1, 3, 0, 2).reshape(n, a, b * g))
            s = s.view(n, -1, b, g).permute(2, 0, 3, 1)               # (B, n, G, K)
        return s if offset is None else s + offset.unsqueeze(-1)
    k_j = _gather(key, index)                         # (B, n, K, G, A); key has a zero row
    q_i = None if query is None else query.unsqueeze(2)               # (B, n, 1, G, A)
    phi = phi.unsqueeze(-2) if phi.dim() == 4 else phi.unsqueeze(-2).unsqueeze(0)
    s = edge_scores(score, q_i, k_j, phi, att, negative_slope)   # phi (B or 1, n, K, 1, H)
    if key_offset is not None:
        s = s + _gather(key_offset, index)
    return s.transpose(-1, -2)                                        # (B, n, G, K)


def split_last_linear(encoder: Optional[Callable[[Tensor], Tensor]]
                      ) -> Tuple[Optional[Callable[[Tensor], Tensor]], Optional[Tensor],
                                 Optional[Tensor]]:
    """``encoder`` as ``(hidden, W, b)`` with ``phi(e) = hidden(e) W^T + b`` when it
    is a :class:`torch.nn.Sequential` ending in an (initialised) linear map, as the
    ``'mlp'`` encoder (Linear, ReLU, Linear) does; otherwise ``(encoder, None, None)``."""
    # Exact types only: a subclass may override forward (then phi is not the chain).
    if type(encoder) is torch.nn.Sequential and len(encoder) > 0:
        last = encoder[-1]
        weight = getattr(last, 'weight', None)
        if (type(last) in (torch.nn.Linear, PygLinear) and isinstance(weight, Tensor)
                and not is_uninitialized_parameter(weight)):
            hidden_layers = list(encoder)[:-1]

            # A closure, not a new Sequential: creating a module inside a forward is a
            # graph break for torch.compile on older torch (seen on 2.4).
            def hidden(e: Tensor) -> Tensor:
                for layer in hidden_layers:
                    e = layer(e)
                return e
            return hidden, weight, last.bias
    return encoder, None, None


def neighbor_scores(score: str, query: Optional[Tensor], key: Optional[Tensor],
                    index: Tensor, encoder: Optional[Callable[[Tensor], Tensor]],
                    chunk_size: int, *, edge_attr: Optional[Tensor] = None,
                    pos_src: Optional[Tensor] = None, pos_dst: Optional[Tensor] = None,
                    att: Optional[Tensor] = None, negative_slope: float = 0.2) -> Tensor:
    r"""The scores of every table entry, ``(B, N, G, K)``.

    ``query`` is ``(B, N, G, A)`` (centres), ``key`` ``(B, M, G, A)``
    (neighbours); either may be :obj:`None` when the reading does not use it.
    The edge attributes are either given in the table's layout (``edge_attr``,
    ``(N, K, D)``) or computed per chunk as ``pos_src[j] - pos_dst[i]``, the
    positions ``(M, D)`` and ``(N, D)``, or ``(B, M, D)`` and ``(B, N, D)`` for
    one set per sample (then the scores' ``(B, n, K, H)`` encodings are per
    sample too, and the centre reading is an einsum). Each chunk runs under
    activation checkpointing, so the encoder's ``(n, K, H)`` activations are freed
    after the chunk and recomputed in the backward pass.

    The ``'center'`` and ``'neighbor'`` scores are linear in :math:`\phi`, so an
    encoder ending in a linear map, :math:`\phi(\mathbf{e}) = \mathbf{W}
    \mathbf{z}(\mathbf{e}) + \mathbf{b}` (the ``'mlp'`` encoder), is folded
    into the node terms (:func:`split_last_linear`):

    .. math::
        \mathbf{q}^{h}_i \cdot \phi(\mathbf{e}_{ij}) = (\mathbf{W}^{\top}
        \mathbf{q}^h_i) \cdot \mathbf{z}(\mathbf{e}_{ij}) + \mathbf{q}^h_i \cdot
        \mathbf{b},

    one ``(A, H)`` product per node instead of one per edge, in the forward, the
    recomputation and the backward. The maths is unchanged (the encoder's weights
    get the same gradients); only the order of the sums differs.
    """
    fold = fold_bias = key_offset = None
    if score != 'pair':
        encoder, fold, fold_bias = split_last_linear(encoder)
    if key is not None:   # padding reads a zero row, never a real node
        if fold is not None:   # 'neighbor': fold every key once, not per edge
            if fold_bias is not None:
                key_offset = _with_zero_row(key @ fold_bias.to(key.dtype))   # (B, M + 1, G)
            key, fold, fold_bias = key @ fold.to(key.dtype), None, None
        key, key_index = _with_zero_row(key), _padding_to_zero_row(index, key.size(1))
    parts = []
    grad = torch.is_grad_enabled()
    # split, not one slice per chunk: a slice's backward writes its gradient into a
    # zero tensor of the full size, which would cost O(N) per chunk.
    sizes = [stop - start for start, stop in _spans(index.size(0), chunk_size)]
    attrs = (edge_attr.split(sizes) if edge_attr is not None
             else zip(index.split(sizes), [pos_src] * len(sizes), pos_dst.split(sizes, dim=-2)))
    queries = [None] * len(sizes) if query is None else query.split(sizes, dim=1)
    for idx, attr, q in zip(index.split(sizes) if key is None else key_index.split(sizes),
                            attrs, queries):
        args = (score, q, key, attr, idx, encoder, fold, fold_bias, key_offset, att,
                negative_slope)
        parts.append(checkpoint(_scores_chunk, *args, use_reentrant=False) if grad
                     else _scores_chunk(*args))
    if not parts:
        ref = query if query is not None else key
        return ref.new_zeros(ref.size(0), 0, ref.size(2), index.size(1))
    return torch.cat(parts, dim=1)

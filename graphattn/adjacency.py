"""Sparse adjacency inputs of the layers (PyG's ``adj_t`` convention) as edge lists.

PyG layers take a graph either as an ``edge_index`` or as a transposed sparse
adjacency ``adj_t`` (a ``torch_sparse.SparseTensor`` or a ``torch.sparse``
COO/CSR tensor) whose entry ``(i, j)`` is the edge ``j -> i`` and whose values
may carry per-edge attributes. :func:`adjacency_to_edge_index` turns either
sparse form into the ``(2, E)`` edge index the layers use,
with the values in the same edge order. torch-sparse is optional: it is never
imported here; a ``SparseTensor`` can only reach this function if the caller
has it.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.utils import is_sparse, to_edge_index
from torch_geometric.utils.sparse import set_sparse_value

__all__ = ['adjacency_to_edge_index', 'is_sparse_adjacency', 'with_edge_values']


def is_sparse_adjacency(adj) -> bool:
    """Whether ``adj`` is a ``SparseTensor`` or a ``torch.sparse`` tensor."""
    return is_sparse(adj)


def adjacency_to_edge_index(adj_t) -> Tuple[Tensor, Optional[Tensor]]:
    """``(edge_index, values)`` of a transposed sparse adjacency.

    Row 0 of ``edge_index`` holds the sources ``j`` (the adjacency's columns)
    and row 1 the targets ``i`` (its rows), edges in the adjacency's
    row-major order. ``values`` is :obj:`None` for a ``SparseTensor`` without
    values; otherwise ``(E,)`` or ``(E, D)`` (hybrid COO / 2-D values: per-edge
    attributes).
    """
    if not is_sparse(adj_t):
        raise TypeError("'adj_t' must be a torch_sparse.SparseTensor or a torch.sparse tensor "
                        f"(got {type(adj_t).__name__})")
    indices, values = to_edge_index(adj_t)
    return indices.flip(0), values


def with_edge_values(adj_t, values: Tensor):
    """The sparsity pattern of ``adj_t`` carrying ``values`` (``(E, ...)``, in the
    edge order of :func:`adjacency_to_edge_index`), in the same sparse type and
    layout: how attention weights go back to a user who passed an adjacency.
    A hybrid ``torch.sparse`` input (values with their own dense dims, the edge
    attributes) keeps only its two sparse dims."""
    if not isinstance(adj_t, Tensor):  # torch_sparse.SparseTensor
        return adj_t.set_value(values, layout='coo')
    size = tuple(adj_t.shape[:2]) + tuple(values.shape[1:])
    if adj_t.layout == torch.sparse_coo:
        return torch.sparse_coo_tensor(adj_t.indices(), values, size).coalesce()
    if adj_t.layout == torch.sparse_csr:
        return torch.sparse_csr_tensor(adj_t.crow_indices(), adj_t.col_indices(), values, size)
    return set_sparse_value(adj_t, values)

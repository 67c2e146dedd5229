"""Flat ``(N, F)`` node tensors of a batch of graphs as dense ``(B, n, F)`` blocks.

The fused LatentGNN kernel runs batched matrix products per graph; this layout
moves node features between PyG's flat form and such blocks. Unlike
:func:`torch_geometric.utils.to_dense_batch` it has no boolean-mask indexing
(no data-dependent shapes), so ``torch.compile`` traces it without graph breaks
once ``num_graphs`` and ``max_nodes`` are given.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

__all__ = ['DenseLayout']


class DenseLayout:
    """Maps flat ``(N, F)`` node tensors to dense ``(B, n, F)`` blocks and back.

    Either every graph has ``n = N / B`` nodes (``batch is None``: a free
    view), or the nodes are grouped by a sorted batch vector and padded with
    zeros to the largest graph; padded rows are zero in every block, so they
    add nothing to a product or a norm.

    Args:
        num_nodes (int): :math:`N`.
        batch (LongTensor, optional): sorted graph index of each node, or
            :obj:`None` (``num_graphs`` graphs of equal size, in order).
        num_graphs (int): :math:`B` (graphs without nodes allowed).
        device (torch.device): where index tensors are built.
        max_nodes (int, optional): block size :math:`n` (default: the largest
            graph, a device sync); checked against it outside compilation.
        dense (bool, optional): :obj:`False` when only :meth:`batch_vector`
            is needed (message passing): no index is built.
    """

    def __init__(self, num_nodes: int, batch: Optional[Tensor], num_graphs: int,
                 device: torch.device, max_nodes: Optional[int] = None,
                 dense: bool = True) -> None:
        self.num_nodes = num_nodes
        self.batch = batch
        self.num_graphs = num_graphs
        self.device = device
        self.index: Optional[Tensor] = None
        if batch is None:
            self.max_nodes = num_nodes // max(num_graphs, 1)
        elif not dense:
            self.max_nodes = -1
        else:
            counts = torch.zeros(num_graphs, dtype=torch.long, device=device).scatter_add_(
                0, batch, torch.ones_like(batch))
            ptr = torch.cumsum(counts, 0) - counts
            if max_nodes is None:
                self.max_nodes = int(counts.max()) if num_nodes > 0 else 0
            else:
                # Needs the counts, so it is checked here rather than at the entry.
                if not torch.compiler.is_compiling() and int(counts.max()) > max_nodes:
                    raise ValueError(f"'max_num_nodes' ({max_nodes}) is smaller than the "
                                     f"largest graph ({int(counts.max())} nodes)")
                self.max_nodes = max_nodes
            self.index = batch * self.max_nodes + (torch.arange(num_nodes, device=device)
                                                   - ptr.index_select(0, batch))

    def batch_vector(self) -> Tensor:
        """The ``(N,)`` graph index of each node (built for equal graphs)."""
        if self.batch is not None:
            return self.batch
        return torch.arange(self.num_graphs, device=self.device).repeat_interleave(
            self.max_nodes)

    def to_dense(self, x: Tensor) -> Tensor:
        """``(N, F)`` -> ``(B, n, F)``."""
        assert self.max_nodes >= 0
        if self.index is None:
            return x.view(self.num_graphs, self.max_nodes, x.size(-1))
        out = x.new_zeros(self.num_graphs * self.max_nodes, x.size(-1))
        out = out.index_copy(0, self.index, x)
        return out.view(self.num_graphs, self.max_nodes, x.size(-1))

    def to_flat(self, x: Tensor) -> Tensor:
        """``(B, n, F)`` -> ``(N, F)`` (padding rows dropped)."""
        flat = x.reshape(-1, x.size(-1))
        if self.index is None:
            return flat
        return flat.index_select(0, self.index)

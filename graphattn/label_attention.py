"""How much attention each node puts on neighbours of its own label: the per-node
negative log of that share, from LGA's attention weights on a grid or on any graph.

Both functions return ``(nll, keep)``: ``nll`` per node and head, and a mask of the
nodes where it is defined (labelled centre with at least one labelled neighbour of
its label). Self-loops are left out: a node is always of its own label, so counting
them lets all attention collapse onto the node itself (loss 0, no context) - measured
within 60 training steps on the collages. Everything masked is replaced *before* any arithmetic (``torch.where``,
not a product with 0), so a NaN or inf in the weights of an ignored node reaches
neither the value nor the gradient.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import Tensor

from graphs.validation import select_nodes

__all__ = ['same_label_nll', 'grid_same_label_nll', 'edge_same_label_nll']


def same_label_nll(same_mass: Tensor, labelled_mass: Tensor, keep: Tensor) -> Tensor:
    r""":math:`-\log(\text{same} / \text{labelled})` where ``keep``, else 0.

    The masses are clamped at the dtype's smallest normal number: a weight that
    underflowed to 0 gives a large finite value, not ``inf``. Masked entries
    are set to 1 before the logarithms, so they add nothing to the gradient.
    """
    tiny = torch.finfo(same_mass.dtype).tiny
    one = torch.ones((), dtype=same_mass.dtype, device=same_mass.device)
    same_mass = torch.where(keep, same_mass, one).clamp(min=tiny)
    labelled_mass = torch.where(keep, labelled_mass, one).clamp(min=tiny)
    return torch.where(keep, labelled_mass.log() - same_mass.log(), 0.0)


def grid_same_label_nll(alpha: Tensor, labels: Tensor, offsets: Sequence[Tuple[int, int]],
                        ignore_index: int) -> Tuple[Tensor, Tensor]:
    """On an attention map ``alpha`` ``(B, heads, S, h, w)`` whose entry ``t`` weighs the
    neighbour at offset ``offsets[t] = (dx, dy)`` (column, row), with node labels
    ``(B, h, w)``. Out-of-image neighbours and the offset ``(0, 0)`` count as ignored. Returns ``nll``
    ``(B, heads, h, w)`` and ``keep`` ``(B, 1, h, w)``."""
    _, height, width = labels.shape
    r = max([max(abs(dx), abs(dy)) for dx, dy in offsets] + [0])
    padded = torch.nn.functional.pad(labels, (r, r, r, r), value=ignore_index)
    neighbour = torch.stack([padded[:, r + dy:r + dy + height, r + dx:r + dx + width]
                             for dx, dy in offsets], dim=1)  # (B, S, h, w)
    centre_ok = labels != ignore_index
    other = torch.tensor([(dx, dy) != (0, 0) for dx, dy in offsets],
                         device=labels.device).view(1, -1, 1, 1)
    labelled = (neighbour != ignore_index) & centre_ok.unsqueeze(1) & other
    same = labelled & (neighbour == labels.unsqueeze(1))
    keep = (centre_ok & same.any(dim=1)).unsqueeze(1)  # (B, 1, h, w)
    labelled_mass = torch.where(labelled.unsqueeze(1), alpha, 0.0).sum(dim=2)
    same_mass = torch.where(same.unsqueeze(1), alpha, 0.0).sum(dim=2)
    return same_label_nll(same_mass, labelled_mass, keep), keep


def edge_same_label_nll(edge_index: Tensor, alpha: Tensor, labels: Tensor,
                        ignore_index: int, name: str = 'input') -> Tuple[Tensor, Tensor]:
    """On edge weights ``alpha`` ``(E, heads)`` of edges ``j -> i`` (``edge_index``
    row 0 the neighbour ``j``, row 1 the centre ``i``), node labels ``(N,)``.
    Self-loops ``i -> i`` count as ignored. Returns ``nll`` ``(N, heads)`` and ``keep``
    ``(N, 1)``. Indices outside
    ``[0, N)`` raise an :class:`IndexError` naming ``name`` (on CPU)."""
    n = labels.size(0)
    y_j = select_nodes(name, labels, edge_index[0])
    y_i = select_nodes(name, labels, edge_index[1])
    dst = edge_index[1]
    labelled = (y_j != ignore_index) & (y_i != ignore_index) & (edge_index[0] != dst)
    same = labelled & (y_j == y_i)
    zeros = alpha.new_zeros(n, alpha.size(1))
    labelled_mass = zeros.index_add(0, dst, torch.where(labelled.unsqueeze(1), alpha, 0.0))
    same_mass = zeros.index_add(0, dst, torch.where(same.unsqueeze(1), alpha, 0.0))
    same_count = torch.zeros(n, dtype=torch.long, device=labels.device).index_add(
        0, dst, same.long())
    keep = ((labels != ignore_index) & (same_count > 0)).unsqueeze(1)
    return same_label_nll(same_mass, labelled_mass, keep), keep

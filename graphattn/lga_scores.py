r"""Edge scores of LGA and their normalisation: the part of one LGA layer that
every graph form shares.

One layer scores the edge :math:`j \to i` (centre :math:`i`, neighbour
:math:`j`, edge attribute :math:`\mathbf{e}_{ij}`) per head :math:`h` in one of
three readings (``score``):

.. math::
    \text{center:}\quad s^h_{ij} &= \mathbf{q}^h_i \cdot \phi(\mathbf{e}_{ij}),
    \qquad \mathbf{q}_i = \mathbf{W}_a \mathbf{h}_i + \mathbf{b}_a \\
    \text{neighbor:}\quad s^h_{ij} &= \mathbf{k}^h_j \cdot \phi(\mathbf{e}_{ij}),
    \qquad \mathbf{k}_j = \mathbf{W}_n \mathbf{h}_j + \mathbf{b}_n \\
    \text{pair:}\quad s^h_{ij} &= \mathbf{a}^h \cdot \mathrm{LeakyReLU}\big(
    \mathbf{q}^h_i + \mathbf{k}^h_j + \phi(\mathbf{e}_{ij})\big)

then normalises them over each neighbourhood (``softmax``) or per edge
(``sigmoid``). Every path (message passing, the grid kernel, the neighbour
table) calls :func:`edge_scores` and one of the two normalisations below, so
the readings cannot drift apart between paths.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.utils import softmax

__all__ = ['SCORES', 'NORMALIZATIONS', 'edge_scores', 'normalize_dense', 'normalize_edges']

#: The edge-score readings of LGA (see the module docstring).
SCORES = ('center', 'neighbor', 'pair')

#: How scores become weights: a softmax over each neighbourhood, or a sigmoid per edge.
NORMALIZATIONS = ('softmax', 'sigmoid')


def edge_scores(score: str, q_i: Optional[Tensor], k_j: Optional[Tensor], phi: Tensor,
                att: Optional[Tensor] = None, negative_slope: float = 0.2) -> Tensor:
    """Scores ``(..., heads)`` of edges from ``(..., heads, A)`` centre terms
    ``q_i``, neighbour terms ``k_j`` and edge encodings ``phi`` (``(..., 1, A)``
    or ``(..., heads, A)``, broadcast over heads); ``att`` is ``(heads, A)``.
    ``score`` is fixed per layer, so the branch is static under compile."""
    if score == 'center':
        return (q_i * phi).sum(dim=-1)
    if score == 'neighbor':
        return (k_j * phi).sum(dim=-1)
    return (F.leaky_relu(q_i + k_j + phi, negative_slope) * att).sum(dim=-1)


def normalize_dense(scores: Tensor, valid: Tensor, normalize: str) -> Tensor:
    """Normalise scores ``(..., K)`` over their last dim, where ``valid``
    (broadcastable bool) marks real neighbours; the rest weigh exactly zero.

    A finite fill instead of ``-inf`` keeps a node without any neighbour free of
    NaN (all-zero weights, an output of zero, as message passing gives a node
    without edges); ``torch.where`` rather than a product keeps a NaN score at a
    padded entry from leaking into the weights.
    """
    zero = scores.new_zeros(())
    if normalize == 'softmax':
        filled = torch.where(valid, scores, torch.finfo(scores.dtype).min)
        return torch.where(valid, torch.softmax(filled, dim=-1), zero)
    return torch.where(valid, torch.sigmoid(scores), zero)


def normalize_edges(scores: Tensor, index: Tensor, ptr: Optional[Tensor],
                    num_nodes: Optional[int], normalize: str) -> Tensor:
    """Normalise per-edge scores ``(..., E, heads)`` over the edges that share a
    target ``index`` (PyG's sparse softmax), or per edge with a sigmoid."""
    if normalize == 'softmax':
        return softmax(scores, index, ptr, num_nodes, dim=-2)
    return torch.sigmoid(scores)

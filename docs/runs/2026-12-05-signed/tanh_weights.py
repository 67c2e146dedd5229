"""The normaliser swap the probes in this folder share: LGA with signed weights.

No library option gives LGA signed weights, so each probe, in its own process only, replaces
the per-edge normaliser that ``normalize='sigmoid'`` uses with ``tanh(score)`` (in (-1, 1);
padded or out-of-map neighbours weigh zero) on every path: the grid kernel's and the table
path's (``normalize_dense``) and message passing's (``normalize_edges``). The probes then ask
for ``normalize='sigmoid'``; ``'softmax'`` is left as it is.
"""
import torch

import graphattn.grid_attention as grid_attention
import graphattn.lga_conv as lga_conv
from graphattn import LGA, LGA2d
from graphs import knn_graph


def use_tanh_weights() -> None:
    """Swap the normalisers, then check on a fresh grid layer and a fresh layer on kNN edges
    that some weights are negative (the swap took on both paths)."""
    dense, edges = lga_conv.normalize_dense, lga_conv.normalize_edges

    def tanh_dense(scores, valid, normalize):
        if normalize == 'softmax':
            return dense(scores, valid, normalize)
        return torch.where(valid, torch.tanh(scores), scores.new_zeros(()))

    def tanh_edges(scores, index, ptr, num_nodes, normalize):
        if normalize == 'softmax':
            return edges(scores, index, ptr, num_nodes, normalize)
        return torch.tanh(scores)

    grid_attention.normalize_dense = lga_conv.normalize_dense = tanh_dense
    lga_conv.normalize_edges = tanh_edges

    _, maps = LGA2d(8, num_layers=1, heads=2, normalize='sigmoid')(
        torch.randn(1, 8, 5, 5), return_attention_weights=True)
    assert bool((maps[0] < 0).any()), 'the tanh swap did not take on the grid'
    pos = torch.randn(40, 3)
    edge_index = knn_graph(pos, 6, loop=True)
    _, att = LGA.for_points(8, num_layers=1, normalize='sigmoid')(
        torch.randn(40, 8), edge_index, pos[edge_index[0]] - pos[edge_index[1]],
        return_attention_weights=True)
    assert bool((att[0][1] < 0).any()), 'the tanh swap did not take on the edges'

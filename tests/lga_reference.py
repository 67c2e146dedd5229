"""Independent references for LGA, shared by the irregular-input and property tests.

:func:`brute_force` reads an :class:`~graphattn.LGAConv`'s parameters and evaluates the
documented equations edge by edge in Python loops (no PyG, no kernel of graphattn), so
duplicate edges, padding and empty neighbourhoods count exactly as the maths says: every
listed edge is one term of the softmax and of the sum.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor


def _lin(lin, x: Tensor) -> Tensor:
    return x @ lin.weight.t() + (0 if lin.bias is None else lin.bias)


def brute_force(conv, x_src: Tensor, x_dst: Optional[Tensor], edge_index: Tensor,
                edge_attr: Tensor, num_dst: Optional[int] = None,
                edge_mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """``(out, alpha)`` of one layer on ``(N, C)`` features: ``out`` ``(N_dst, ...)``
    after the activation, ``alpha`` ``(E, heads)`` in the order of ``edge_index``.
    ``edge_mask`` ``(E,)``, if given, scales each edge's message after the normalisation
    (what a PyG explainer's edge mask does); ``alpha`` is returned unscaled."""
    heads, a, d = conv.heads, conv.att_channels, conv.out_channels
    num_dst = x_dst.size(0) if x_dst is not None else num_dst
    v = conv.lin_value(x_src).view(-1, heads, d)
    q = None if conv.lin_att is None else _lin(conv.lin_att, x_dst).view(-1, heads, a)
    k = None if conv.lin_att_src is None else _lin(conv.lin_att_src, x_src).view(-1, heads, a)
    out = torch.zeros(num_dst, heads, d, dtype=x_src.dtype)
    alpha = torch.zeros(edge_index.size(1), heads, dtype=x_src.dtype)
    for i in range(num_dst):
        edges = [e for e in range(edge_index.size(1)) if int(edge_index[1, e]) == i]
        if not edges:
            continue
        for h in range(heads):
            scores = []
            for e in edges:
                j = int(edge_index[0, e])
                phi = edge_attr[e] if conv.edge_encoder is None else conv.edge_encoder(
                    edge_attr[e:e + 1])[0]
                if conv.score == 'center':
                    s = q[i, h] @ phi
                elif conv.score == 'neighbor':
                    s = k[j, h] @ phi
                else:
                    s = conv.att[h] @ torch.nn.functional.leaky_relu(
                        q[i, h] + k[j, h] + phi, conv.negative_slope)
                scores.append(s)
            scores = torch.stack(scores)
            w = torch.softmax(scores, 0) if conv.normalize == 'softmax' else scores.sigmoid()
            for weight, e in zip(w, edges):
                alpha[e, h] = weight
                scale = 1 if edge_mask is None else edge_mask[e]
                out[i, h] = out[i, h] + scale * weight * v[int(edge_index[0, e]), h]
    out = out.flatten(1) if conv.concat else out.mean(1)
    return (out if conv.act is None else conv.act(out)), alpha


def table_edges(table: Tensor) -> Tensor:
    """The ``(2, E)`` edges of an ``(N, K)`` table (``-1`` padding), by centre then
    column, duplicates kept: written as a loop, not with graphattn's converter."""
    edges = [(int(j), i) for i, row in enumerate(table.tolist()) for j in row if j >= 0]
    return torch.tensor(edges, dtype=torch.long).view(-1, 2).t().contiguous()

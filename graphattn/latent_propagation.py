"""Message passing over the visible/latent bipartite graph of LatentGNN.

The two layers here carry no parameters: they move features along the edges of
a :class:`graphs.LatentGraph` (``edge_index[0]`` visible, ``edge_index[1]``
latent), each message scaled by its edge weight :math:`\\psi_{ik}`.  They are the
general, inspectable form of LatentGNN's steps 3 and 5; :class:`graphattn.LatentGNN`
replaces them by batched matrix products when the bipartite graph is complete.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.utils import scatter

__all__ = ['VisibleToLatent', 'LatentToVisible', 'l2_normalize_edge_weight', 'inverse_norm']


def inverse_norm(sq: Tensor, eps: float = 1e-12) -> Tensor:
    r""":math:`1 / \max(\sqrt{s}, \epsilon)` of squared norms ``sq``.

    Clamping the square before the root gives the values of clamping the norm
    (the ``eps`` of :func:`torch.nn.functional.normalize`) with finite
    derivatives of every order where a norm is zero (an all-zero node, a latent
    node no edge reaches): there, the double backward of ``sqrt`` or
    ``linalg.vector_norm`` divides by the zero norm and gives NaN.
    """
    # eps^2 underflows in float16: never clamp below the dtype's smallest normal.
    return sq.clamp_min(max(eps * eps, torch.finfo(sq.dtype).tiny)).rsqrt()


def l2_normalize_edge_weight(edge_weight: Tensor, index: Tensor, num_nodes: int,
                             eps: float = 1e-12) -> Tensor:
    r"""Scale edge weights to unit L2 norm over the edges that share a node.

    .. math::
        \hat{\psi}_e = \frac{\psi_e}{\max\left(\sqrt{\sum_{e' : \,
        \mathrm{index}_{e'} = \mathrm{index}_e} \psi_{e'}^2}, \epsilon\right)}

    (the same clamp as :func:`torch.nn.functional.normalize`).
    """
    sq = scatter(edge_weight * edge_weight, index, dim=0, dim_size=num_nodes, reduce='sum')
    return edge_weight * inverse_norm(sq, eps).index_select(0, index)


class VisibleToLatent(MessagePassing):
    r"""Visible -> latent aggregation (LatentGNN step 3).

    .. math::
        \mathbf{z}_k = \sum_{i \,:\, (i, k) \in \mathcal{E}} \psi_{ik} \, \mathbf{x}_i

    Args:
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:** visible features :math:`(|\mathcal{V}|, F)`, edge indices
          :math:`(2, |\mathcal{E}|)` (row 0 visible, row 1 latent), edge weights
          :math:`(|\mathcal{E}|,)`, ``num_latent`` :math:`= |\mathcal{L}|`
        - **output:** latent features :math:`(|\mathcal{L}|, F)`
    """
    def __init__(self, **kwargs) -> None:
        kwargs.setdefault('aggr', 'add')
        super().__init__(**kwargs)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor,
                num_latent: int) -> Tensor:
        return self.propagate(edge_index, x=(x, None), edge_weight=edge_weight,
                              size=(x.size(0), num_latent))

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.unsqueeze(-1) * x_j


class LatentToVisible(MessagePassing):
    r"""Latent -> visible propagation (LatentGNN step 5).

    .. math::
        \tilde{\mathbf{x}}_i = \sum_{k \,:\, (i, k) \in \mathcal{E}} \psi_{ik} \,
        \tilde{\mathbf{z}}_k

    The edges are given in the visible -> latent orientation of
    :class:`graphs.LatentGraph`; messages flow against it
    (``flow='target_to_source'``).

    Args:
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:** latent features :math:`(|\mathcal{L}|, F)`, edge indices
          :math:`(2, |\mathcal{E}|)` (row 0 visible, row 1 latent), edge weights
          :math:`(|\mathcal{E}|,)`, ``num_visible`` :math:`= |\mathcal{V}|`
        - **output:** visible features :math:`(|\mathcal{V}|, F)`
    """
    def __init__(self, **kwargs) -> None:
        kwargs.setdefault('aggr', 'add')
        kwargs.setdefault('flow', 'target_to_source')
        super().__init__(**kwargs)

    def forward(self, z: Tensor, edge_index: Tensor, edge_weight: Tensor,
                num_visible: int) -> Tensor:
        return self.propagate(edge_index, x=z, edge_weight=edge_weight,
                              size=(num_visible, z.size(0)))

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.unsqueeze(-1) * x_j

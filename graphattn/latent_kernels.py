r"""The LatentGNN kernel (steps 2-5 of :class:`~graphattn.latentgnn_base.LatentGNNBase`)
as plain functions, with the pure-torch reference they are tested against.

One kernel takes the reduced visible features :math:`\mathbf{X}_v` and the raw
affinities (after the ReLU, before any normalisation) :math:`\Psi_v, \Psi_l`,
and returns :math:`\tilde{\mathbf{X}} = \Psi_l\, \mathbf{F}\, \Psi_v^{\top}
\mathbf{X}_v` per graph, with :math:`\Psi_v` L2-normalised over the visible
nodes of each latent node, :math:`\Psi_l` over the latent nodes of each visible
node, and :math:`\mathbf{F}` the softmax affinity of the latent nodes
(:func:`latent_mixing`). Two functions compute it:

* :func:`fused_latent_kernel`: batched matrix products on dense
  ``(B, n, *)`` blocks (complete bipartite graph; zero rows pad graphs of
  different sizes and never enter a norm or a softmax).
* :func:`message_passing_latent_kernel`: message passing over the edges of
  :func:`graphs.latent_edge_index` (complete, or top-:math:`m` sparse) with
  PyG's :class:`~torch_geometric.nn.conv.SimpleConv`, the weighted sum of
  neighbours. Those layers are internal (their edges are not the model's
  input graph), so they are built with ``explain=False``: PyG's explainers
  (:func:`torch_geometric.explain.algorithm.utils.set_masks`) skip them.

:func:`latent_kernel_reference` computes the same, graph by graph, from the
equations with :func:`torch.nn.functional.normalize` and dense masks.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn.conv import SimpleConv
from torch_geometric.utils import scatter

from graphs.latent import latent_edge_index

__all__ = ['EPS', 'LatentAssignment', 'inverse_norm', 'l2_normalize', 'l2_normalize_edge_weight',
           'latent_mixing', 'bipartite_convs', 'fused_latent_kernel',
           'message_passing_latent_kernel', 'latent_kernel_reference']

#: The clamp of the L2 norms, that of :func:`torch.nn.functional.normalize`.
EPS = 1e-12


class LatentAssignment(NamedTuple):
    r"""The bipartite weights of one LatentGNN kernel (``return_assignments=True``).

    Both edge indices use the :class:`graphs.LatentGraph` orientation
    (row 0 visible node, row 1 latent node ``b * d + k``).

    Fields: ``v2l_edge_index`` ``(2, E)``, the edges of step 3, and
    ``v2l_weight`` ``(E,)``, their normalised :math:`\hat{\Psi}_v` entries;
    ``l2v_edge_index`` ``(2, E')`` and ``l2v_weight`` ``(E',)``, the same for
    step 5 (:math:`\hat{\Psi}_l`); ``latent_adj`` ``(B, d, d)``, the
    latent-to-latent weights :math:`\mathbf{F}`.
    """
    v2l_edge_index: Tensor
    v2l_weight: Tensor
    l2v_edge_index: Tensor
    l2v_weight: Tensor
    latent_adj: Tensor


def inverse_norm(sq: Tensor, eps: float = EPS) -> Tensor:
    r""":math:`1 / \max(\sqrt{s}, \epsilon)` of squared norms ``sq``.

    Clamping the square before the root gives the values of clamping the norm
    (the ``eps`` of :func:`torch.nn.functional.normalize`) with finite
    derivatives of every order where a norm is zero (an all-zero node, a latent
    node no edge reaches): there, the double backward of ``sqrt`` or
    ``linalg.vector_norm`` divides by the zero norm and gives NaN.
    """
    # eps^2 underflows in float16: never clamp below the dtype's smallest normal.
    floor = max(eps * eps, torch.finfo(sq.dtype).tiny)
    if sq.dtype in (torch.float16, torch.bfloat16):
        # rsqrt's derivative at that floor (about -1e6 in float16) overflows, and the
        # clamp's zero gradient times inf is NaN at every all-zero row (fp16 autocast):
        # the root and its backward run in float32, the value is the same.
        return sq.float().clamp_min(floor).rsqrt().to(sq.dtype)
    return sq.clamp_min(floor).rsqrt()


def l2_normalize(x: Tensor, dim: int) -> Tensor:
    """:func:`torch.nn.functional.normalize` ``(x, dim=dim)``, twice differentiable
    at zero rows (see :func:`inverse_norm`)."""
    return x * inverse_norm(x.square().sum(dim=dim, keepdim=True))


def l2_normalize_edge_weight(edge_weight: Tensor, index: Tensor, num_nodes: int,
                             eps: float = EPS) -> Tensor:
    r"""Scale edge weights to unit L2 norm over the edges that share a node.

    .. math::
        \hat{\psi}_e = \frac{\psi_e}{\max\left(\sqrt{\sum_{e' : \,
        \mathrm{index}_{e'} = \mathrm{index}_e} \psi_{e'}^2}, \epsilon\right)}

    (the same clamp as :func:`torch.nn.functional.normalize`).
    """
    sq = scatter(edge_weight * edge_weight, index, dim=0, dim_size=num_nodes, reduce='sum')
    return edge_weight * inverse_norm(sq, eps).index_select(0, index)


def latent_mixing(z: Tensor) -> Tuple[Tensor, Tensor]:
    r"""Step 4 on ``(B, d, C')`` latent features: :math:`(\mathbf{F}\mathbf{Z},
    \mathbf{F})` with :math:`\mathbf{F} = \mathrm{softmax}_{\mathrm{row}}(\hat{\mathbf{Z}}
    \hat{\mathbf{Z}}^{\top})`, :math:`\hat{\mathbf{Z}}` the row-normalised :math:`\mathbf{Z}`."""
    zn = l2_normalize(z, -1)
    adj = torch.softmax(zn @ zn.transpose(1, 2), dim=-1)
    return adj @ z, adj


def bipartite_convs() -> Tuple[SimpleConv, SimpleConv]:
    """The parameter-free visible -> latent and latent -> visible layers of
    :func:`message_passing_latent_kernel`, hidden from PyG's explainers.

    Both send messages from ``edge_index[0]`` to ``edge_index[1]``: the first
    gets the :class:`graphs.LatentGraph` edges (row 0 visible, row 1 latent),
    the second the same edges flipped. (``flow='target_to_source'`` would save
    the flip, but PyG 2.8's generated ``propagate`` reads a bipartite input
    ``(x_src, x_dst)`` in the source-to-target order whatever the flow, and
    :class:`SimpleConv` turns a single tensor into such a pair, so the two
    sides would have to be equal in size.)
    """
    v2l = SimpleConv(aggr='sum')
    l2v = SimpleConv(aggr='sum')
    for conv in (v2l, l2v):
        # Their edges are built inside the layer, not the input graph: an edge
        # mask of the input graph does not apply to them (PyG's set_masks skips
        # layers whose explain is False).
        conv.explain = False
    return v2l, l2v


def fused_latent_kernel(xv: Tensor, psi_v: Tensor, psi_l: Tensor, *, symmetric: bool = False,
                        return_weights: bool = False
                        ) -> Tuple[Tensor, Tensor, Optional[Tuple[Tensor, Tensor]]]:
    r"""Steps 3-5 on dense blocks: :math:`\hat{\Psi}_l\, \mathbf{F}\, \hat{\Psi}_v^{\top}
    \mathbf{X}_v` per graph, by batched matrix products.

    The column norm of :math:`\Psi_v` is folded into :math:`\mathbf{Z}` (a
    ``(B, d)`` scale instead of a normalised ``(B, n, d)`` copy).

    Args:
        xv (Tensor): ``(B, n, C')`` visible features (zero rows pad graphs).
        psi_v (Tensor): ``(B, n, d)`` raw affinities :math:`\Psi_v`.
        psi_l (Tensor): ``(B, n, d)`` raw affinities :math:`\Psi_l`.
        symmetric (bool): ``psi_v`` and ``psi_l`` are the one :math:`\Psi`
            (pass it twice), row-normalised for both steps.
        return_weights (bool): also return the normalised
            :math:`(\hat{\Psi}_v, \hat{\Psi}_l)`, each ``(B, n, d)``.

    Returns:
        ``(out, adj, weights)``: ``(B, n, C')``, the ``(B, d, d)``
        :math:`\mathbf{F}`, and the weights or :obj:`None`.
    """
    pl = l2_normalize(psi_l, -1)                                    # over latent nodes
    if symmetric:
        z = pl.transpose(1, 2) @ xv                                 # (B, d, C')
        inv_col_norm = None
    else:
        inv_col_norm = inverse_norm(psi_v.square().sum(dim=1))      # (B, d)
        z = (psi_v.transpose(1, 2) @ xv) * inv_col_norm.unsqueeze(-1)
    z, adj = latent_mixing(z)
    out = pl @ z
    if not return_weights:
        return out, adj, None
    pv = pl if inv_col_norm is None else psi_v * inv_col_norm.unsqueeze(1)
    return out, adj, (pv, pl)


def message_passing_latent_kernel(xv: Tensor, psi_v: Tensor, psi_l: Tensor, batch: Tensor,
                                  num_graphs: int, *, v2l: SimpleConv, l2v: SimpleConv,
                                  symmetric: bool = False, top_m: Optional[int] = None
                                  ) -> Tuple[Tensor, LatentAssignment]:
    r"""Steps 3-5 by message passing over the latent bipartite graph.

    With ``top_m = m`` each visible node keeps its :math:`m` largest raw
    affinities in each direction (ranked before normalisation), and
    :math:`\Psi` is normalised over the kept edges.

    Args:
        xv (Tensor): ``(N, C')`` visible features.
        psi_v (Tensor): ``(N, d)`` raw :math:`\Psi_v`.
        psi_l (Tensor): ``(N, d)`` raw :math:`\Psi_l`.
        batch (LongTensor): ``(N,)`` sorted graph index of each node.
        num_graphs (int): :math:`B` (graphs without nodes allowed).
        v2l, l2v (SimpleConv): the layers of :func:`bipartite_convs`.
        symmetric (bool): ``psi_v`` and ``psi_l`` are the one :math:`\Psi`
            (pass it twice), row-normalised for both steps.
        top_m (int, optional): keep the top-:math:`m` latent nodes.

    Returns:
        ``(out, assignment)``: ``(N, C')`` and the :class:`LatentAssignment`.
    """
    n, d = psi_v.shape
    num_latent = num_graphs * d
    ei_v, w_v = latent_edge_index(batch, n, d, affinity=psi_v, top_m=top_m)
    assert w_v is not None
    if symmetric:
        w_v = l2_normalize_edge_weight(w_v, ei_v[0], n)
        ei_l, w_l = ei_v, w_v
    else:
        w_v = l2_normalize_edge_weight(w_v, ei_v[1], num_latent)
        ei_l, w_l = latent_edge_index(batch, n, d, affinity=psi_l, top_m=top_m)
        assert w_l is not None
        w_l = l2_normalize_edge_weight(w_l, ei_l[0], n)
    z = v2l((xv, None), ei_v, w_v, size=(n, num_latent))
    z, adj = latent_mixing(z.view(num_graphs, d, -1))
    out = l2v((z.reshape(num_latent, -1), None), ei_l.flip(0), w_l, size=(num_latent, n))
    return out, LatentAssignment(ei_v, w_v, ei_l, w_l, adj)


def latent_kernel_reference(xv: Tensor, psi_v: Tensor, psi_l: Tensor, batch: Tensor, *,
                            symmetric: bool = False, top_m: Optional[int] = None) -> Tensor:
    r"""The kernel's output ``(N, C')``, graph by graph, from the equations:
    dense top-:math:`m` masks, :func:`torch.nn.functional.normalize`, plain
    products (``symmetric=True`` reads ``psi_v`` only). For tests (a Python
    loop over graphs)."""
    rows = []
    for b in range(int(batch.max()) + 1 if batch.numel() else 0):
        sel = batch == b
        if not bool(sel.any()):
            continue
        x = xv[sel]
        p = psi_v[sel]
        q = p if symmetric else psi_l[sel]
        if top_m is not None:
            p = p * torch.zeros_like(p).scatter_(1, p.topk(top_m, 1).indices, 1.0)
            q = q * torch.zeros_like(q).scatter_(1, q.topk(top_m, 1).indices, 1.0)
        q = F.normalize(q, dim=1)
        p = q if symmetric else F.normalize(p, dim=0)
        z = p.t() @ x
        zn = F.normalize(z, dim=1)
        rows.append(q @ (torch.softmax(zn @ zn.t(), dim=1) @ z))
    return torch.cat(rows) if rows else xv.new_zeros(xv.shape)

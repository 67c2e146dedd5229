"""One layer of Latent Graph Attention (LGA): the one place where a layer's maths lives."""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Module, Parameter
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.nn.dense.linear import Linear, is_uninitialized_parameter
from torch_geometric.nn.inits import glorot, reset
from torch_geometric.nn.resolver import activation_resolver

from graphs.grid import grid_edges
from graphs.point_graphs import neighbors_to_edge_index
from graphs.validation import check_positive_int

from ._checks import LGA_PATHS, check_choice, check_features, check_flag, check_path
from ._repr import non_default_options
from .adjacency import with_edge_values
from .compiled_grid_attention import compiled_grid_attention
from .compiled_neighbor_attention import compiled_neighbor_attention
from .grid_attention import grid_attention, grid_scores
from .grouped_linear import GroupedLinear
from .lga_graph import GridSpec, LGAGraph, prepare_graph
from .lga_scores import NORMALIZATIONS, SCORES, edge_scores, normalize_dense, normalize_edges
from .neighbor_attention import default_chunk_size, neighbor_scores, neighbor_weighted_sum

__all__ = ['LGAConv', 'EDGE_ENCODERS']

#: The named edge encoders :math:`\phi` (a custom ``torch.nn.Module`` also works).
EDGE_ENCODERS = ('identity', 'mlp')

PairTensor = Tuple[Tensor, Tensor]


def _resolve_act(act: Union[str, Callable, None], act_kwargs: Optional[dict]) -> Optional[Callable]:
    if act is None:
        return None
    try:
        return activation_resolver(act, **(act_kwargs or {}))
    except ValueError as err:
        raise ValueError(f"'act' is not a known activation (got {act!r})") from err


def _in_pair(in_channels: Any) -> Tuple[int, int]:
    pair = tuple(in_channels) if isinstance(in_channels, (tuple, list)) else (
        in_channels, in_channels)
    if len(pair) != 2 or not all(isinstance(c, int) and not isinstance(c, bool)
                                 and (c >= 1 or c == -1) for c in pair):
        raise ValueError("'in_channels' must be a positive int, -1, or a pair of them "
                         f"(got {in_channels!r})")
    return pair[0], pair[1]


def _edge_encoder(edge_encoder: Union[str, Module], edge_dim: int,
                  att_channels: Optional[int]) -> Tuple[Optional[Module], int]:
    if isinstance(edge_encoder, Module):
        if att_channels is None:
            raise ValueError("'att_channels' is required with a custom 'edge_encoder'")
        return edge_encoder, check_positive_int('att_channels', att_channels)
    if not isinstance(edge_encoder, str) or edge_encoder not in EDGE_ENCODERS:
        raise (ValueError if isinstance(edge_encoder, str) else TypeError)(
            f"'edge_encoder' must be one of {EDGE_ENCODERS} or a torch.nn.Module "
            f"(got {edge_encoder!r})")
    if att_channels is None:
        att_channels = edge_dim if edge_encoder == 'identity' else 32
    check_positive_int('att_channels', att_channels)
    if edge_encoder == 'identity':
        if att_channels != edge_dim:
            raise ValueError(f"'att_channels' ({att_channels}) must equal 'edge_dim' "
                             f"({edge_dim}) with edge_encoder='identity'")
        return None, att_channels
    return torch.nn.Sequential(Linear(edge_dim, att_channels), torch.nn.ReLU(),
                               Linear(att_channels, att_channels)), att_channels


class LGAConv(MessagePassing):
    r"""One layer of the Latent Graph Attention (LGA) operator from the
    `"Latent Graph Attention for Enhanced Spatial Context"
    <https://arxiv.org/abs/2307.04149>`_ paper (Singh et al.), for any graph:
    the 8-neighbour grid of a feature map or a k-nearest-neighbour graph of a
    point cloud.

    .. math::
        \mathbf{h}^{\prime}_i = \sigma\Big(\big\Vert_{h=1}^{H}
        \sum_{j \in \mathcal{N}(i)} \alpha^h_{i,j}\, \mathbf{V}^h \mathbf{h}_j\Big),
        \qquad
        \alpha^h_{i,j} = \operatorname{softmax}_{j \in \mathcal{N}(i)}
        \big(s^h_{i,j}\big),

    with the heads :math:`h` concatenated (``concat=True``) or averaged, and
    the edge score :math:`s^h_{i,j}` of the edge :math:`j \to i` in one of
    three readings (``score``):

    .. math::
        \text{center:}\quad s^h_{i,j} &= \big(\mathbf{W}^h_a \mathbf{h}_i +
        \mathbf{b}^h_a\big)^{\top} \phi(\mathbf{e}_{i,j}) \\
        \text{neighbor:}\quad s^h_{i,j} &= \big(\mathbf{W}^h_n \mathbf{h}_j +
        \mathbf{b}^h_n\big)^{\top} \phi(\mathbf{e}_{i,j}) \\
        \text{pair:}\quad s^h_{i,j} &= \mathbf{a}^{h\top} \mathrm{LeakyReLU}\big(
        \mathbf{W}^h_a \mathbf{h}_i + \mathbf{b}^h_a + \mathbf{W}^h_n \mathbf{h}_j
        + \mathbf{b}^h_n + \phi(\mathbf{e}_{i,j})\big)

    :math:`\mathbf{e}_{i,j}` is the edge attribute. On a grid it is the
    one-hot of the neighbour's direction :math:`t` and :math:`\phi` the
    identity, so each reading is a set of per-direction 1x1 convolutions (the
    paper's "9 x N" edge weights): ``'center'`` applies direction :math:`t`'s
    convolution to the centre pixel (the score is a 3x3 filter predicted from
    the centre alone), ``'neighbor'`` applies it to the neighbour at direction
    :math:`t` (the score compares content across the edge), ``'pair'`` sees
    both ends and the direction, as GATv2's scoring function does. On a point
    cloud :math:`\mathbf{e}_{i,j}` is the relative position
    :math:`\mathbf{p}_j - \mathbf{p}_i` and :math:`\phi` a small learned
    encoder (``edge_encoder='mlp'``: Linear-ReLU-Linear to ``att_channels``).
    With ``normalize='sigmoid'`` the weights are
    :math:`\alpha^h_{i,j} = \mathrm{sigmoid}(s^h_{i,j})`, not summing to one.

    The paper's equations are not available to us: the score readings, the
    value map :math:`\mathbf{V}` (grouped with ``groups > 1``, the paper's
    group convolution variant), the heads, the activation :math:`\sigma` and
    the point-cloud encoder are our reading of its text; ``score='center'``
    with one head is the reading of graphattn 0.1 (its state dicts load
    unchanged). Neighbourhoods come from the graph: add self-loops when
    building it (``grid`` graphs have them; ``knn_graph(..., loop=True)``);
    the layer never edits the graph.

    **Graph forms and paths.** ``forward`` takes the graph in any of PyG's
    forms and runs the matching kernel; every form gives the same function
    (tested against brute-force loops, values and gradients):

    * ``edge_index`` ``(2, E)``, an ``EdgeIndex`` or a transposed sparse
      adjacency ``adj_t``: message passing (``path='message_passing'``);
    * ``neighbors=`` an ``(N, K)`` table (``-1`` padding; e.g.
      :func:`graphs.nearest_neighbors`): the memory-lean table kernel of
      :mod:`graphattn.neighbor_attention` (``'fused'``), or its normalisation
      and weighted sum compiled by ``torch.compile`` into one fused loop per
      pass, with no ``(N, K, C)`` tensor (``'compiled'``,
      :mod:`graphattn.compiled_neighbor_attention`: meant for GPUs, where the
      eager kernel gathers such blocks; the first call per shape compiles);
    * ``grid=(H, W)`` with ``x`` of shape ``(B, H*W, C)``: the shifted-sum
      kernel of :mod:`graphattn.grid_attention` (``'fused'``), or the same
      maths compiled by ``torch.compile`` into one fused loop per pass
      (``'compiled'``, :mod:`graphattn.compiled_grid_attention`: several
      times faster once compiled; the first call per input shape compiles).

    ``path='auto'`` picks the (eager) fused kernel for a table or a grid;
    ``'message_passing'`` runs a table or a grid through their edge list.

    **Explainers.** Under PyG's explainers (e.g.
    :class:`~torch_geometric.explain.algorithm.GNNExplainer`) an edge mask
    :math:`m_{i,j}` scales each message after the normalisation,
    :math:`\sum_j \alpha^h_{i,j} m_{i,j} \mathbf{V}^h \mathbf{x}_j` (the
    returned weights stay unmasked). Only ``edge_index`` has the edges such a
    mask lists: in explain mode a table or a grid raises a ``ValueError``.
    :class:`~graphattn.LGA2d` builds its grid inside and is hidden from
    explainers (its layers' ``explain`` is :obj:`False`).

    Args:
        in_channels (int or tuple): Size of each input sample, or :obj:`-1` to
            derive it from the first input (only with ``groups=1``). A tuple
            gives the source and target sizes of a bipartite graph.
        out_channels (int): Size of each output sample per head.
        edge_dim (int): Width of ``edge_attr`` (9 for the 3x3 grid stencil,
            the space dimension for relative positions).
        heads (int, optional): Number of attention heads :math:`H`.
            (default: :obj:`1`)
        concat (bool, optional): Concatenate the heads (output
            ``heads * out_channels``) or average them (``out_channels``).
            (default: :obj:`True`)
        score (str, optional): The edge-score reading, ``'center'``,
            ``'neighbor'`` or ``'pair'``. (default: :obj:`'center'`)
        att_channels (int, optional): Width :math:`A` of the score terms per
            head. Must equal ``edge_dim`` with ``edge_encoder='identity'``.
            (default: ``edge_dim`` for ``'identity'``, else :obj:`32`)
        edge_encoder (str or torch.nn.Module, optional): :math:`\phi`:
            ``'identity'``, ``'mlp'`` (Linear(edge_dim, A)-ReLU-Linear(A, A)),
            or a module mapping ``(|E|, edge_dim)`` to ``(|E|, A)``; shared
            by the heads. :obj:`None` is the identity for one-hot or given
            edge attributes, and an error for relative positions computed
            from ``pos`` (the score would be linear in the offset): pass
            ``'mlp'``, or ``'identity'`` by name to keep it.
            (default: :obj:`None`)
        normalize (str, optional): ``'softmax'`` over each neighbourhood or
            ``'sigmoid'`` per edge. (default: :obj:`'softmax'`)
        groups (int, optional): Groups of the value map :math:`\mathbf{V}`.
            (default: :obj:`1`)
        act (str or Callable, optional): The activation :math:`\sigma`, or
            :obj:`None` for none. (default: :obj:`'relu'`)
        act_kwargs (dict, optional): Arguments of ``act``. (default: :obj:`None`)
        negative_slope (float, optional): LeakyReLU slope of ``score='pair'``.
            (default: :obj:`0.2`)
        bias (bool, optional): Learn the biases of the score terms and of
            :math:`\mathbf{V}`. (default: :obj:`True`)
        chunk_size (int, optional): Centre nodes per chunk of the table
            kernel; :obj:`None` sizes chunks so that a chunk's
            ``(n, K, C)`` block stays near 8 MB. (default: :obj:`None`)
        path (str, optional): ``'auto'``, ``'fused'``, ``'compiled'`` (grids
            and tables) or ``'message_passing'``; ``forward`` can override it.
            (default: :obj:`'auto'`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:**
          node features :math:`(|\mathcal{V}|, F_{in})`, or
          :math:`(B, |\mathcal{V}|, F_{in})` for ``B`` graphs sharing one
          topology, or a pair for bipartite graphs;
          edge indices :math:`(2, |\mathcal{E}|)` (or ``adj_t``, ``neighbors``
          :math:`(|\mathcal{V}|, K)`, ``grid`` :math:`(H, W)`);
          edge features :math:`(|\mathcal{E}|, D)` (table:
          :math:`(|\mathcal{V}|, K, D)`), or ``pos`` :math:`(|\mathcal{V}|, D)`
          from which ``edge_attr = pos[j] - pos[i]`` is computed
        - **output:** node features :math:`(|\mathcal{V}_t|, H F_{out})`
          (:math:`F_{out}` with ``concat=False``; batched inputs keep their
          leading ``B``); with ``return_attention_weights=True`` also
          ``(edge_index, alpha)``, ``alpha`` of shape
          :math:`(|\mathcal{E}|, H)` (or :math:`(B, |\mathcal{E}|, H)`), as
          :class:`~torch_geometric.nn.conv.GATConv` returns them: for an
          ``adj_t`` input a sparse adjacency carrying the weights
          (``SparseTensor``) or ``(adj, alpha)`` (``torch.sparse``); for a
          table or a grid the edges of
          :func:`graphs.neighbors_to_edge_index` / :func:`graphs.grid_edges`
    """

    def __init__(self, in_channels: Union[int, Tuple[int, int]], out_channels: int,
                 edge_dim: int, *, heads: int = 1, concat: bool = True,
                 score: str = 'center', att_channels: Optional[int] = None,
                 edge_encoder: Union[str, Module, None] = None, normalize: str = 'softmax',
                 groups: int = 1, act: Union[str, Callable, None] = 'relu',
                 act_kwargs: Optional[dict] = None, negative_slope: float = 0.2,
                 bias: bool = True, chunk_size: Optional[int] = None, path: str = 'auto',
                 **kwargs: Any) -> None:
        kwargs.setdefault('aggr', 'add')
        super().__init__(**kwargs)
        in_src, in_dst = _in_pair(in_channels)
        check_positive_int('out_channels', out_channels)
        check_positive_int('edge_dim', edge_dim)
        check_positive_int('heads', heads)
        check_positive_int('groups', groups)
        check_flag('concat', concat)
        check_choice('score', score, SCORES)
        check_choice('normalize', normalize, NORMALIZATIONS)
        # None: the identity, refused on relative positions (a score linear in the
        # offset) unless 'identity' is asked for by name.
        self.identity_explicit = edge_encoder == 'identity'
        encoder, att_channels = _edge_encoder(
            'identity' if edge_encoder is None else edge_encoder, edge_dim, att_channels)

        self.in_channels = in_channels
        self.out_channels = out_channels
        self.edge_dim = edge_dim
        self.heads = heads
        self.concat = concat
        self.score = score
        self.att_channels = att_channels
        self.normalize = normalize
        self.groups = groups
        self.negative_slope = float(negative_slope)
        self.edge_encoder = encoder
        self.act = _resolve_act(act, act_kwargs)
        self.chunk_size = None if chunk_size is None else check_positive_int(
            'chunk_size', chunk_size)
        self.path = check_path(path, LGA_PATHS)

        width = heads * att_channels
        # W_a: the centre's score term; W_n: the neighbour's (per head, A wide).
        self.lin_att = (Linear(in_dst, width, bias=bias)
                        if score in ('center', 'pair') else None)
        self.lin_att_src = (Linear(in_src, width, bias=bias)
                            if score in ('neighbor', 'pair') else None)
        self.att = Parameter(torch.empty(heads, att_channels)) if score == 'pair' else None
        # V: the value map, a (grouped) 1x1 convolution to every head's channels.
        if groups == 1:
            self.lin_value: Module = Linear(in_src, heads * out_channels, bias=bias)
        else:
            if in_src == -1:
                raise ValueError("'in_channels' must be given (not -1) when 'groups' > 1")
            self.lin_value = GroupedLinear(in_src, heads * out_channels, groups, bias=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for lin in (self.lin_att, self.lin_att_src, self.lin_value):
            if lin is not None:
                lin.reset_parameters()
        if self.att is not None:
            glorot(self.att)
        if self.edge_encoder is not None:
            reset(self.edge_encoder)

    # ------------------------------------------------------------------ inputs
    def _check_features(self, x_src: Any, x_dst: Any) -> None:
        ins = _in_pair(self.in_channels)
        ref = next(lin.weight for lin in (self.lin_att, self.lin_value) if lin is not None)
        dtype = None if is_uninitialized_parameter(ref) else ref.dtype
        if x_dst is None and self.lin_att is not None:
            raise ValueError(f"score={self.score!r} reads the target nodes' features (the "
                             "centre term W_a h_i): pass x=(x_src, x_dst), or use "
                             "score='neighbor', which reads the sources only")
        for t, c, may_be_none in ((x_src, ins[0], False), (x_dst, ins[1], True)):
            if t is None and may_be_none:
                continue
            shape = '?' if c == -1 else c
            check_features('x', t, c, (f'(N, {shape})', f'(B, N, {shape})'), (2, 3), dtype)

    def prepare(self, x: Union[Tensor, PairTensor], edge_index: Any = None,
                edge_attr: Optional[Tensor] = None, size: Optional[Tuple[int, int]] = None,
                *, pos: Union[Tensor, PairTensor, None] = None, neighbors: Any = None,
                grid: Optional[GridSpec] = None, path: Optional[str] = None) -> LGAGraph:
        """Validate ``x`` and one graph form, once: the returned
        :class:`~graphattn.lga_graph.LGAGraph` can be passed as ``edge_index`` to
        this and every other layer of the same ``edge_dim`` (a stack checks its
        input once, not per layer). ``x`` may be ``(x_src, None)`` (targets without
        features) with ``score='neighbor'``."""
        x_src, x_dst = (x, x) if isinstance(x, Tensor) else x
        self._check_features(x_src, x_dst)
        graph = prepare_graph(x_src, x_dst, edge_index, edge_attr, size, pos, neighbors, grid,
                              edge_dim=self.edge_dim, path=self.path if path is None else path,
                              flow=self.flow)
        if graph.relative and self.edge_encoder is None and not self.identity_explicit:
            raise ValueError("relative positions from 'pos' need a learned edge encoder: "
                             "with the identity the attention score is linear in the offset "
                             "pos[j] - pos[i]. Build the layer with edge_encoder='mlp' (e.g. "
                             "LGA.for_points(...)), or pass edge_encoder='identity' by name "
                             "to keep the linear score")
        return graph

    # ----------------------------------------------------------------- forward
    def forward(self, x: Union[Tensor, PairTensor], edge_index: Any = None,
                edge_attr: Optional[Tensor] = None, size: Optional[Tuple[int, int]] = None,
                return_attention_weights: bool = False, *,
                pos: Union[Tensor, PairTensor, None] = None, neighbors: Optional[Tensor] = None,
                grid: Optional[GridSpec] = None, path: Optional[str] = None) -> Any:
        r"""Runs the layer.

        Args:
            x (Tensor or (Tensor, Tensor)): Node features ``(N, C)`` or
                ``(B, N, C)`` (``B`` graphs with the same topology), or a
                bipartite pair ``(x_src, x_dst)``; ``x_dst`` may be :obj:`None`
                with ``score='neighbor'`` (as in
                :class:`~torch_geometric.nn.conv.GATConv`: the number of
                targets comes from ``size``, the table or the edges).
            edge_index (Tensor, SparseTensor or LGAGraph, optional): ``(2, E)``,
                row 0 the neighbours ``j``, row 1 the centres ``i``; or a
                transposed sparse adjacency ``adj_t`` (entry ``(i, j)`` = edge
                ``j -> i``) whose 2-D values, if any, serve as ``edge_attr``;
                or a graph from :meth:`prepare`. :obj:`None` with
                ``neighbors`` or ``grid``.
            edge_attr (Tensor, optional): ``(E, edge_dim)`` (``(N, K,
                edge_dim)`` with ``neighbors``). Required unless ``pos`` is
                given or the graph is a grid.
            size ((int, int), optional): Numbers of source and target nodes.
            return_attention_weights (bool, optional): Also return the
                attention weights (see Shapes). (default: :obj:`False`)
            pos (Tensor, optional): Node positions ``(N, D)``, or ``(B, N, D)``
                with ``x`` ``(B, N, C)`` (one set per sample); when
                ``edge_attr`` is :obj:`None` it is ``pos[j] - pos[i]``.
            neighbors (LongTensor, optional): The graph as an ``(N, K)``
                neighbour table (row ``i``: the neighbours of centre ``i``,
                ``-1`` padding).
            grid ((int, int), optional): The graph as an ``H x W`` grid
                (``(H, W)`` or ``(H, W, offsets)``, default stencil: 8
                neighbours and self), ``x`` holding the pixels row-major.
            path (str, optional): Overrides the constructor's ``path``.
        """
        x_src, x_dst = (x, x) if isinstance(x, Tensor) else x
        graph = edge_index if isinstance(edge_index, LGAGraph) else self.prepare(
            x, edge_index, edge_attr, size, pos=pos, neighbors=neighbors, grid=grid, path=path)
        if self.explain and graph.form != 'edges':
            raise ValueError(self._explain_needs_edges(graph.form))
        squeeze = x_src.dim() == 2
        fused_relu = graph.compiled and self._relu_fusable()
        if graph.form == 'grid':
            out, alpha = self._grid(x_src.unsqueeze(0) if squeeze else x_src, graph, fused_relu)
        elif graph.form == 'table':
            out, alpha = self._table(x_src.unsqueeze(0) if squeeze else x_src,
                                     x_dst.unsqueeze(0) if squeeze and x_dst is not None
                                     else x_dst, graph, fused_relu)
        else:
            out, alpha = self._message_passing(x_src, x_dst, graph)
            squeeze = False
        if squeeze:
            out, alpha = out.squeeze(0), alpha.squeeze(0)
        out = out.flatten(-2) if self.concat else out.mean(dim=-2)
        if self.act is not None and not fused_relu:
            out = self.act(out)
        if return_attention_weights:
            return out, self._attention(graph, alpha)
        return out

    # ---------------------------------------------------------------- kernels
    def _split(self, t: Tensor, width: int) -> Tensor:
        """``(..., heads * width)`` -> ``(..., heads, width)``."""
        return t.view(*t.shape[:-1], self.heads, width)

    def _terms(self, x_src: Tensor, x_dst: Optional[Tensor]
               ) -> Tuple[Optional[Tensor], Optional[Tensor], Tensor]:
        a = self.att_channels
        q = None if self.lin_att is None else self._split(self.lin_att(x_dst), a)
        k = None if self.lin_att_src is None else self._split(self.lin_att_src(x_src), a)
        return q, k, self._split(self.lin_value(x_src), self.out_channels)

    def _phi(self, edge_attr: Tensor) -> Tensor:
        r""":math:`\phi(\mathbf{e})`, shape ``(..., att_channels)``."""
        return edge_attr if self.edge_encoder is None else self.edge_encoder(edge_attr)

    @staticmethod
    def _explain_needs_edges(form: str) -> str:
        """Why a layer in PyG's explain mode refuses a neighbour table or a grid."""
        given = "a neighbour table ('neighbors')" if form == 'table' else "a grid ('grid')"
        return (f"this LGAConv is in explain mode (a PyG explainer set an edge mask over the "
                f"edges of 'edge_index'), but it was called on {given}, which has no edge "
                f"list for that mask to scale, so the explanation would silently leave it "
                f"out: pass the graph as 'edge_index' while explaining, or hide this layer "
                f"from explainers with conv.explain = False")

    def _relu_fusable(self) -> bool:
        """Whether the activation is a ReLU applied straight to the sum, so
        that a compiled kernel (grid or table) can apply it in its own loop."""
        return isinstance(self.act, torch.nn.ReLU) and (self.concat or self.heads == 1)

    def _grid(self, x: Tensor, graph: LGAGraph, relu: bool = False) -> Tuple[Tensor, Tensor]:
        b, height, width = x.size(0), graph.height, graph.width
        q, k, v = self._terms(x, x)
        as_map = lambda t: None if t is None else t.view(b, height, width, *t.shape[-2:])  # noqa
        eye = torch.eye(len(graph.offsets), dtype=v.dtype, device=v.device)
        scores = grid_scores(self.score, as_map(q), as_map(k), self._phi(eye), graph.offsets,
                             self.att, self.negative_slope)
        if graph.compiled:
            out, alpha = compiled_grid_attention(scores, as_map(v), graph.offsets,
                                                 self.normalize, relu)
        else:
            out, alpha = grid_attention(scores, as_map(v), graph.offsets, self.normalize)
        return out.view(b, height * width, *out.shape[-2:]), alpha

    def _table(self, x_src: Tensor, x_dst: Optional[Tensor], graph: LGAGraph,
               relu: bool = False) -> Tuple[Tensor, Tensor]:
        q, k, v = self._terms(x_src, x_dst)
        table = graph.neighbors
        chunk = self.chunk_size or default_chunk_size(
            table.size(0), table.size(1), self.heads * max(self.out_channels, self.att_channels))
        edge_attr = graph.edge_attr
        scores = neighbor_scores(self.score, q, k, table, self.edge_encoder, chunk,
                                 edge_attr=None if edge_attr is None else edge_attr.to(v.dtype),
                                 pos_src=graph.pos_src, pos_dst=graph.pos_dst, att=self.att,
                                 negative_slope=self.negative_slope)
        if graph.compiled:
            return compiled_neighbor_attention(scores, v, table, self.normalize, relu)
        valid = (table >= 0).view(1, table.size(0), 1, table.size(1))
        alpha = normalize_dense(scores, valid, self.normalize)         # (B, N, G, K)
        return neighbor_weighted_sum(alpha, v, table, chunk), alpha

    def _message_passing(self, x_src: Tensor, x_dst: Optional[Tensor], graph: LGAGraph
                         ) -> Tuple[Tensor, Tensor]:
        # prepare_graph sets graph.size whenever x_dst is None.
        size = graph.size if graph.size is not None else (x_src.size(-2), x_dst.size(-2))
        q = None if self.lin_att is None else self.lin_att(x_dst)
        k = None if self.lin_att_src is None else self.lin_att_src(x_src)
        v = self.lin_value(x_src)
        e = self._phi(graph.edge_attr.to(v.dtype)).unsqueeze(-2)       # (E, 1, A)
        alpha = self.edge_updater(graph.edge_index, q=(None, q), k=(k, None), e=e, size=size)
        out = self.propagate(graph.edge_index, v=(v, None), alpha=alpha, size=size)
        return self._split(out, self.out_channels), alpha

    def edge_update(self, q_i: Optional[Tensor], k_j: Optional[Tensor], e: Tensor,
                    index: Tensor, ptr: Optional[Tensor], size_i: Optional[int]) -> Tensor:
        # Terms arrive flat, (..., E, heads * A), so that the edge dim stays at -2
        # (PyG's node_dim) in both the (N, C) and the batched (B, N, C) layouts.
        a = self.att_channels
        q_i = None if q_i is None else self._split(q_i, a)
        k_j = None if k_j is None else self._split(k_j, a)
        s = edge_scores(self.score, q_i, k_j, e, self.att, self.negative_slope)
        return normalize_edges(s, index, ptr, size_i, self.normalize)   # (..., E, heads)

    def message(self, v_j: Tensor, alpha: Tensor) -> Tensor:
        v = self._split(v_j, self.out_channels)
        return (alpha.unsqueeze(-1) * v).flatten(-2)

    # ------------------------------------------------------------ attention
    def _attention(self, graph: LGAGraph, alpha: Tensor) -> Any:
        if graph.form == 'table':  # (.., N, G, K) -> the valid entries, by centre then column
            table = graph.neighbors
            valid = table >= 0
            return neighbors_to_edge_index(table), alpha.transpose(-1, -2)[..., valid, :]
        if graph.form == 'grid':   # (.., H, W, G, S) -> per edge of grid_edges
            edge_index, direction = grid_edges(graph.height, graph.width, graph.offsets,
                                               alpha.device)
            flat = alpha.flatten(-4, -3).transpose(-1, -2)             # (.., H*W, S, G)
            return edge_index, flat[..., edge_index[1], direction, :]
        adj = graph.adjacency
        if adj is None:
            return graph.edge_index, alpha
        if isinstance(adj, Tensor):  # torch.sparse: as GATConv, (adj with weights, alpha)
            return with_edge_values(adj, alpha), alpha
        return with_edge_values(adj, alpha)  # torch_sparse.SparseTensor, as GATConv

    def __repr__(self) -> str:
        encoder = ('identity' if self.edge_encoder is None else
                   'mlp' if isinstance(self.edge_encoder, torch.nn.Sequential) else 'custom')
        extra = non_default_options(
            heads=(self.heads, 1), concat=(self.concat, True), score=(self.score, 'center'),
            att_channels=(self.att_channels, self.edge_dim if encoder == 'identity' else 32),
            edge_encoder=(encoder, 'identity'), normalize=(self.normalize, 'softmax'),
            groups=(self.groups, 1), chunk_size=(self.chunk_size, None),
            path=(self.path, 'auto'))
        return (f'{self.__class__.__name__}({self.in_channels}, {self.out_channels}, '
                f'edge_dim={self.edge_dim}{extra})')

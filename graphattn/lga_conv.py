"""One layer of Latent Graph Attention (LGA) as a PyG message-passing operator."""
from __future__ import annotations

import math
from typing import Any, Callable, Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Module, Parameter
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.nn.dense.linear import Linear, is_uninitialized_parameter
from torch_geometric.nn.inits import reset
from torch_geometric.nn.resolver import activation_resolver
from torch_geometric.utils import softmax

from graphs import neighbors_to_edge_index, relative_positions
from graphs.adjacency import adjacency_to_edge_index, is_sparse_adjacency
from graphs.validation import check_dtype
from graphs.validation import check_positive_int as _check_int

from .neighbor_attention import (default_chunk_size, neighbor_logits, neighbor_softmax,
                                 neighbor_weighted_sum)

__all__ = ['LGAConv', 'GroupedLinear', 'relative_positions', 'NORMALIZATIONS',
           'non_default_options']

#: The attention normalisations :class:`LGAConv` accepts.
NORMALIZATIONS = ('softmax', 'sigmoid')

PairTensor = Tuple[Tensor, Tensor]


def _check_normalize(normalize: Any) -> str:
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"'normalize' must be one of {NORMALIZATIONS} (got {normalize!r})")
    return normalize


def _resolve_act(act: Union[str, Callable, None], act_kwargs: Optional[dict]) -> Optional[Callable]:
    if act is None:
        return None
    try:
        return activation_resolver(act, **(act_kwargs or {}))
    except ValueError as err:
        raise ValueError(f"'act' is not a known activation (got {act!r})") from err


def non_default_options(**options: Tuple[Any, Any]) -> str:
    """``', name=value'`` for every option whose value differs from its default, for reprs."""
    return ''.join(f', {name}={value!r}' for name, (value, default) in options.items()
                   if value != default)


class GroupedLinear(Module):
    r"""A linear map with block-diagonal weights (a grouped 1x1 convolution).

    Channels are split into ``groups`` contiguous groups; group ``g`` of the
    output depends only on group ``g`` of the input, exactly like
    :class:`torch.nn.Conv2d` with ``groups=groups`` and a 1x1 kernel. The
    weight is stored with shape ``(out_channels, in_channels // groups)``, the
    layout of that convolution's weight without the two unit dimensions.
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int = 1,
                 bias: bool = True) -> None:
        super().__init__()
        _check_int('in_channels', in_channels)
        _check_int('out_channels', out_channels)
        _check_int('groups', groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"'groups' ({groups}) must divide both in_channels "
                             f"({in_channels}) and out_channels ({out_channels})")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.weight = Parameter(torch.empty(out_channels, in_channels // groups))
        self.bias = Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # The initialisation of torch.nn.Conv2d with the same shapes.
        fan_in = self.in_channels // self.groups
        torch.nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(fan_in)
            torch.nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        g = self.groups
        xs = x.reshape(*x.shape[:-1], g, self.in_channels // g)
        w = self.weight.view(g, self.out_channels // g, self.in_channels // g)
        out = torch.einsum('...gi,goi->...go', xs, w).reshape(*x.shape[:-1], self.out_channels)
        if self.bias is not None:
            out = out + self.bias
        return out

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, {self.out_channels}, '
                f'groups={self.groups})')


class LGAConv(MessagePassing):
    r"""One layer of the Latent Graph Attention (LGA) operator from the
    `"Latent Graph Attention for Enhanced Spatial Context"
    <https://arxiv.org/abs/2307.04149>`_ paper (Singh et al.), for any graph:
    the 8-neighbour grid of a feature map or a k-nearest-neighbour graph of a
    point cloud.

    .. math::
        \mathbf{h}^{\prime}_i = \sigma\Big(\sum_{j \in \mathcal{N}(i)}
        \alpha_{i,j}\, \mathbf{V} \mathbf{h}_j\Big),
        \qquad
        \alpha_{i,j} = \operatorname{softmax}_{j \in \mathcal{N}(i)}
        \big(s_{i,j}\big),
        \qquad
        s_{i,j} = \big(\mathbf{W}_a \mathbf{h}_i + \mathbf{b}_a\big)^{\top}
        \phi(\mathbf{e}_{i,j}),

    where :math:`\mathbf{e}_{i,j}` is the edge attribute of the edge
    :math:`j \to i`. On a grid (:func:`graphs.grid_graph`) it is the one-hot of
    the neighbour's direction and :math:`\phi` is the identity, so
    :math:`\mathbf{W}_a` has one output per direction: these are the paper's
    per-direction 1x1 convolutions ("9 x N" edge weights). On a point cloud it
    is the relative position :math:`\mathbf{p}_j - \mathbf{p}_i` and
    :math:`\phi` a small learned encoder (``edge_encoder='mlp'``:
    Linear-ReLU-Linear to ``att_channels``). With ``normalize='sigmoid'`` the
    weights are :math:`\alpha_{i,j} = \mathrm{sigmoid}(s_{i,j})`, not summing
    to one.

    The paper's equations are not available to us: the logit form, the value
    map :math:`\mathbf{V}` (grouped with ``groups > 1``, the paper's group
    convolution variant), the activation :math:`\sigma` and the point-cloud
    encoder are our reading of its text. Neighbourhoods come from the graph:
    add self-loops when building it (``grid_graph`` does by default,
    ``knn_graph(..., loop=True)``); the layer never edits ``edge_index``.

    Args:
        in_channels (int or tuple): Size of each input sample, or :obj:`-1` to
            derive it from the first input (only with ``groups=1``). A tuple
            gives the source and target sizes of a bipartite graph.
        out_channels (int): Size of each output sample.
        edge_dim (int): Width of ``edge_attr`` (9 for the default grid graph,
            the space dimension for relative positions).
        att_channels (int, optional): Width of :math:`\mathbf{W}_a
            \mathbf{h}_i` and :math:`\phi(\mathbf{e}_{i,j})`. Must equal
            ``edge_dim`` with ``edge_encoder='identity'``. (default:
            ``edge_dim`` for ``'identity'``, else :obj:`32`)
        edge_encoder (str or torch.nn.Module, optional): :math:`\phi`:
            ``'identity'``, ``'mlp'`` (Linear(edge_dim, att)-ReLU-Linear(att,
            att)), or a module mapping ``(|E|, edge_dim)`` to ``(|E|,
            att_channels)``. (default: :obj:`'identity'`)
        normalize (str, optional): ``'softmax'`` over each neighbourhood or
            ``'sigmoid'`` per edge. (default: :obj:`'softmax'`)
        groups (int, optional): Groups of the value map :math:`\mathbf{V}`.
            (default: :obj:`1`)
        act (str or Callable, optional): The activation :math:`\sigma`, or
            :obj:`None` for none. (default: :obj:`'relu'`)
        act_kwargs (dict, optional): Arguments of ``act``. (default: :obj:`None`)
        bias (bool, optional): Learn the biases of :math:`\mathbf{W}_a` and
            :math:`\mathbf{V}`. (default: :obj:`True`)
        chunk_size (int, optional): Centre nodes per chunk on the dense
            neighbour-table path (``neighbors=``); :obj:`None` sizes chunks
            so that a chunk's gathered ``(n, K, C)`` block stays near 64 MB.
            (default: :obj:`None`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:**
          node features :math:`(|\mathcal{V}|, F_{in})`, or
          :math:`(B, |\mathcal{V}|, F_{in})` for ``B`` graphs sharing one
          topology, or a pair for bipartite graphs;
          edge indices :math:`(2, |\mathcal{E}|)`;
          edge features :math:`(|\mathcal{E}|, D)` (or ``pos`` :math:`(|\mathcal{V}|, D)`
          from which ``edge_attr = pos[j] - pos[i]`` is computed)
        - **output:** node features :math:`(|\mathcal{V}_t|, F_{out})` (or
          :math:`(B, |\mathcal{V}_t|, F_{out})`); with
          ``return_attention_weights=True`` also ``(edge_index, alpha)`` with
          ``alpha`` of shape :math:`(|\mathcal{E}|,)` (or :math:`(B, |\mathcal{E}|)`)
    """

    def __init__(self, in_channels: Union[int, Tuple[int, int]], out_channels: int,
                 edge_dim: int, *, att_channels: Optional[int] = None,
                 edge_encoder: Union[str, Module] = 'identity', normalize: str = 'softmax',
                 groups: int = 1, act: Union[str, Callable, None] = 'relu',
                 act_kwargs: Optional[dict] = None, bias: bool = True,
                 chunk_size: Optional[int] = None, **kwargs: Any) -> None:
        kwargs.setdefault('aggr', 'add')
        super().__init__(**kwargs)
        if isinstance(in_channels, (tuple, list)):
            if len(in_channels) != 2:
                raise ValueError(f"'in_channels' must be an int or a pair (got {in_channels!r})")
            in_src, in_dst = in_channels
        else:
            in_src = in_dst = in_channels
        for name, value in (('in_channels', in_src), ('in_channels', in_dst)):
            if not (isinstance(value, int) and not isinstance(value, bool)) or (
                    value < 1 and value != -1):
                raise ValueError(f"'{name}' must be a positive int or -1 (got {in_channels!r})")
        _check_int('out_channels', out_channels)
        _check_int('edge_dim', edge_dim)
        _check_int('groups', groups)
        _check_normalize(normalize)

        if isinstance(edge_encoder, str):
            if edge_encoder not in ('identity', 'mlp'):
                raise ValueError("'edge_encoder' must be 'identity', 'mlp' or a torch.nn.Module "
                                 f"(got {edge_encoder!r})")
            if att_channels is None:
                att_channels = edge_dim if edge_encoder == 'identity' else 32
            _check_int('att_channels', att_channels)
            if edge_encoder == 'identity' and att_channels != edge_dim:
                raise ValueError(f"'att_channels' ({att_channels}) must equal 'edge_dim' "
                                 f"({edge_dim}) with edge_encoder='identity'")
            encoder: Optional[Module] = None
            if edge_encoder == 'mlp':
                encoder = torch.nn.Sequential(
                    Linear(edge_dim, att_channels), torch.nn.ReLU(),
                    Linear(att_channels, att_channels))
        elif isinstance(edge_encoder, Module):
            if att_channels is None:
                raise ValueError("'att_channels' is required with a custom 'edge_encoder'")
            _check_int('att_channels', att_channels)
            encoder = edge_encoder
        else:
            raise TypeError("'edge_encoder' must be 'identity', 'mlp' or a torch.nn.Module "
                            f"(got {type(edge_encoder).__name__})")

        self.in_channels = in_channels
        self.out_channels = out_channels
        self.edge_dim = edge_dim
        self.att_channels = att_channels
        self.normalize = normalize
        self.groups = groups
        self.edge_encoder = encoder
        self.act = _resolve_act(act, act_kwargs)
        self.chunk_size = None if chunk_size is None else _check_int('chunk_size', chunk_size)

        # W_a: node features of the centre -> one logit weight per attention channel.
        self.lin_att = Linear(in_dst, att_channels, bias=bias)
        # V: the value map, a (grouped) 1x1 convolution.
        if groups == 1:
            self.lin_value: Module = Linear(in_src, out_channels, bias=bias)
        else:
            if in_src == -1:
                raise ValueError("'in_channels' must be given (not -1) when 'groups' > 1")
            self.lin_value = GroupedLinear(in_src, out_channels, groups, bias=bias)

        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.lin_att.reset_parameters()
        self.lin_value.reset_parameters()
        if self.edge_encoder is not None:
            reset(self.edge_encoder)

    def encode_edges(self, edge_attr: Tensor) -> Tensor:
        r""":math:`\phi(\mathbf{e})`, shape ``(|E|, att_channels)``."""
        if self.edge_encoder is None:
            return edge_attr
        return self.edge_encoder(edge_attr)

    def _check_features(self, x_src: Tensor, x_dst: Tensor) -> None:
        for name, t in (('x', x_src), ('x', x_dst)):
            if not isinstance(t, Tensor):
                raise TypeError(f"'{name}' must be a Tensor of shape (N, C) or (B, N, C) "
                                f"(got {type(t).__name__})")
            if t.dim() not in (2, 3):
                raise ValueError(f"'{name}' must have shape (N, C) or (B, N, C) "
                                 f"(got shape {tuple(t.shape)})")
            if not t.is_floating_point():
                raise TypeError(f"'{name}' must be a floating-point tensor (got {t.dtype})")
        ins = self.in_channels if isinstance(self.in_channels, (tuple, list)) else (
            self.in_channels, self.in_channels)
        for t, c in ((x_src, ins[0]), (x_dst, ins[1])):
            if c != -1 and t.size(-1) != c:
                raise ValueError(f"'x' must have {c} channels in its last dimension "
                                 f"(got shape {tuple(t.shape)})")
        if not is_uninitialized_parameter(self.lin_att.weight):
            for t in (x_src, x_dst):
                check_dtype('x', t, self.lin_att.weight.dtype)

    def _check_inputs(self, x_src: Tensor, x_dst: Tensor, edge_index: Tensor,
                      edge_attr: Tensor) -> None:
        self._check_features(x_src, x_dst)
        if not isinstance(edge_index, Tensor) or edge_index.is_sparse:
            raise TypeError("'edge_index' must be a dense (2, E) integer Tensor (LGAConv needs "
                            "per-edge 'edge_attr')")
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"'edge_index' must have shape (2, E) (got shape "
                             f"{tuple(edge_index.shape)})")
        if not isinstance(edge_attr, Tensor):
            raise TypeError(f"'edge_attr' must be a Tensor of shape (E, {self.edge_dim}) "
                            f"(got {type(edge_attr).__name__})")
        if edge_attr.dim() != 2 or edge_attr.size(0) != edge_index.size(1) or (
                edge_attr.size(1) != self.edge_dim):
            raise ValueError(f"'edge_attr' must have shape (E, {self.edge_dim}) with "
                             f"E={edge_index.size(1)} (got shape {tuple(edge_attr.shape)})")

    def forward(self, x: Union[Tensor, PairTensor], edge_index: Optional[Tensor],
                edge_attr: Optional[Tensor] = None, size: Optional[Tuple[int, int]] = None,
                return_attention_weights: bool = False, *,
                pos: Union[Tensor, PairTensor, None] = None,
                neighbors: Optional[Tensor] = None
                ) -> Union[Tensor, Tuple[Tensor, Tuple[Tensor, Tensor]]]:
        r"""Runs the layer.

        Args:
            x (Tensor or (Tensor, Tensor)): Node features ``(N, C)`` or
                ``(B, N, C)`` (``B`` graphs with the same ``edge_index``).
            edge_index (Tensor or SparseTensor): ``(2, E)``, row 0 the
                neighbours ``j``, row 1 the centres ``i``; or a transposed
                sparse adjacency ``adj_t`` (``torch_sparse.SparseTensor`` or
                ``torch.sparse`` COO/CSR, entry ``(i, j)`` = edge ``j -> i``),
                whose 2-D values, if any, serve as ``edge_attr``;
                :obj:`None` when ``neighbors`` is given.
            edge_attr (Tensor, optional): ``(E, edge_dim)``. Required unless
                ``pos`` is given.
            size ((int, int), optional): Numbers of source and target nodes.
            return_attention_weights (bool, optional): Also return
                ``(edge_index, alpha)``. (default: :obj:`False`)
            pos (Tensor, optional): Node positions; when ``edge_attr`` is
                :obj:`None` it is set to ``pos[j] - pos[i]``.
            neighbors (LongTensor, optional): The graph as an ``(N, K)``
                neighbour table instead of ``edge_index`` (row ``i``: the
                neighbours of centre ``i``, ``-1`` padding; from
                :func:`graphs.nearest_neighbors` or
                :func:`graphs.to_neighbor_table`). Runs the memory-lean dense
                path of :mod:`graphattn.neighbor_attention`; ``edge_attr``, if
                given, is then ``(N, K, edge_dim)``, and the attention weights
                come back for ``graphs.neighbors_to_edge_index(neighbors)``.
        """
        x_src, x_dst = (x, x) if isinstance(x, Tensor) else x
        if neighbors is not None:
            return self._forward_table(x_src, x_dst, neighbors, edge_attr, pos,
                                       return_attention_weights)
        if edge_index is None:
            raise ValueError("'edge_index' of shape (2, E) is required (or pass the graph as "
                             "an (N, K) table through 'neighbors')")
        if is_sparse_adjacency(edge_index):  # PyG's adj_t: its values are the edge_attr
            edge_index, values = adjacency_to_edge_index(edge_index)
            if edge_attr is None and values is not None and values.dim() == 2:
                edge_attr = values
        if edge_attr is None:
            if pos is None:
                raise ValueError("'edge_attr' of shape (E, edge_dim) is required (or pass "
                                 "'pos' to use relative positions pos[j] - pos[i])")
            edge_attr = relative_positions(pos, edge_index)
        self._check_inputs(x_src, x_dst, edge_index, edge_attr)

        if size is None:
            size = (x_src.size(-2), x_dst.size(-2))
        q = self.lin_att(x_dst)
        v = self.lin_value(x_src)
        e = self.encode_edges(edge_attr.to(q.dtype))
        alpha = self.edge_updater(edge_index, q=(None, q), e=e, size=size)
        out = self.propagate(edge_index, v=(v, None), alpha=alpha, size=size)
        if self.act is not None:
            out = self.act(out)
        if return_attention_weights:
            return out, (edge_index, alpha.squeeze(-1))
        return out

    def _check_table(self, x_src: Tensor, x_dst: Tensor, neighbors: Tensor,
                     edge_attr: Optional[Tensor], pos: Any) -> None:
        self._check_features(x_src, x_dst)
        if not isinstance(neighbors, Tensor) or neighbors.dtype not in (torch.long, torch.int):
            raise TypeError("'neighbors' must be an (N, K) integer tensor "
                            f"(got {getattr(neighbors, 'dtype', type(neighbors).__name__)})")
        if neighbors.dim() != 2 or neighbors.size(0) != x_dst.size(-2):
            raise ValueError(f"'neighbors' must have shape (N, K) with N={x_dst.size(-2)} "
                             f"(got shape {tuple(neighbors.shape)})")
        # The range check reads the data: skipped under torch.compile (no graph break).
        if not torch.compiler.is_compiling() and neighbors.numel() and (
                int(neighbors.min()) < -1 or int(neighbors.max()) >= x_src.size(-2)):
            raise ValueError(f"'neighbors' entries must lie in [0, {x_src.size(-2)}) or be -1 "
                             "(padding)")
        if edge_attr is not None:
            if not isinstance(edge_attr, Tensor) or edge_attr.shape != (
                    *neighbors.shape, self.edge_dim):
                raise ValueError(f"'edge_attr' must have shape (N, K, {self.edge_dim}) = "
                                 f"{(*neighbors.shape, self.edge_dim)} with 'neighbors' (got "
                                 f"{getattr(edge_attr, 'shape', type(edge_attr).__name__)})")
        elif pos is None:
            raise ValueError("'edge_attr' of shape (N, K, edge_dim) is required with "
                             "'neighbors' (or pass 'pos' for relative positions)")

    def _forward_table(self, x_src: Tensor, x_dst: Tensor, neighbors: Tensor,
                       edge_attr: Optional[Tensor], pos: Union[Tensor, PairTensor, None],
                       return_attention_weights: bool):
        self._check_table(x_src, x_dst, neighbors, edge_attr, pos)
        neighbors = neighbors.long()
        q, v = self.lin_att(x_dst), self.lin_value(x_src)
        batched = q.dim() == 3
        q, v = (q, v) if batched else (q.unsqueeze(0), v.unsqueeze(0))
        chunk = self.chunk_size or default_chunk_size(
            neighbors.size(0), neighbors.size(1), max(v.size(-1), q.size(-1)))
        pos_src, pos_dst = (None, None) if pos is None else (
            (pos, pos) if isinstance(pos, Tensor) else pos)
        logits = neighbor_logits(q, neighbors, self.edge_encoder, chunk,
                                 edge_attr=None if edge_attr is None else edge_attr.to(q.dtype),
                                 pos_src=pos_src, pos_dst=pos_dst)
        valid = neighbors >= 0
        alpha = neighbor_softmax(logits, valid, self.normalize)
        out = neighbor_weighted_sum(alpha, v, neighbors, chunk)
        if self.act is not None:
            out = self.act(out)
        if not batched:
            out, alpha = out.squeeze(0), alpha.squeeze(0)
        if return_attention_weights:
            return out, (neighbors_to_edge_index(neighbors), alpha[..., valid])
        return out

    def edge_update(self, q_i: Tensor, e: Tensor, index: Tensor, ptr: Optional[Tensor],
                    size_i: Optional[int]) -> Tensor:
        # q_i: (E, A) or (B, E, A); e: (E, A). Logits keep a trailing unit dimension so
        # that the edge dimension is -2 (PyG's node_dim) in both layouts.
        s = (q_i * e).sum(dim=-1, keepdim=True)
        if self.normalize == 'softmax':
            return softmax(s, index, ptr, size_i, dim=-2)
        return torch.sigmoid(s)

    def message(self, v_j: Tensor, alpha: Tensor) -> Tensor:
        return alpha * v_j

    def __repr__(self) -> str:
        encoder = ('identity' if self.edge_encoder is None else
                   'mlp' if isinstance(self.edge_encoder, torch.nn.Sequential) else 'custom')
        extra = non_default_options(
            att_channels=(self.att_channels, self.edge_dim if encoder == 'identity' else 32),
            edge_encoder=(encoder, 'identity'), normalize=(self.normalize, 'softmax'),
            groups=(self.groups, 1), chunk_size=(self.chunk_size, None))
        return (f'{self.__class__.__name__}({self.in_channels}, {self.out_channels}, '
                f'edge_dim={self.edge_dim}{extra})')

"""Latent Graph Attention (LGA): stacked LGA layers at node level."""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Module, ModuleList
from torch_geometric.nn.dense.linear import Linear

from graphs.adjacency import adjacency_to_edge_index, is_sparse_adjacency
from graphs.validation import check_dtype

from .lga_conv import (LGAConv, _check_int, _check_normalize, non_default_options,
                       relative_positions)

__all__ = ['LGA']


class LGA(Module):
    r"""The Latent Graph Attention (LGA) module from the
    `"Latent Graph Attention for Enhanced Spatial Context"
    <https://arxiv.org/abs/2307.04149>`_ paper (Singh et al.), at node level,
    for any graph of :mod:`graphs` (grid or kNN).

    .. math::
        \mathbf{h}^{(0)} = \mathbf{W}_{in} \mathbf{x}, \qquad
        \mathbf{h}^{(l)} = \mathrm{LGAConv}^{(l)}\big(\mathbf{h}^{(l-1)}\big)
        \ (l = 1, \dots, L), \qquad
        \mathbf{y} = \big[\mathbf{x} \,\Vert\, \mathbf{h}^{(L)}\big]
        \ \text{or, with } \texttt{fuse}, \
        \mathbf{y} = \mathbf{W}_{f} \big[\mathbf{x} \,\Vert\, \mathbf{h}^{(L)}\big].

    :math:`\mathbf{x}` is the paper's :math:`F_{in}`, :math:`\mathbf{h}^{(L)}`
    its :math:`F_{out}` (the latent features :class:`~graphattn.LGALoss` acts
    on), and each :class:`~graphattn.LGAConv` layer is one locally connected
    graph with its own weights. Stacking ``L`` layers on a grid with
    8-connectivity gives each pixel exactly the :math:`(2L+1) \times (2L+1)`
    square of its neighbourhood as receptive field, at a cost linear in the
    number of pixels. The projection to the latent width, the concatenation
    and the paper's depth ablation come from its text; the linear projection,
    the optional fusion back to ``in_channels`` and the layer internals (see
    :class:`~graphattn.LGAConv`) are our reading.

    Args:
        in_channels (int): Width :math:`C` of the input features.
        latent_channels (int, optional): Latent width :math:`C_l`. (default:
            ``in_channels``)
        num_layers (int, optional): Number :math:`L` of stacked LGA layers.
            (default: :obj:`3`)
        edge_dim (int, optional): Width of ``edge_attr``: 9 for the default
            grid graph (one-hot direction), 2 or 3 for relative positions.
            (default: :obj:`9`)
        edge_encoder (str or Callable, optional): :math:`\phi` of every
            layer: ``'identity'`` (grids) or ``'mlp'`` (point clouds), see
            :class:`~graphattn.LGAConv`. (default: :obj:`'identity'`)
        att_channels (int, optional): Attention width of every layer.
        normalize (str, optional): ``'softmax'`` or ``'sigmoid'``.
            (default: :obj:`'softmax'`)
        groups (int, optional): Groups of each layer's value map.
            (default: :obj:`1`)
        act (str or Callable, optional): Activation of each layer.
            (default: :obj:`'relu'`)
        act_kwargs (dict, optional): Arguments of ``act``.
        fuse (bool, optional): Map the concatenation back to ``in_channels``
            with a linear map, so that the block preserves widths.
            (default: :obj:`False`)
        bias (bool, optional): Learn biases. (default: :obj:`True`)
        chunk_size (int, optional): Nodes per chunk on the dense
            neighbour-table path (see :class:`~graphattn.LGAConv`).

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, C)` or
          :math:`(B, |\mathcal{V}|, C)` (shared topology), edge indices
          :math:`(2, |\mathcal{E}|)`, edge features
          :math:`(|\mathcal{E}|, D)` (or ``pos`` :math:`(|\mathcal{V}|, D)`)
        - **output:** :math:`(|\mathcal{V}|, C + C_l)`, or
          :math:`(|\mathcal{V}|, C)` with ``fuse=True``
    """

    def __init__(self, in_channels: int, latent_channels: Optional[int] = None,
                 num_layers: int = 3, edge_dim: int = 9, *,
                 edge_encoder: Union[str, Module] = 'identity',
                 att_channels: Optional[int] = None, normalize: str = 'softmax',
                 groups: int = 1, act: Union[str, Callable, None] = 'relu',
                 act_kwargs: Optional[dict] = None, fuse: bool = False,
                 bias: bool = True, chunk_size: Optional[int] = None) -> None:
        super().__init__()
        _check_int('in_channels', in_channels)
        if latent_channels is None:
            latent_channels = in_channels
        _check_int('latent_channels', latent_channels)
        _check_int('num_layers', num_layers)
        _check_int('edge_dim', edge_dim)
        _check_normalize(normalize)
        if not isinstance(fuse, bool):
            raise TypeError(f"'fuse' must be a bool (got {type(fuse).__name__})")
        if isinstance(edge_encoder, Module) and num_layers > 1:
            raise ValueError("pass 'edge_encoder' as 'identity' or 'mlp' to LGA (each layer "
                             "gets its own encoder); build LGAConv layers for custom modules")

        self.in_channels = in_channels
        self.latent_channels = latent_channels
        self.num_layers = num_layers
        self.edge_dim = edge_dim
        self.normalize = normalize
        self.groups = groups
        self.fuse = fuse
        self.out_channels = in_channels if fuse else in_channels + latent_channels

        self.proj = Linear(in_channels, latent_channels, bias=bias)
        self.convs = ModuleList([
            LGAConv(latent_channels, latent_channels, edge_dim, att_channels=att_channels,
                    edge_encoder=edge_encoder, normalize=normalize, groups=groups, act=act,
                    act_kwargs=act_kwargs, bias=bias, chunk_size=chunk_size)
            for _ in range(num_layers)
        ])
        self.lin_fuse = (Linear(in_channels + latent_channels, in_channels, bias=bias)
                         if fuse else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.proj.reset_parameters()
        for conv in self.convs:
            conv.reset_parameters()
        if self.lin_fuse is not None:
            self.lin_fuse.reset_parameters()

    def _check_x(self, x: Any) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"'x' must be a Tensor of shape (N, {self.in_channels}) "
                            f"(got {type(x).__name__})")
        if x.dim() not in (2, 3) or x.size(-1) != self.in_channels:
            raise ValueError(f"'x' must have shape (N, {self.in_channels}) or "
                             f"(B, N, {self.in_channels}) (got shape {tuple(x.shape)})")
        if not x.is_floating_point():
            raise TypeError(f"'x' must be a floating-point tensor (got {x.dtype})")
        check_dtype('x', x, self.proj.weight.dtype)

    def output(self, x: Tensor, latent: Tensor, dim: int = -1) -> Tensor:
        """Concatenate ``[x, latent]`` along ``dim`` and fuse if ``fuse=True``."""
        out = torch.cat([x, latent], dim=dim)
        if self.lin_fuse is None:
            return out
        if dim in (-1, out.dim() - 1):
            return self.lin_fuse(out)
        return self.lin_fuse(out.movedim(dim, -1)).movedim(-1, dim)

    def forward(self, x: Tensor, edge_index: Optional[Tensor],
                edge_attr: Optional[Tensor] = None, batch: Optional[Tensor] = None, *,
                pos: Optional[Tensor] = None, neighbors: Optional[Tensor] = None,
                return_latent: bool = False, return_attention_weights: bool = False
                ) -> Union[Tensor, Tuple[Any, ...]]:
        r"""Runs the module.

        Args:
            x (Tensor): ``(N, C)`` or ``(B, N, C)``.
            edge_index (Tensor or SparseTensor): ``(2, E)`` (row 0
                neighbours, row 1 centres), or a transposed sparse adjacency
                ``adj_t`` as in :class:`~graphattn.LGAConv`.
            edge_attr (Tensor, optional): ``(E, edge_dim)``; required unless
                ``pos`` is given.
            batch (Tensor, optional): Graph index of each node. Not needed by
                the computation (edges never cross graphs); accepted so that
                the module takes a PyG ``Batch``'s fields (its shape and integer
                dtype are checked, its values are not).
            pos (Tensor, optional): Node positions; ``edge_attr`` defaults to
                ``pos[j] - pos[i]``.
            neighbors (LongTensor, optional): The graph as an ``(N, K)``
                neighbour table (``-1`` padding) instead of ``edge_index``:
                the memory-lean dense path (see :class:`~graphattn.LGAConv`);
                ``edge_attr``, if given, is then ``(N, K, edge_dim)``. A kNN
                table comes straight from :func:`graphs.nearest_neighbors`;
                any edge index converts with :func:`graphs.to_neighbor_table`.
            return_latent (bool, optional): Also return :math:`F_{out} =
                \mathbf{h}^{(L)}`, ``(N, C_l)``, for :class:`~graphattn.LGALoss`.
            return_attention_weights (bool, optional): Also return a list of
                ``(edge_index, alpha)``, one per layer.

        Returns:
            ``out``, followed by ``latent`` and/or the attention list when asked.
        """
        self._check_x(x)
        if batch is not None and (not isinstance(batch, Tensor) or batch.dim() != 1
                                  or batch.numel() != x.size(-2)):
            raise ValueError(f"'batch' must have shape ({x.size(-2)},) "
                             f"(got {getattr(batch, 'shape', type(batch).__name__)})")
        if batch is not None and (batch.is_floating_point() or batch.dtype == torch.bool):
            raise TypeError(f"'batch' must be an integer tensor (got {batch.dtype})")
        if is_sparse_adjacency(edge_index):  # convert PyG's adj_t once, not per layer
            edge_index, values = adjacency_to_edge_index(edge_index)
            if edge_attr is None and values is not None and values.dim() == 2:
                edge_attr = values
        if edge_attr is None and pos is not None and neighbors is None:
            if edge_index is None:
                raise ValueError("'edge_index' of shape (2, E) is required (or pass the graph "
                                 "as an (N, K) table through 'neighbors')")
            edge_attr = relative_positions(pos, edge_index)
        # On the table path the relative positions are computed chunk by chunk.
        table_pos = pos if neighbors is not None and edge_attr is None else None
        h = self.proj(x)
        attention: List[Tuple[Tensor, Tensor]] = []
        for conv in self.convs:
            if return_attention_weights:
                h, att = conv(h, edge_index, edge_attr, return_attention_weights=True,
                              pos=table_pos, neighbors=neighbors)
                attention.append(att)
            else:
                h = conv(h, edge_index, edge_attr, pos=table_pos, neighbors=neighbors)
        return self.pack(self.output(x, h), h, attention, return_latent,
                         return_attention_weights)

    @staticmethod
    def pack(out: Tensor, latent: Tensor, attention: Any, return_latent: bool,
             return_attention_weights: bool) -> Union[Tensor, Tuple[Any, ...]]:
        """``out``, followed by ``latent`` and/or ``attention`` when asked."""
        if not (return_latent or return_attention_weights):
            return out
        result: Tuple[Any, ...] = (out,)
        if return_latent:
            result = result + (latent,)
        if return_attention_weights:
            result = result + (attention,)
        return result

    def __repr__(self) -> str:
        conv = self.convs[0]
        encoder = 'identity' if conv.edge_encoder is None else 'mlp'
        extra = non_default_options(
            edge_encoder=(encoder, 'identity'), normalize=(self.normalize, 'softmax'),
            groups=(self.groups, 1), fuse=(self.fuse, False),
            chunk_size=(conv.chunk_size, None))
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'latent_channels={self.latent_channels}, num_layers={self.num_layers}, '
                f'edge_dim={self.edge_dim}{extra})')

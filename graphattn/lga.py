"""Latent Graph Attention (LGA): the stacked module at node level, and the base it shares
with :class:`~graphattn.LGA2d`."""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Module, ModuleList
from torch.utils.checkpoint import checkpoint
from torch_geometric.data.data import BaseData
from torch_geometric.nn.dense.linear import Linear

from graphs.validation import check_positive_int

from ._checks import (LGA_PATHS, check_choice, check_features, check_flag, check_path,
                      check_same_device)
from ._repr import non_default_options
from .lga_conv import LGAConv
from .lga_graph import GridSpec, LGAGraph
from .norms import check_batch_norm_nodes, make_norm

__all__ = ['LGA', 'LGABase', 'with_extras', 'LAYER_NORMS', 'OUTPUT_INITS']

#: The normalisations a stack can apply to each layer's input (``norm=``).
LAYER_NORMS = ('layer', 'batch', 'none')
#: How the fusion map starts (``output_init=``): ``'identity'`` makes the block the
#: identity at initialisation; ``'default'`` is PyG's ``Linear`` initialisation (0.1/0.2).
OUTPUT_INITS = ('identity', 'default')


def with_extras(out: Tensor, *extras: Any) -> Union[Tensor, Tuple[Any, ...]]:
    """The one way every module returns extras: ``out`` alone, or ``(out, *extras)``
    with the extras asked for (``None`` entries, the ones not asked for, dropped)
    in the order of the ``return_*`` flags in the signature."""
    asked = tuple(e for e in extras if e is not None)
    return (out, *asked) if asked else out


class LGABase(Module):
    r"""Parameters and the stacked computation shared by :class:`LGA` (nodes) and
    :class:`~graphattn.LGA2d` (feature maps), whose state dicts are alike:
    the projection ``proj``, the layers ``convs`` (:class:`~graphattn.LGAConv`)
    and the optional fusion ``lin_fuse``. See :class:`LGA` for the maths."""

    def __init__(self, in_channels: int, latent_channels: Optional[int] = None,
                 num_layers: int = 3, edge_dim: int = 9, *, heads: int = 1,
                 concat: bool = True, score: str = 'center',
                 edge_encoder: Union[str, Module, None] = None,
                 att_channels: Optional[int] = None, normalize: str = 'softmax',
                 groups: int = 1, act: Union[str, Callable, None] = 'relu',
                 act_kwargs: Optional[dict] = None, fuse: bool = False, bias: bool = True,
                 chunk_size: Optional[int] = None, path: str = 'auto', residual: bool = True,
                 norm: str = 'layer', output_init: str = 'identity',
                 recompute: bool = False) -> None:
        super().__init__()
        check_positive_int('in_channels', in_channels)
        latent_channels = in_channels if latent_channels is None else latent_channels
        check_positive_int('latent_channels', latent_channels)
        check_positive_int('num_layers', num_layers)
        check_positive_int('heads', heads)
        check_flag('fuse', fuse)
        check_flag('concat', concat)
        check_flag('residual', residual)
        check_flag('recompute', recompute)
        check_choice('norm', norm, LAYER_NORMS)
        check_choice('output_init', output_init, OUTPUT_INITS)
        if concat and latent_channels % heads:
            raise ValueError(f"'heads' ({heads}) must divide 'latent_channels' "
                             f"({latent_channels}) with concat=True")
        if isinstance(edge_encoder, Module) and num_layers > 1:
            raise ValueError("pass 'edge_encoder' as 'identity' or 'mlp' to a stack (each layer "
                             "gets its own encoder); build LGAConv layers for custom modules")
        self.in_channels = in_channels
        self.latent_channels = latent_channels
        self.num_layers = num_layers
        self.edge_dim = edge_dim
        self.heads = heads
        self.concat = concat
        self.score = score
        self.normalize = normalize
        self.groups = groups
        self.fuse = fuse
        self.residual = residual
        self.norm = norm
        self.output_init = output_init
        self.recompute = recompute
        self.path = check_path(path, LGA_PATHS)
        self.out_channels = in_channels if fuse else in_channels + latent_channels

        self.proj = Linear(in_channels, latent_channels, bias=bias)
        per_head = latent_channels // heads if concat else latent_channels
        self.convs = ModuleList([
            LGAConv(latent_channels, per_head, edge_dim, heads=heads, concat=concat,
                    score=score, att_channels=att_channels, edge_encoder=edge_encoder,
                    normalize=normalize, groups=groups, act=act, act_kwargs=act_kwargs,
                    bias=bias, chunk_size=chunk_size)
            for _ in range(num_layers)
        ])
        # One norm per layer, on that layer's input (pre-norm): without it the scale of
        # the latent shrinks layer after layer (each layer averages its neighbours).
        self.norms = (ModuleList([make_norm(norm, latent_channels) for _ in range(num_layers)])
                      if norm != 'none' else None)
        self.lin_fuse = (Linear(in_channels + latent_channels, in_channels, bias=bias)
                         if fuse else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.proj.reset_parameters()
        for conv in self.convs:
            conv.reset_parameters()
        for norm in self.norms or ():
            norm.reset_parameters()
        if self.lin_fuse is not None:
            self.lin_fuse.reset_parameters()
            if self.output_init == 'identity':
                # [I | 0]: the fused output starts as x itself, as LatentGNN's gamma = 0
                # and a zero-initialised non-local block do, so adding the block to a
                # network that trains starts from that network.
                with torch.no_grad():
                    self.lin_fuse.weight.zero_()
                    self.lin_fuse.weight[:, :self.in_channels].copy_(
                        torch.eye(self.in_channels))
                    if self.lin_fuse.bias is not None:
                        self.lin_fuse.bias.zero_()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                               unexpected_keys, error_msgs):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        # A state dict saved by graphattn 0.1/0.2 has no per-layer norms: say how to build
        # the module that loads it, beside torch's list of missing keys.
        if (strict and self.norms is not None and f'{prefix}convs.0.lin_value.weight' in state_dict
                and not any(k.startswith(f'{prefix}norms.') for k in state_dict)):
            error_msgs.append(
                "this state dict has no per-layer norms: it is of the graphattn 0.1/0.2 form; "
                "build the module with residual=False, norm='none', output_init='default' "
                "to load it (the 0.2 stack)")

    def _check_x(self, x: Any, shapes: Tuple[str, ...], dims: Tuple[int, ...],
                 channel_dim: int) -> Tensor:
        return check_features('x', x, self.in_channels, shapes, dims, self.proj.weight.dtype,
                              channel_dim)

    def layers(self, h: Tensor, graph: LGAGraph, need_attention: bool
               ) -> Tuple[Tensor, List[Any]]:
        """Run every layer on the prepared graph; the attention of each when asked.

        With ``recompute=True`` (and gradients on) each layer's norm and
        :class:`~graphattn.LGAConv` run under a non-reentrant
        :func:`torch.utils.checkpoint.checkpoint`: the backward keeps only the
        layer's input and runs the layer again to get the rest. A batch norm
        stays outside it, so that its running statistics are updated once."""
        attention: List[Any] = []
        if self.norm == 'batch':
            check_batch_norm_nodes('x', h.numel() // h.size(-1), 'batch', self.training)
        recompute = self.recompute and torch.is_grad_enabled()
        for i, conv in enumerate(self.convs):
            norm = None if self.norms is None else self.norms[i]
            if recompute:
                z = h
                if isinstance(norm, torch.nn.BatchNorm1d):
                    z, norm = self._normed(norm, h), None
                out = checkpoint(self._layer, conv, norm, z, graph, need_attention,
                                 use_reentrant=False)
            else:
                out = self._layer(conv, norm, h, graph, need_attention)
            if need_attention:
                z, att = out
                attention.append(att)
            else:
                z = out
            h = h + z if self.residual else z
        return h, attention

    def _layer(self, conv: LGAConv, norm: Optional[Module], h: Tensor, graph: LGAGraph,
               need_attention: bool) -> Any:
        """One layer without its residual sum: ``conv(norm(h))`` (with its attention)."""
        z = h if norm is None else self._normed(norm, h)
        return conv(z, graph, return_attention_weights=need_attention)

    @staticmethod
    def _normed(norm: Module, h: Tensor) -> Tensor:
        if isinstance(norm, torch.nn.BatchNorm1d):   # statistics over all nodes of all graphs
            return norm(h.reshape(-1, h.size(-1))).view_as(h)
        return norm(h)

    def output(self, x: Tensor, latent: Tensor, dim: int = -1) -> Tensor:
        """Concatenate ``[x, latent]`` along ``dim`` and fuse if ``fuse=True``."""
        out = torch.cat([x, latent], dim=dim)
        if self.lin_fuse is None:
            return out
        if dim in (-1, out.dim() - 1):
            return self.lin_fuse(out)
        return self.lin_fuse(out.movedim(dim, -1)).movedim(-1, dim)

    def _options(self) -> str:
        conv = self.convs[0]
        encoder = 'identity' if conv.edge_encoder is None else 'mlp'
        return non_default_options(
            heads=(self.heads, 1), concat=(self.concat, True), score=(self.score, 'center'),
            edge_encoder=(encoder, 'identity'), normalize=(self.normalize, 'softmax'),
            groups=(self.groups, 1), fuse=(self.fuse, False),
            chunk_size=(conv.chunk_size, None), path=(self.path, 'auto'),
            residual=(self.residual, True), norm=(self.norm, 'layer'),
            output_init=(self.output_init, 'identity'), recompute=(self.recompute, False))


class LGA(LGABase):
    r"""The Latent Graph Attention (LGA) module from the
    `"Latent Graph Attention for Enhanced Spatial Context"
    <https://arxiv.org/abs/2307.04149>`_ paper (Singh et al.), at node level,
    for any graph of :mod:`graphs` (grid or kNN).

    .. math::
        \mathbf{h}^{(0)} &= \mathbf{W}_{in} \mathbf{x}, \\
        \mathbf{h}^{(l)} &= \mathbf{h}^{(l-1)} + \mathrm{LGAConv}^{(l)}\big(
        \mathrm{Norm}^{(l)}(\mathbf{h}^{(l-1)})\big) \quad (l = 1, \dots, L), \\
        \mathbf{y} &= \big[\mathbf{x} \,\Vert\, \mathbf{h}^{(L)}\big]
        \ \text{or, with } \texttt{fuse}, \
        \mathbf{y} = \mathbf{W}_{f} \big[\mathbf{x} \,\Vert\, \mathbf{h}^{(L)}\big],
        \quad \mathbf{W}_{f} = [\mathbf{I} \,\Vert\, \mathbf{0}] \text{ at initialisation}.

    :math:`\mathbf{x}` is the paper's :math:`F_{in}`, :math:`\mathbf{h}^{(L)}`
    its :math:`F_{out}` (the latent features :class:`~graphattn.LGALoss` acts
    on), and each :class:`~graphattn.LGAConv` layer is one locally connected
    graph with its own weights (its equations, score readings and heads are
    there). Stacking ``L`` layers on a grid with 8-connectivity gives each
    pixel exactly the :math:`(2L+1) \times (2L+1)` square of its
    neighbourhood as receptive field, at a cost linear in the number of
    pixels. The projection to the latent width, the concatenation and the
    paper's depth ablation come from its text; the linear projection, the
    optional fusion back to ``in_channels`` and the layer internals are our
    reading. The graph is validated and prepared once per call
    (:meth:`LGAConv.prepare`), not per layer.

    **A stack that trains at any depth.** Each layer averages its neighbours,
    so a plain stack (:math:`\mathbf{h}^{(l)} = \mathrm{LGAConv}^{(l)}(
    \mathbf{h}^{(l-1)})`, graphattn 0.1/0.2) shrinks its signal and its
    gradient layer after layer: at initialisation the gradient reaching the
    first layer is 0.1 times the last layer's at 4 layers and 1.5e-6 times
    at 16. Hence the pre-norm residual form above (``residual=True``,
    ``norm='layer'``: "res+" of DeeperGCN, PyG's ``DeepGCNLayer``), which keeps
    that ratio near 1 at every depth, and a fusion that starts as
    :math:`[\mathbf{I} \,\Vert\, \mathbf{0}]` (``output_init='identity'``),
    so that with ``fuse=True`` the block is the identity at initialisation,
    as LatentGNN with :math:`\gamma = 0` is: adding it to a network starts
    from that network. ``residual=False, norm='none', output_init='default'``
    is the 0.1/0.2 stack, whose state dicts load into it unchanged.
    Measurements: ``docs/lga.md``, "Why the stack collapsed, and the fix".

    Args:
        in_channels (int): Width :math:`C` of the input features.
        latent_channels (int, optional): Latent width :math:`C_l`. (default:
            ``in_channels``)
        num_layers (int, optional): Number :math:`L` of stacked LGA layers.
            (default: :obj:`3`)
        edge_dim (int, optional): Width of ``edge_attr``: 9 for the default
            grid graph (one-hot direction), 2 or 3 for relative positions.
            (default: :obj:`9`)
        heads (int, optional): Attention heads per layer; with ``concat``
            each head carries ``latent_channels // heads`` channels.
            (default: :obj:`1`)
        concat (bool, optional): Concatenate the heads (else average them).
            (default: :obj:`True`)
        score (str, optional): The edge-score reading of every layer,
            ``'center'``, ``'neighbor'`` or ``'pair'`` (see
            :class:`~graphattn.LGAConv`). (default: :obj:`'center'`)
        edge_encoder (str, optional): :math:`\phi` of every layer:
            ``'identity'`` (grids) or ``'mlp'`` (point clouds); :obj:`None`
            is the identity, refused on relative positions from ``pos`` (see
            :class:`~graphattn.LGAConv` and :meth:`for_points`).
            (default: :obj:`None`)
        att_channels (int, optional): Score width of every layer.
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
        chunk_size (int, optional): Nodes per chunk of the table kernel.
        path (str, optional): ``'auto'``, ``'fused'``, ``'compiled'`` (grids, tables)
            or ``'message_passing'`` (see :class:`~graphattn.LGAConv`);
            ``forward`` can override it. (default: :obj:`'auto'`)
        residual (bool, optional): Add each layer's output to its input
            (:math:`\mathbf{h}^{(l)} = \mathbf{h}^{(l-1)} + \dots`); else
            replace it, as graphattn 0.1/0.2 did. (default: :obj:`True`)
        norm (str, optional): The normalisation of each layer's input:
            ``'layer'`` (:class:`torch.nn.LayerNorm` over each node's
            channels), ``'batch'`` (:class:`torch.nn.BatchNorm1d` over all
            nodes of the batch) or ``'none'`` (0.1/0.2). (default:
            :obj:`'layer'`)
        output_init (str, optional): How ``W_f`` starts with ``fuse=True``:
            ``'identity'`` (:math:`[\mathbf{I} \,\Vert\, \mathbf{0}]`,
            zero bias: the block's output equals its input) or ``'default'``
            (PyG's :class:`~torch_geometric.nn.dense.linear.Linear`
            initialisation, 0.1/0.2). Unused with ``fuse=False``, whose
            output already carries :math:`\mathbf{x}` unchanged.
            (default: :obj:`'identity'`)
        recompute (bool, optional): Keep only each layer's input for the
            backward pass and run the layer (norm and
            :class:`~graphattn.LGAConv`) again there, through a non-reentrant
            :func:`torch.utils.checkpoint.checkpoint`: less memory for more
            time, the same outputs and gradients. A batch norm stays outside
            the recomputation, so that its running statistics are updated
            once. (default: :obj:`False`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, C)` or
          :math:`(B, |\mathcal{V}|, C)` (shared topology); the graph as edge
          indices :math:`(2, |\mathcal{E}|)` (or ``adj_t``, ``neighbors``,
          ``grid``), edge features :math:`(|\mathcal{E}|, D)` (or ``pos``
          :math:`(|\mathcal{V}|, D)`)
        - **output:** :math:`(|\mathcal{V}|, C + C_l)`, or
          :math:`(|\mathcal{V}|, C)` with ``fuse=True``; then, when asked, the
          latent :math:`(|\mathcal{V}|, C_l)` and a list with each layer's
          attention as :class:`~graphattn.LGAConv` returns it
    """

    @classmethod
    def for_points(cls, in_channels: int, latent_channels: Optional[int] = None,
                   num_layers: int = 3, *, dim: int = 3, att_channels: int = 32,
                   **kwargs: Any) -> 'LGA':
        r"""LGA configured for point clouds: the edge attribute of ``j -> i`` is
        the ``dim``-dimensional offset :math:`\mathbf{p}_j - \mathbf{p}_i` (from
        ``pos``, or a graph of :func:`graphs.point_cloud_to_data`), encoded by
        a learned MLP :math:`\phi` (``edge_encoder='mlp'``) of width
        ``att_channels``. Other arguments as in :class:`LGA`.

        Give it a graph with self-loops (``graphs.knn_graph(..., loop=True)``,
        ``graphs.nearest_neighbors(..., loop=True)``): a node's own features
        reach its output only through its self-loop.
        """
        check_positive_int('dim', dim)
        return cls(in_channels, latent_channels, num_layers, edge_dim=dim,
                   edge_encoder='mlp', att_channels=att_channels, **kwargs)

    def forward(self, x: Union[Tensor, BaseData], edge_index: Any = None,
                edge_attr: Optional[Tensor] = None,
                batch: Optional[Tensor] = None, *, pos: Optional[Tensor] = None,
                neighbors: Optional[Tensor] = None, grid: Optional[GridSpec] = None,
                path: Optional[str] = None, return_latent: bool = False,
                return_attention_weights: bool = False) -> Union[Tensor, Tuple[Any, ...]]:
        r"""Runs the module.

        Args:
            x (Tensor or Data): ``(N, C)`` or ``(B, N, C)``; or a PyG
                ``Data``/``Batch``, whose ``x``, ``adj_t`` or ``edge_index``,
                ``edge_attr``, ``pos`` and ``batch`` fill the arguments not given.
            edge_index (Tensor or SparseTensor, optional): ``(2, E)`` (row 0
                neighbours, row 1 centres), or a transposed sparse adjacency
                ``adj_t`` as in :class:`~graphattn.LGAConv`.
            edge_attr (Tensor, optional): ``(E, edge_dim)`` (``(N, K,
                edge_dim)`` with ``neighbors``); required unless ``pos`` is
                given or the graph is a grid.
            batch (Tensor, optional): Graph index of each node. Not needed by
                the computation (edges never cross graphs); accepted so that
                the module takes a PyG ``Batch``'s fields (its shape and integer
                dtype are checked, its values are not).
            pos (Tensor, optional): Node positions; ``edge_attr`` defaults to
                ``pos[j] - pos[i]``.
            neighbors (LongTensor, optional): The graph as an ``(N, K)``
                neighbour table (``-1`` padding) instead of ``edge_index``:
                the memory-lean table kernel. A kNN table comes straight from
                :func:`graphs.nearest_neighbors`; any edge index converts with
                :func:`graphs.to_neighbor_table`.
            grid ((int, int), optional): The graph as an ``H x W`` grid, ``x``
                holding its pixels row-major (see :class:`~graphattn.LGA2d`
                for ``(B, C, H, W)`` maps).
            path (str, optional): Overrides the constructor's ``path``.
            return_latent (bool, optional): Also return :math:`F_{out} =
                \mathbf{h}^{(L)}`, ``(N, C_l)``, for :class:`~graphattn.LGALoss`.
            return_attention_weights (bool, optional): Also return a list of
                each layer's attention, ``(edge_index, alpha)`` with ``alpha``
                of shape ``(E, heads)``.

        Returns:
            ``out``, followed by ``latent`` and/or the attention list when
            asked (:func:`with_extras`).
        """
        if isinstance(x, BaseData):
            data = x
            x = data.x
            if edge_index is None and neighbors is None and grid is None:
                edge_index = data.adj_t if 'adj_t' in data else data.edge_index
            edge_attr = data.edge_attr if edge_attr is None else edge_attr
            pos = data.pos if pos is None and edge_attr is None else pos
            batch = data.batch if batch is None else batch
        self._check_x(x, (f'(N, {self.in_channels})', f'(B, N, {self.in_channels})'), (2, 3), -1)
        if batch is not None and (not isinstance(batch, Tensor) or batch.dim() != 1
                                  or batch.numel() != x.size(-2)):
            raise ValueError(f"'batch' must have shape ({x.size(-2)},) "
                             f"(got {getattr(batch, 'shape', type(batch).__name__)})")
        check_same_device('x', x, batch=batch)
        if batch is not None and (batch.is_floating_point() or batch.dtype == torch.bool):
            raise TypeError(f"'batch' must be an integer tensor (got {batch.dtype})")
        h = self.proj(x)
        graph = self.convs[0].prepare(h, edge_index, edge_attr, pos=pos, neighbors=neighbors,
                                      grid=grid, path=self.path if path is None else path)
        h, attention = self.layers(h, graph, return_attention_weights)
        return with_extras(self.output(x, h), h if return_latent else None,
                           attention if return_attention_weights else None)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'latent_channels={self.latent_channels}, num_layers={self.num_layers}, '
                f'edge_dim={self.edge_dim}{self._options()})')

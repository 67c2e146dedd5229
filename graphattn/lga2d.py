"""LGA on (B, C, H, W) feature maps: reshapes to pixels and picks the grid form."""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple, Union

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from graphs.grid import grid_edges, grid_stencil

from ._checks import LGA_PATHS, check_path
from .lga import LGABase, with_extras

__all__ = ['LGA2d']


def attention_maps(attention: Tuple[Tensor, Tensor], height: int, width: int,
                   offsets: Tuple[Tuple[int, int], ...]) -> Tensor:
    """One layer's ``(edge_index, alpha)`` on the grid edges of
    :func:`graphs.grid_edges` as maps ``(B, heads, S, H, W)``: entry ``t`` is the
    weight of the neighbour at ``offsets[t]``, zero where it is outside."""
    _, alpha = attention                                     # (B, E, heads)
    edge_index, direction = grid_edges(height, width, offsets, alpha.device)
    b, _, heads = alpha.shape
    maps = alpha.new_zeros(b, heads, len(offsets), height * width)
    maps[:, :, direction, edge_index[1]] = alpha.permute(0, 2, 1)
    return maps.view(b, heads, len(offsets), height, width)


class LGA2d(LGABase):
    r"""Latent Graph Attention (LGA) on image feature maps, from the
    `"Latent Graph Attention for Enhanced Spatial Context"
    <https://arxiv.org/abs/2307.04149>`_ paper (Singh et al.), for CNN
    backbones: :class:`~graphattn.LGA` on the grid graph of each
    ``H x W`` map (every pixel linked to its 8 neighbours and itself).

    .. math::
        \mathbf{h}^{(l)}_{p} = \mathbf{h}^{(l-1)}_{p} + \sigma\Big(\big\Vert_{h}
        \sum_{t=0}^{8} \alpha^{(l),h}_{p,t}\, \mathbf{V}^{(l),h}
        \bar{\mathbf{h}}^{(l-1)}_{p + \delta_t}\Big),
        \qquad
        \alpha^{(l),h}_{p,t} = \operatorname{softmax}_{t:\, p + \delta_t \in
        \text{image}} \big( s^{(l),h}_{p,t} \big),

    with :math:`\bar{\mathbf{h}} = \mathrm{Norm}^{(l)}(\mathbf{h})` each
    layer's normalised input (``norm``; the residual term is dropped with
    ``residual=False``), :math:`\delta_t = (dx, dy)` the stencil offsets of
    :func:`graphs.grid_stencil` (direction :math:`t` is the 3x3 convolution tap
    ``(t // 3, t % 3)``) and the score :math:`s` of one of
    :class:`~graphattn.LGAConv`'s readings: per-direction 1x1 convolutions of
    the centre pixel (``'center'``: :math:`s_{p,t} = (\mathbf{W}_a
    \mathbf{h}_p)_t`), of the neighbour (``'neighbor'``: :math:`s_{p,t} =
    (\mathbf{W}_n \mathbf{h}_{p+\delta_t})_t`), or both ends and the
    direction (``'pair'``). Output: ``cat([x, h^(L)], dim=1)``, or a 1x1
    fusion of it back to ``in_channels`` with ``fuse=True``, which starts as
    the identity on ``x`` (``output_init='identity'``): at initialisation
    ``LGA2d(C, fuse=True)(x)`` is ``x``. See :class:`~graphattn.LGA` for which
    parts are our reading and for why the stack is residual and normalised
    (``residual=False, norm='none', output_init='default'`` is the 0.1/0.2
    stack, whose state dicts load unchanged).

    This module only reshapes: the maps are read channels-last as
    ``(B, H*W, C)`` pixels (free for ``channels_last`` inputs) and every layer
    is an :class:`~graphattn.LGAConv` given the graph as ``grid=(H, W)``. Its
    paths compute the same function (to 1e-5, values and gradients):

    * ``'fused'`` (what ``'auto'`` picks): no edge list, a weighted sum of the
      nine shifted views of the value map, each tap on its in-image
      sub-rectangle (:mod:`graphattn.grid_attention`), whose backward
      recomputes the shifted products instead of storing them; out-of-image
      neighbours are left out of the softmax. (``'fast'``, its name before
      0.2, still works, with a deprecation warning.)
    * ``'compiled'``: the same maths compiled by ``torch.compile`` into one
      fused loop per pass, forward and backward (C++/OpenMP on CPU, Triton on
      CUDA; :mod:`graphattn.compiled_grid_attention`). Several times faster
      than ``'fused'`` once compiled; the first call for each input shape
      compiles (seconds), and double backward is not supported. Opt-in, so
      that no layer compiles behind its user's back.
    * ``'message_passing'``: the layers' message passing on the edges of
      :func:`graphs.grid_edges` (the edges of :func:`graphs.grid_graph`).

    All paths use the same parameters, so a ``state_dict`` serves any.

    ``recompute=True`` trades time for memory on any path (activation
    checkpointing): each layer keeps only its input for the backward pass and
    runs again there (:func:`torch.utils.checkpoint.checkpoint`, non-reentrant),
    so the value map, the weights and the normalised input are not kept; the
    input projection is recomputed too, so that ``x`` is kept rather than a
    channels-last copy of it. Same outputs and gradients, bit for bit. At
    C = 64, L = 4, 256x256 and 512x512 on a CPU it cut the peak memory of a
    training step to 0.46-0.66x on ``'fused'`` and 0.57-0.81x on
    ``'compiled'``, 5.2-6.1x below an unfold LGA on ``'fused'``, for one more
    forward pass per layer (``docs/performance.md``, "Recomputing the layers
    in the backward").

    Args:
        in_channels (int): Channels :math:`C` of the input map.
        latent_channels (int, optional): Latent width :math:`C_l`. (default:
            ``in_channels``)
        num_layers (int, optional): Number :math:`L` of LGA layers; the
            receptive field is the :math:`(2Ld+1)^2` square with
            ``connectivity=8`` and dilation ``d``. (default: :obj:`3`)
        connectivity (int, optional): 8 (the paper) or 4 neighbours.
            (default: :obj:`8`)
        dilation (int, optional): Distance of the neighbours. (default: :obj:`1`)
        heads (int, optional): Attention heads per layer. (default: :obj:`1`)
        concat (bool, optional): Concatenate the heads (else average).
            (default: :obj:`True`)
        score (str, optional): ``'center'``, ``'neighbor'`` or ``'pair'``.
            (default: :obj:`'center'`)
        normalize (str, optional): ``'softmax'`` or ``'sigmoid'``.
            (default: :obj:`'softmax'`)
        groups (int, optional): Groups of the value maps. (default: :obj:`1`)
        act (str or Callable, optional): Activation. (default: :obj:`'relu'`)
        act_kwargs (dict, optional): Arguments of ``act``.
        fuse (bool, optional): 1x1 map back to ``in_channels``.
            (default: :obj:`False`)
        bias (bool, optional): Learn biases. (default: :obj:`True`)
        path (str, optional): ``'auto'``, ``'fused'``, ``'compiled'`` or
            ``'message_passing'``; can be overridden per call.
            (default: :obj:`'auto'`)
        residual (bool, optional): Each layer adds to its input.
            (default: :obj:`True`)
        norm (str, optional): ``'layer'``, ``'batch'`` or ``'none'``: the
            normalisation of each layer's input (per pixel, or over the
            batch's pixels). ``'none'`` with ``residual=True`` left a network
            that needs no context as it was (collages, paired: 62.4 against the
            base's 62.5 mIoU; ``'layer'`` 61.6), ``'layer'`` helped most where
            context was needed (cortex: 62.9 against 61.3; docs/lga.md, "The
            norm, probed"). (default: :obj:`'layer'`)
        output_init (str, optional): ``'identity'`` or ``'default'``: how the
            fusion starts with ``fuse=True``. (default: :obj:`'identity'`)
        recompute (bool, optional): Keep only each layer's input (and ``x``)
            for the backward pass and recompute the layer (and the input
            projection) there (activation checkpointing): less memory, more
            time, the same result. A batch
            norm runs outside the recomputation (its running statistics are
            updated once). (default: :obj:`False`)

    Shapes:
        - **input:** :math:`(B, C, H, W)`
        - **output:** :math:`(B, C + C_l, H, W)`, or :math:`(B, C, H, W)` with
          ``fuse=True``; then, when asked, the latent :math:`(B, C_l, H, W)`
          and a list of attention maps :math:`(B, \text{heads}, S, H, W)`, one
          per layer, zero at out-of-image neighbours
    """

    def __init__(self, in_channels: int, latent_channels: Optional[int] = None,
                 num_layers: int = 3, *, connectivity: int = 8, dilation: int = 1,
                 heads: int = 1, concat: bool = True, score: str = 'center',
                 normalize: str = 'softmax', groups: int = 1,
                 act: Union[str, Callable, None] = 'relu', act_kwargs: Optional[dict] = None,
                 fuse: bool = False, bias: bool = True, path: str = 'auto',
                 residual: bool = True, norm: str = 'layer',
                 output_init: str = 'identity', recompute: bool = False) -> None:
        path = check_path(path, LGA_PATHS)
        stencil = grid_stencil(connectivity, dilation, True)  # validates both; on the CPU
        super().__init__(in_channels, latent_channels, num_layers, stencil.size(0),
                         heads=heads, concat=concat, score=score, edge_encoder='identity',
                         normalize=normalize, groups=groups, act=act, act_kwargs=act_kwargs,
                         fuse=fuse, bias=bias, path=path, residual=residual, norm=norm,
                         output_init=output_init, recompute=recompute)
        self.connectivity = connectivity
        self.dilation = dilation
        # The grid is built from the map inside the module, not taken from an input graph,
        # so a PyG explainer's mask over its input edges has nothing here to scale: hidden
        # from explainers (set_masks skips explain=False), as LatentGNN's latent edges are.
        for conv in self.convs:
            conv.explain = False
        self.offsets: Tuple[Tuple[int, int], ...] = tuple(
            (int(dx), int(dy)) for dx, dy in stencil.tolist())

    def forward(self, x: Tensor, *, path: Optional[str] = None, return_latent: bool = False,
                return_attention_weights: bool = False) -> Union[Tensor, Tuple[Any, ...]]:
        r"""Runs LGA on a feature map.

        Args:
            x (Tensor): ``(B, C, H, W)``.
            path (str, optional): Override ``self.path`` for this call.
            return_latent (bool, optional): Also return :math:`F_{out}`,
                ``(B, C_l, H, W)``, for :class:`~graphattn.LGALoss`.
            return_attention_weights (bool, optional): Also return a list of
                ``(B, heads, S, H, W)`` attention maps, one per layer: entry
                ``t`` is the weight of the neighbour at offset ``self.offsets[t]``.

        Returns:
            ``out``, followed by ``latent`` and/or the attention maps when
            asked (:func:`~graphattn.lga.with_extras`).
        """
        self._check_x(x, (f'(B, {self.in_channels}, H, W)',), (4,), 1)
        b, _, height, width = x.shape
        if height == 0 or width == 0:
            raise ValueError(f"'x' must have a non-empty map, H, W >= 1 (got shape "
                             f"{tuple(x.shape)})")
        h = self._project(x)
        graph = self.convs[0].prepare(h, grid=(height, width, self.offsets),
                                      path=self.path if path is None else path)
        h, attention = self.layers(h, graph, return_attention_weights)
        latent = h.view(b, height, width, self.latent_channels).permute(0, 3, 1, 2)
        maps: Optional[List[Tensor]] = None
        if return_attention_weights:
            maps = [attention_maps(att, height, width, self.offsets) for att in attention]
        return with_extras(self.output(x, latent, dim=1), latent if return_latent else None,
                           maps)

    def _project(self, x: Tensor) -> Tensor:
        """``proj`` on every pixel: ``(B, C, H, W)`` to ``(B, H*W, C_l)``."""
        pixels = x.permute(0, 2, 3, 1)
        b, height, width = pixels.shape[:3]
        if self.recompute and torch.is_grad_enabled():
            # The product copies the channels-last view into (B*H*W, C) and would keep
            # that copy for the weight's gradient: one map through the whole backward.
            # Recomputed, the backward keeps x itself (the view) and makes the copy only
            # at the end, with the same operations, so the same bits as without.
            h = checkpoint(self.proj, pixels, use_reentrant=False)
        else:
            h = self.proj(pixels)
        return h.reshape(b, height * width, self.latent_channels)

    def __repr__(self) -> str:
        extra = (f', connectivity={self.connectivity}' if self.connectivity != 8 else '') + (
            f', dilation={self.dilation}' if self.dilation != 1 else '')
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'latent_channels={self.latent_channels}, num_layers={self.num_layers}'
                f'{extra}{self._options()})')

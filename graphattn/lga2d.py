"""LGA on (B, C, H, W) feature maps, with a fast grid path."""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple, Union

import torch
from torch import Tensor

from graphs import grid_stencil
from graphs.validation import check_dtype

from .grid_attention import grid_attention, grid_edges
from .lga import LGA
from .lga_conv import LGAConv, non_default_options

__all__ = ['LGA2d', 'PATHS']

#: The computation paths :class:`LGA2d` accepts.
PATHS = ('auto', 'fast', 'message_passing')


def _check_path(path: Any) -> str:
    if path not in PATHS:
        raise ValueError(f"'path' must be one of {PATHS} (got {path!r})")
    return path


class LGA2d(LGA):
    r"""Latent Graph Attention (LGA) on image feature maps, from the
    `"Latent Graph Attention for Enhanced Spatial Context"
    <https://arxiv.org/abs/2307.04149>`_ paper (Singh et al.), for CNN
    backbones: :class:`~graphattn.LGA` on the grid graph of each
    ``H x W`` map (every pixel linked to its 8 neighbours and itself).

    .. math::
        \mathbf{h}^{(l)}_{p} = \sigma\Big(\sum_{t=0}^{8} \alpha^{(l)}_{p,t}\,
        \mathbf{V}^{(l)} \mathbf{h}^{(l-1)}_{p + \delta_t}\Big), \qquad
        \alpha^{(l)}_{p,t} = \operatorname{softmax}_{t:\, p + \delta_t \in
        \text{image}} \big( (\mathbf{W}^{(l)}_a \mathbf{h}^{(l-1)}_p)_t \big),

    with :math:`\delta_t = (dx, dy)` the stencil offsets of
    :func:`graphs.grid_stencil` (direction :math:`t` is the 3x3 convolution tap
    ``(t // 3, t % 3)``): :math:`\mathbf{W}_a` is the paper's set of
    per-direction 1x1 convolutions. Output: ``cat([x, h^(L)], dim=1)``, or a
    1x1 fusion of it back to ``in_channels`` with ``fuse=True``. See
    :class:`~graphattn.LGA` for which parts are our reading.

    Two paths compute the same function (to 1e-5, values and gradients):

    * ``'fast'`` (what ``'auto'`` picks): no edge list. The maps are read
      channels-last, ``(B, H, W, C)`` (free for ``channels_last`` inputs), so
      the 1x1 convolutions (logits, values) are matrix products, and the
      aggregation is a weighted sum of the nine shifted slices of the
      once-padded value map (:mod:`graphattn.grid_attention`), whose backward
      recomputes the shifted products instead of storing them. Out-of-image neighbours are left out of
      the softmax, as in the message-passing path where they have no edge.
    * ``'message_passing'``: :class:`~graphattn.LGAConv` on the edges of
      :func:`graphs.grid_graph` ``(H, W)`` (grouped by direction), the maps
      read as ``(B, H*W, C)`` node features sharing one topology.

    Both paths use the same parameters, so a ``state_dict`` serves either.

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
        normalize (str, optional): ``'softmax'`` or ``'sigmoid'``.
            (default: :obj:`'softmax'`)
        groups (int, optional): Groups of the value maps. (default: :obj:`1`)
        act (str or Callable, optional): Activation. (default: :obj:`'relu'`)
        act_kwargs (dict, optional): Arguments of ``act``.
        fuse (bool, optional): 1x1 map back to ``in_channels``.
            (default: :obj:`False`)
        bias (bool, optional): Learn biases. (default: :obj:`True`)
        path (str, optional): ``'auto'``, ``'fast'`` or ``'message_passing'``;
            can be overridden per call. (default: :obj:`'auto'`)

    Shapes:
        - **input:** :math:`(B, C, H, W)`
        - **output:** :math:`(B, C + C_l, H, W)`, or :math:`(B, C, H, W)` with
          ``fuse=True``; attention maps (when asked) :math:`(B, S, H, W)` per
          layer, zero at out-of-image neighbours
    """

    def __init__(self, in_channels: int, latent_channels: Optional[int] = None,
                 num_layers: int = 3, *, connectivity: int = 8, dilation: int = 1,
                 normalize: str = 'softmax', groups: int = 1,
                 act: Union[str, Callable, None] = 'relu', act_kwargs: Optional[dict] = None,
                 fuse: bool = False, bias: bool = True, path: str = 'auto') -> None:
        _check_path(path)
        stencil = grid_stencil(connectivity, dilation, True)  # validates both
        super().__init__(in_channels, latent_channels, num_layers, stencil.size(0),
                         edge_encoder='identity', normalize=normalize, groups=groups,
                         act=act, act_kwargs=act_kwargs, fuse=fuse, bias=bias)
        self.connectivity = connectivity
        self.dilation = dilation
        self.path = path
        self.offsets: Tuple[Tuple[int, int], ...] = tuple(
            (int(dx), int(dy)) for dx, dy in stencil.tolist())

    def _check_map(self, x: Any) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"'x' must be a Tensor of shape (B, {self.in_channels}, H, W) "
                            f"(got {type(x).__name__})")
        if x.dim() != 4 or x.size(1) != self.in_channels:
            raise ValueError(f"'x' must have shape (B, {self.in_channels}, H, W) "
                             f"(got shape {tuple(x.shape)})")
        if not x.is_floating_point():
            raise TypeError(f"'x' must be a floating-point tensor (got {x.dtype})")
        check_dtype('x', x, self.proj.weight.dtype)
        if x.size(2) == 0 or x.size(3) == 0:
            raise ValueError(f"'x' must have a non-empty map, H, W >= 1 (got shape "
                             f"{tuple(x.shape)})")

    def _fast_layer(self, conv: LGAConv, h: Tensor) -> Tuple[Tensor, Tensor]:
        # h: (B, H, W, C_l) channels-last; every 1x1 convolution is a Linear.
        logits = conv.lin_att(h)
        if conv.edge_encoder is not None:  # phi of the one-hot directions: an (S, A) matrix
            phi = conv.edge_encoder(torch.eye(len(self.offsets), dtype=h.dtype, device=h.device))
            logits = logits @ phi.t()
        out, alpha = grid_attention(logits, conv.lin_value(h), self.offsets, self.normalize)
        if conv.act is not None:
            out = conv.act(out)
        return out, alpha

    def _latent_fast(self, x: Tensor, need_attention: bool) -> Tuple[Tensor, List[Tensor]]:
        h = self.proj(x.permute(0, 2, 3, 1))  # (B, H, W, C_l)
        maps: List[Tensor] = []
        for conv in self.convs:
            h, alpha = self._fast_layer(conv, h)
            if need_attention:
                maps.append(alpha.permute(0, 3, 1, 2))
        return h.permute(0, 3, 1, 2), maps

    def _latent_message_passing(self, x: Tensor, need_attention: bool
                                ) -> Tuple[Tensor, List[Tensor]]:
        b, _, height, width = x.shape
        edge_index, direction = grid_edges(height, width, self.offsets, x.device)
        edge_attr = torch.eye(len(self.offsets), dtype=x.dtype,
                              device=x.device).index_select(0, direction)  # one-hot
        h = self.proj(x.flatten(2).transpose(1, 2))  # (B, H*W, C_l)
        maps: List[Tensor] = []
        for conv in self.convs:
            if need_attention:
                h, (_, alpha) = conv(h, edge_index, edge_attr, return_attention_weights=True)
                full = alpha.new_zeros(b, len(self.offsets), height * width)
                full[:, direction, edge_index[1]] = alpha
                maps.append(full.view(b, len(self.offsets), height, width))
            else:
                h = conv(h, edge_index, edge_attr)
        return h.transpose(1, 2).reshape(b, self.latent_channels, height, width), maps

    def forward(self, x: Tensor, *, path: Optional[str] = None, return_latent: bool = False,
                return_attention_weights: bool = False) -> Union[Tensor, Tuple[Any, ...]]:
        r"""Runs LGA on a feature map.

        Args:
            x (Tensor): ``(B, C, H, W)``.
            path (str, optional): Override ``self.path`` for this call.
            return_latent (bool, optional): Also return :math:`F_{out}`,
                ``(B, C_l, H, W)``, for :class:`~graphattn.LGALoss`.
            return_attention_weights (bool, optional): Also return a list of
                ``(B, S, H, W)`` attention maps, one per layer: entry ``t`` is
                the weight of the neighbour at offset ``self.offsets[t]``.

        Returns:
            ``out``, followed by ``latent`` and/or the attention maps when asked.
        """
        self._check_map(x)
        path = _check_path(self.path if path is None else path)
        if path == 'message_passing':
            h, maps = self._latent_message_passing(x, return_attention_weights)
        else:
            h, maps = self._latent_fast(x, return_attention_weights)
        return self.pack(self.output(x, h, dim=1), h, maps, return_latent,
                         return_attention_weights)

    def __repr__(self) -> str:
        extra = non_default_options(
            connectivity=(self.connectivity, 8), dilation=(self.dilation, 1),
            normalize=(self.normalize, 'softmax'), groups=(self.groups, 1),
            fuse=(self.fuse, False), path=(self.path, 'auto'))
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'latent_channels={self.latent_channels}, num_layers={self.num_layers}{extra})')

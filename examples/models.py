"""The networks the examples compare: a small encoder-decoder with a swappable
context block, the non-local block (embedded Gaussian) as the classic peer, and the
point-cloud segmenter of the cortex examples.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import MLP, EdgeConv

from graphattn import LGA, LatentGNN, LatentGNN2d, LGA2d

CONTEXTS = ('none', 'lga', 'lga+loss', 'latentgnn', 'nonlocal')
#: The names tables and figures show for each context block.
DISPLAY_NAMES = {'none': 'base', 'lga': 'base + LGA', 'lga+loss': 'base + LGA + LGALoss',
                 'latentgnn': 'base + LatentGNN', 'nonlocal': 'base + non-local'}


class NonLocal2d(nn.Module):
    """Non-local block, embedded Gaussian (Wang et al., CVPR 2018): O(N^2) attention."""

    def __init__(self, channels: int, inter_channels: int | None = None):
        super().__init__()
        inter = inter_channels or max(channels // 2, 1)
        self.theta = nn.Conv2d(channels, inter, 1)
        self.phi = nn.Conv2d(channels, inter, 1)
        self.g = nn.Conv2d(channels, inter, 1)
        self.out = nn.Sequential(nn.Conv2d(inter, channels, 1), nn.BatchNorm2d(channels))
        nn.init.zeros_(self.out[1].weight)  # starts as the identity, like LatentGNN's gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q = self.theta(x).flatten(2).transpose(1, 2)          # (B, N, C')
        k = self.phi(x).flatten(2)                            # (B, C', N)
        v = self.g(x).flatten(2).transpose(1, 2)              # (B, N, C')
        attn = torch.softmax(q @ k, dim=-1)                   # (B, N, N)
        y = (attn @ v).transpose(1, 2).reshape(b, -1, h, w)
        return x + self.out(y)


def conv_block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def context_block(name: str, channels: int) -> nn.Module:
    if name == 'none':
        return nn.Identity()
    if name in ('lga', 'lga+loss'):
        return LGA2d(channels, num_layers=4, fuse=True)
    if name == 'latentgnn':
        return LatentGNN2d(channels, latent_dims=[32], channel_stride=4)
    if name == 'nonlocal':
        return NonLocal2d(channels)
    raise ValueError(f"unknown context {name!r}; choose one of {CONTEXTS}")


class SegNet(nn.Module):
    """A small U-Net: encoder to 1/8 resolution -> context block -> decoder with skips.

    Encoder: conv blocks (3x3 conv, batch norm, ReLU), two at 1/2 and two at 1/4
    resolution, three at 1/8 with the third dilated by 2 (widths w, 2w, 4w); the context
    block (none, LGA, LGA + LGALoss, LatentGNN, non-local: see :func:`context_block`) sits
    on the 1/8 map; the decoder upsamples twice,
    concatenating the encoder's 1/4 and 1/2 features, predicts logits at 1/2 resolution and
    upsamples them bilinearly to the input's size. Inputs are standardised with fixed
    constants (``mean``, ``std``: the collages' pixel statistics).

    The encoder's convolutions alone see 75x75 input pixels per 1/8 feature (receptive
    field), with most of their weight near the centre. A block that gathers a whole item
    (LGA: 4 more hops at 1/8) or the whole image (LatentGNN, non-local) can add to that;
    whether it does is what the demo measures.
    """

    def __init__(self, context: str = 'none', width: int = 16, num_classes: int = 11,
                 in_channels: int = 1, mean: float = 0.3, std: float = 0.3):
        super().__init__()
        self.context_name = context
        self.mean, self.std = mean, std
        w = width
        self.enc1 = nn.Sequential(conv_block(in_channels, w, 2), conv_block(w, w))      # 1/2
        self.enc2 = nn.Sequential(conv_block(w, 2 * w, 2), conv_block(2 * w, 2 * w))   # 1/4
        self.enc3 = nn.Sequential(conv_block(2 * w, 4 * w, 2), conv_block(4 * w, 4 * w),  # 1/8
                                  conv_block(4 * w, 4 * w, dilation=2))
        self.dec2 = conv_block(6 * w, 2 * w)
        self.dec1 = conv_block(3 * w, w)
        self.head = nn.Conv2d(w, num_classes, 1)
        # Drawn after the base's weights, so that at one seed every row starts from the same
        # base and differs only by its block (docs/lga.md: the collages' seed-2 'collapse'
        # was the decoder's draw, which the block's weights used to shift).
        self.context = context_block(context, 4 * w)

    def encode(self, image: torch.Tensor):
        """The encoder's skip features and its 1/8 map (the context block's input)."""
        f1 = self.enc1((image - self.mean) / self.std)
        f2 = self.enc2(f1)
        return f1, f2, self.enc3(f2)

    def decode(self, f1, f2, f3, size) -> torch.Tensor:
        up = F.interpolate(f3, size=f2.shape[-2:], mode='bilinear', align_corners=False)
        d2 = self.dec2(torch.cat([up, f2], 1))
        up = F.interpolate(d2, size=f1.shape[-2:], mode='bilinear', align_corners=False)
        d1 = self.dec1(torch.cat([up, f1], 1))
        return F.interpolate(self.head(d1), size=size, mode='bilinear', align_corners=False)

    def forward(self, image: torch.Tensor, return_latent: bool = False):
        f1, f2, f3 = self.encode(image)
        latent = None
        if isinstance(self.context, LGA2d) and return_latent:
            f3, latent = self.context(f3, return_latent=True)
        else:
            f3 = self.context(f3)
        logits = self.decode(f1, f2, f3, image.shape[-2:])
        return (logits, latent) if return_latent else logits


class DehazeNet(nn.Module):
    """A small U-Net-like encoder-decoder for image restoration (the dehazing tutorial).

    Encoder: full, 1/2 and 1/4 resolution (conv blocks as in :class:`SegNet`, widths w, 2w,
    4w); the context block (none, LGA, LatentGNN, ... see :func:`context_block`) sits on the
    1/4 map; the decoder upsamples twice, concatenating the encoder's skip features, and
    predicts a residual: ``clean = hazy + residual``. Removing haze needs the airlight A and
    the transmission t, which are smooth over the whole crop: a pixel's correction depends on
    its surroundings.
    """

    def __init__(self, context: str = 'none', width: int = 16, channels: int = 3):
        super().__init__()
        self.context_name = context
        self.enc1 = conv_block(channels, width)                              # full resolution
        self.enc2 = conv_block(width, 2 * width, 2)                          # 1/2
        self.enc3 = nn.Sequential(conv_block(2 * width, 4 * width, 2),       # 1/4
                                  conv_block(4 * width, 4 * width))
        self.dec2 = conv_block(6 * width, 2 * width)
        self.dec1 = conv_block(3 * width, width)
        self.head = nn.Conv2d(width, channels, 1)
        # Drawn after the base's weights, so that at one seed every row starts from the same
        # base and differs only by its block (docs/lga.md: the collages' seed-2 'collapse'
        # was the decoder's draw, which the block's weights used to shift).
        self.context = context_block(context, 4 * width)

    def forward(self, hazy: torch.Tensor) -> torch.Tensor:
        f1 = self.enc1(hazy)
        f2 = self.enc2(f1)
        f3 = self.context(self.enc3(f2))
        up = F.interpolate(f3, size=f2.shape[-2:], mode='bilinear', align_corners=False)
        d2 = self.dec2(torch.cat([up, f2], 1))
        up = F.interpolate(d2, size=f1.shape[-2:], mode='bilinear', align_corners=False)
        d1 = self.dec1(torch.cat([up, f1], 1))
        return hazy + self.head(d1)


class PointSegNet(nn.Module):
    """EdgeConv x2 -> context block -> per-point MLP: the segmenter of
    ``segment_cortex.py`` and ``segment_points.py``.

    Its input is a batch of kNN graphs with self-loops whose ``edge_attr`` holds the
    neighbour offsets (:func:`graphs.collate_clouds`); its output, logits per point.

    Args:
        context: ``None`` (the base), or ``width -> block`` for an :class:`~graphattn.LGA`
            (run on the same kNN graph) or a :class:`~graphattn.LatentGNN` (latent nodes per
            cloud of the batch); each script says how deep or wide its block is.
        width: channels of every layer.
        num_classes: classes of the per-point MLP.
        position_only: a floor without a graph: a per-point MLP on the coordinates replaces
            the EdgeConvs (which are still drawn, so the head starts from the same weights).
        extra_convs: more EdgeConv layers after the two (a rival of a block: more
            convolution, hence more hops, for the same parameters), drawn after the base's
            weights as a block is.
    """

    def __init__(self, context: Optional[Callable[[int], nn.Module]] = None, width: int = 32,
                 num_classes: int = 4, position_only: bool = False, extra_convs: int = 0):
        super().__init__()
        self.conv1 = EdgeConv(MLP([2 * 3, width, width]), aggr='max')
        self.conv2 = EdgeConv(MLP([2 * width, width, width]), aggr='max')
        self.point_mlp = MLP([3, width, width]) if position_only else None
        self.head = MLP([width, width, num_classes], dropout=0.1)
        self.extra = nn.ModuleList([EdgeConv(MLP([2 * width, width, width]), aggr='max')
                                    for _ in range(extra_convs)])
        # Drawn after the base's weights, so that at one seed every row starts from the same
        # base and differs only by its block (docs/lga.md: the collages' seed-2 'collapse'
        # was the decoder's draw, which the block's weights used to shift).
        self.context = None if context is None else context(width)
        if self.context is not None and not isinstance(self.context, (LGA, LatentGNN)):
            raise TypeError(f"the context block must be an LGA or a LatentGNN, got "
                            f"{type(self.context).__name__}")

    def forward(self, data: Data | Batch) -> torch.Tensor:
        if self.point_mlp is not None:              # the position-only floor: no graph
            return self.head(self.point_mlp(data.pos))
        h = self.conv2(self.conv1(data.pos, data.edge_index), data.edge_index)
        for conv in self.extra:
            h = conv(h, data.edge_index)
        if isinstance(self.context, LGA):           # loop=True kNN edges, edge_attr = offsets
            h = self.context(h, data.edge_index, data.edge_attr)
        elif isinstance(self.context, LatentGNN):   # latent nodes per cloud (one: a Data)
            batch_size = data.num_graphs if isinstance(data, Batch) else None
            h = self.context(h, data.batch, batch_size=batch_size)
        return self.head(h)

"""The networks the examples compare: a small encoder-decoder with a swappable
context block, and the non-local block (embedded Gaussian) as the classic peer.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from graphattn import LatentGNN2d, LGA2d

CONTEXTS = ('none', 'lga', 'lga+loss', 'latentgnn', 'nonlocal')


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


def conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
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
    """Encoder (4x down) -> context block at 1/4 resolution -> decoder (4x up).

    The encoder alone sees about 19x19 input pixels per feature (receptive field),
    less than a pasted item (56 or 84 pixels): deciding an item's class from a
    pixel inside it needs the context block.
    """

    def __init__(self, context: str = 'none', width: int = 32, num_classes: int = 11,
                 in_channels: int = 1):
        super().__init__()
        self.context_name = context
        self.encoder = nn.Sequential(conv_block(in_channels, width), conv_block(width, width, 2),
                                     conv_block(width, 2 * width, 2))
        self.context = context_block(context, 2 * width)
        self.decoder = nn.Sequential(conv_block(2 * width, width),
                                     nn.Conv2d(width, num_classes, 1))

    def forward(self, image: torch.Tensor, return_latent: bool = False):
        features = self.encoder(image)
        latent = None
        if isinstance(self.context, LGA2d) and return_latent:
            features, latent = self.context(features, return_latent=True)
        else:
            features = self.context(features)
        logits = F.interpolate(self.decoder(features), size=image.shape[-2:], mode='bilinear',
                               align_corners=False)
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
        self.context = context_block(context, 4 * width)
        self.dec2 = conv_block(6 * width, 2 * width)
        self.dec1 = conv_block(3 * width, width)
        self.head = nn.Conv2d(width, channels, 1)

    def forward(self, hazy: torch.Tensor) -> torch.Tensor:
        f1 = self.enc1(hazy)
        f2 = self.enc2(f1)
        f3 = self.context(self.enc3(f2))
        up = F.interpolate(f3, size=f2.shape[-2:], mode='bilinear', align_corners=False)
        d2 = self.dec2(torch.cat([up, f2], 1))
        up = F.interpolate(d2, size=f1.shape[-2:], mode='bilinear', align_corners=False)
        d1 = self.dec1(torch.cat([up, f1], 1))
        return hazy + self.head(d1)

"""A linear map with block-diagonal weights: the grouped 1x1 convolution of LGA's values."""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import Module, Parameter

from graphs.validation import check_positive_int

__all__ = ['GroupedLinear']


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
        check_positive_int('in_channels', in_channels)
        check_positive_int('out_channels', out_channels)
        check_positive_int('groups', groups)
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

"""Node-wise normalisation layers for (N, C) node features.

LatentGNN normalises after every linear map.  On feature maps the authors use
``BatchNorm2d``; on nodes stacked as an ``(N, C)`` tensor (``N`` = all nodes of
all graphs, or ``B * H * W`` pixels), :class:`torch.nn.BatchNorm1d` computes
exactly the same statistics, so the two are interchangeable, state dict
included.

Which norm for which input: batch statistics are the statistics of a batch's
nodes in training and running averages in ``eval()``.  For batches of images
the two agree; for one or two graphs per step (point clouds, crops of one
large cloud) the training statistics are those of one graph and the running
averages are not, so the eval output drifts from what training optimised
(``tests/test_latentgnn_defaults.py``).  Hence :class:`~graphattn.LatentGNN`
(nodes) defaults to ``'layer'``, which normalises each node on its own, and
:class:`~graphattn.LatentGNN2d` (feature maps) keeps the authors' ``'batch'``.
"""
from __future__ import annotations

from typing import Callable, Union

import torch
from torch import Tensor, nn

__all__ = ['FrozenBatchNorm', 'make_norm', 'check_norm', 'check_batch_norm_nodes', 'NORMS',
           'NormSpec']

NormSpec = Union[str, Callable[[int], nn.Module]]

#: The names accepted by :func:`make_norm`.
NORMS = ('batch', 'layer', 'none', 'frozen')


class FrozenBatchNorm(nn.Module):
    r"""Batch norm with fixed statistics and affine map, all stored as buffers.

    .. math::
        \mathbf{y} = (\mathbf{x} - \boldsymbol{\mu}) \cdot
        \frac{\boldsymbol{\gamma}}{\sqrt{\boldsymbol{\sigma}^2 + \epsilon}}
        + \boldsymbol{\beta}

    This is the norm of detection backbones (maskrcnn-benchmark's
    ``FrozenBatchNorm2d``, whose :math:`\epsilon` is 0): it has no trainable
    parameters, and at initialisation (:math:`\gamma = 1, \beta = 0,
    \mu = 0, \sigma^2 = 1`) it is the identity.  Buffers are named as in
    :class:`torch.nn.BatchNorm1d` (``weight``, ``bias``, ``running_mean``,
    ``running_var``), so batch-norm checkpoints load into it.

    Args:
        num_features (int): channels :math:`C`.
        eps (float, optional): added to the variance. (default: :obj:`0.0`)

    Shapes:
        - **input:** :math:`(*, C)`
        - **output:** :math:`(*, C)`
    """
    weight: Tensor
    bias: Tensor
    running_mean: Tensor
    running_var: Tensor

    def __init__(self, num_features: int, eps: float = 0.0) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer('weight', torch.ones(num_features))
        self.register_buffer('bias', torch.zeros(num_features))
        self.register_buffer('running_mean', torch.zeros(num_features))
        self.register_buffer('running_var', torch.ones(num_features))

    def reset_parameters(self) -> None:
        self.weight.fill_(1.0)
        self.bias.fill_(0.0)
        self.running_mean.fill_(0.0)
        self.running_var.fill_(1.0)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Accept batch-norm checkpoints, which also carry a step counter.
        state_dict.pop(prefix + 'num_batches_tracked', None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale + shift

    def extra_repr(self) -> str:
        return f'{self.num_features}, eps={self.eps}'


def make_norm(norm: NormSpec, num_features: int) -> nn.Module:
    r"""Build the norm that follows a linear map on ``(N, num_features)`` nodes.

    * ``'batch'``: :class:`torch.nn.BatchNorm1d` over all nodes of the batch
      (on feature maps: the statistics of ``BatchNorm2d``).
    * ``'layer'``: :class:`torch.nn.LayerNorm` over the channels of each node.
    * ``'none'``: the identity.
    * ``'frozen'``: :class:`FrozenBatchNorm` (buffers only, identity at init).
    * a callable ``f(num_features) -> nn.Module`` acting on ``(N, C)``.
    """
    if not isinstance(check_norm(norm), str):
        return norm(num_features)
    if norm == 'batch':
        return nn.BatchNorm1d(num_features)
    if norm == 'layer':
        return nn.LayerNorm(num_features)
    if norm == 'none':
        return nn.Identity()
    return FrozenBatchNorm(num_features)


def check_norm(norm: NormSpec) -> NormSpec:
    """``norm`` must be one of :data:`NORMS` or a callable ``num_features -> nn.Module``."""
    if not (callable(norm) and not isinstance(norm, str)) and norm not in NORMS:
        raise ValueError(f"'norm' must be one of {NORMS} or a callable "
                         f"num_features -> nn.Module (got {norm!r})")
    return norm


def check_batch_norm_nodes(name: str, num_nodes: int, norm: NormSpec, training: bool) -> None:
    """``norm='batch'`` in training needs more than one node (as ``BatchNorm2d``
    needs more than one pixel); ``BatchNorm1d``'s own message names a reduced
    width, not the input."""
    if training and norm == 'batch' and num_nodes == 1:
        raise ValueError(f"'{name}' holds a single node: norm='batch' needs more than one "
                         "node per batch in training (as BatchNorm2d needs more than one "
                         "pixel); call .eval() or use norm='layer'")

r"""The authors' ``LatentGNNV1`` block (their released PyTorch code): its
parameter count, and the conversion of its checkpoints to
:class:`~graphattn.LatentGNN` / :class:`~graphattn.LatentGNN2d` state dicts."""
from __future__ import annotations

from typing import Dict, Mapping, Sequence

from torch import Tensor

__all__ = ['latentgnn_num_parameters', 'convert_official_state_dict']

# The authors' module names -> ours.
_PREFIXES = {'down_channel_v2l': 'down_v2l', 'down_channel_l2v': 'down_l2v',
             'down_channel': 'down', 'up_channel': 'up'}
_KERNEL_PARTS = {'psi_v2l': 'psi_v2l', 'psi_l2v': 'psi_l2v', 'psi': 'psi',
                 'GraphConvWeight': 'graph_conv'}
_KERNEL_PREFIX = 'LatentGNN_Kernel_'


def latentgnn_num_parameters(in_channels: int, latent_dims: Sequence[int],
                             channel_stride: int = 4, mode: str = 'asymmetric',
                             graph_conv: bool = False, norm: str = 'batch') -> int:
    r"""Trainable parameter count of :class:`~graphattn.LatentGNN` (and of the authors' block).

    With :math:`C' = C / s`, :math:`K` kernels of latent sizes :math:`d_k`,
    :math:`a = 2` (asymmetric) or :math:`1` (symmetric), :math:`g = 1` with
    graph conv, and :math:`n = 2` for ``'batch'`` / ``'layer'`` norms, else 0:

    .. math::
        a C C' + \sum_k \left(a C' d_k + g C'^2\right) + K C' C + 1
        + n \left(a C' + \sum_k (a d_k + g C') + C\right)
    """
    c = in_channels // channel_stride
    k = len(latent_dims)
    a = 2 if mode == 'asymmetric' else 1
    g = 1 if graph_conv else 0
    n = 2 if norm in ('batch', 'layer') else 0
    weights = a * in_channels * c + sum(a * c * d + g * c * c for d in latent_dims) \
        + k * c * in_channels + 1
    norms = n * (a * c + sum(a * d + g * c for d in latent_dims) + in_channels)
    return weights + norms


def _unexpected(key: str) -> KeyError:
    return KeyError(f'unexpected key in the official state dict: {key!r}')


def convert_official_state_dict(state_dict: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """The authors' state dict with our key names and weight shapes.

    Keys ``down_channel_v2l.0.weight`` (a ``(C', C, 1, 1)`` conv weight),
    ``down_channel_v2l.1.*`` (its norm), likewise ``down_channel_l2v``,
    ``down_channel``, ``up_channel``, ``LatentGNN_Kernel_{i}.psi_v2l`` /
    ``psi_l2v`` / ``psi`` / ``GraphConvWeight``, and ``gamma``, are renamed,
    conv weights flattened to linear weights. A ``module.`` prefix
    (``DataParallel``) is stripped; any other key raises :class:`KeyError`.
    """
    out: Dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith('module.'):
            key = key[len('module.'):]
        parts = key.split('.')
        if parts == ['gamma']:
            out['gamma'] = value
            continue
        if parts[0].startswith(_KERNEL_PREFIX) and len(parts) == 4 \
                and parts[1] in _KERNEL_PARTS:
            base = f'kernels.{parts[0][len(_KERNEL_PREFIX):]}.{_KERNEL_PARTS[parts[1]]}'
            layer, name = parts[2], parts[3]
        elif parts[0] in _PREFIXES and len(parts) == 3:
            base, layer, name = _PREFIXES[parts[0]], parts[1], parts[2]
        else:
            raise _unexpected(key)
        if layer == '0':      # the 1x1 conv
            if name != 'weight':
                raise _unexpected(key)
            out[f'{base}.weight'] = value.reshape(value.shape[0], -1)
        elif layer == '1':    # its norm
            out[f'{base}_norm.{name}'] = value
        else:
            raise _unexpected(key)
    return out

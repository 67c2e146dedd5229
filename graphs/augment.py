"""Random rotations and poses of point clouds (augmentation: a model trained on rotated
views has to read a label from the shape around a point, not from its coordinates)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .validation import check_points, check_positive_float, check_positive_int

__all__ = ['random_rotation', 'random_rotate', 'random_pose']


def random_rotation(dim: int = 3, *, axis: Optional[int] = None,
                    generator: Optional[torch.Generator] = None,
                    dtype: torch.dtype = torch.float32,
                    device: Optional[torch.device] = None) -> Tensor:
    r"""A random rotation matrix :math:`\mathbf{R}` (:math:`\mathbf{R}^\top
    \mathbf{R} = \mathbf{I}`, :math:`\det \mathbf{R} = 1`).

    Without ``axis``, uniform over all rotations (the Haar measure on
    :math:`SO(D)`): the QR decomposition of a Gaussian matrix with the signs
    of :math:`\mathbf{R}`'s diagonal moved into :math:`\mathbf{Q}` (Mezzadri,
    2007), a column negated when the determinant is :math:`-1`.  With
    ``axis`` (3-D only), a rotation about that coordinate axis by a uniform
    angle (scenes with a known up direction).

    Args:
        dim (int, optional): Dimension :math:`D`. (default: :obj:`3`)
        axis (int, optional): Rotate about this axis only (``dim=3``).
        generator (torch.Generator, optional): Source of randomness.
        dtype (torch.dtype, optional): (default: :obj:`torch.float32`)
        device (torch.device, optional): (default: CPU)

    Returns:
        Tensor ``(D, D)``; rotate points with ``pos @ R.T``.
    """
    check_positive_int('dim', dim)
    if axis is not None:
        if dim != 3 or not isinstance(axis, int) or not 0 <= axis < 3:
            raise ValueError(f"'axis' must be 0, 1 or 2 and needs dim=3 (got axis={axis!r}, "
                             f"dim={dim})")
        angle = torch.rand((), generator=generator, dtype=torch.float64) * 2 * torch.pi
        c, s = torch.cos(angle), torch.sin(angle)
        i, j = [a for a in range(3) if a != axis]
        rotation = torch.eye(3, dtype=torch.float64)
        rotation[i, i], rotation[i, j], rotation[j, i], rotation[j, j] = c, -s, s, c
        return rotation.to(dtype=dtype, device=device)
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r)).view(1, -1)
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q.to(dtype=dtype, device=device)


def random_rotate(pos: Tensor, *, axis: Optional[int] = None, center: bool = False,
                  generator: Optional[torch.Generator] = None) -> Tensor:
    """``pos`` ``(N, D)`` rotated by :func:`random_rotation` (about the origin,
    or about the cloud's centroid with ``center=True``, which also moves the
    centroid to the origin)."""
    pos = check_points('pos', pos)
    rotation = random_rotation(pos.size(1), axis=axis, generator=generator, dtype=pos.dtype,
                               device=pos.device)
    if center and pos.size(0) > 0:
        pos = pos - pos.mean(0, keepdim=True)
    return pos @ rotation.t()


def random_pose(pos: Tensor, *, scale: float = 1.0, rotate: bool = True,
                axis: Optional[int] = None,
                generator: Optional[torch.Generator] = None) -> Tensor:
    r"""A crop of a cloud in a random pose: centred on its centroid, divided by ``scale``
    and turned by :func:`random_rotation`,

    .. math::
        \mathbf{p}'_i = \frac{\mathbf{p}_i - \bar{\mathbf{p}}}{s} \, \mathbf{R}^\top

    so that a model sees every crop at the same size and in some orientation, never at its
    place in the whole cloud.

    Args:
        pos (Tensor): Coordinates ``(N, D)``.
        scale (float, optional): :math:`s`, e.g. a crop's radius (the crop then fits
            about the unit ball). (default: :obj:`1.0`)
        rotate (bool, optional): Turn the crop; :obj:`False` only centres and scales it
            (and draws nothing from ``generator``). (default: :obj:`True`)
        axis (int, optional): Turn about this axis only (3-D, see
            :func:`random_rotation`); :obj:`None`: any rotation.
        generator (torch.Generator, optional): Source of the rotation.

    Returns:
        Tensor ``(N, D)``.
    """
    pos = check_points('pos', pos)
    check_positive_float('scale', scale)
    if pos.size(0) > 0:
        # Centre, then scale (not the reverse): the demo's cortex numbers were made this way.
        pos = (pos - pos.mean(0)) / scale
    return random_rotate(pos, axis=axis, generator=generator) if rotate else pos

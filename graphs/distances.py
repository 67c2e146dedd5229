"""The numbers the search engines compare: dtype, exact scaling, cosine directions.

Neighbour ranks depend only on the ratios of distances, so the engines may work
on any copy of the points whose distances are the true ones times a constant.
:func:`working_points` makes that copy so that the squared distances the
engines form neither overflow nor underflow:

* it works in float32 at least (float16/bfloat16 inputs are widened: their
  rounded distances and a rounded ``r`` drop neighbours strictly inside ``r``),
  and in float64 for float64 and integer inputs;
* it multiplies by a power of two (exact: no coordinate is rounded) that brings
  the largest coordinate into ``[0.5, 1)``, so float32 coordinates near 1e19
  (whose squares overflow) and near 1e-22 (whose squares underflow) rank like
  any others;
* it falls back to float64 when the nonzero magnitudes span more than float32's
  squares can hold (smallest / largest below ``2 ** -36``): two distinct
  coordinates may then differ by less than ``2 ** -63`` of the largest, and
  their squared difference would underflow in float32.

The limit left: float64 coordinates whose differences are below about
``2 ** -511`` (1e-154) of the largest coordinate still underflow when squared.

For ``cosine=True`` the rows become unit vectors first (see :func:`unit_rows`).
"""
from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import Tensor

__all__ = ['working_points', 'unit_rows', 'output_dtype', 'scaled_radius', 'times_power_of_two']

# float32 squares stay normal when every coordinate is at least this fraction of the largest.
_FLOAT32_RANGE = 2.0 ** -36
# Height of the extra axis that carries zero rows under cosine=True (see unit_rows).
_ZERO_ROW_HEIGHT = 2.0


def output_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of returned distances: at least float32; the default dtype for integers."""
    if not dtype.is_floating_point:
        return torch.get_default_dtype()
    return torch.promote_types(dtype, torch.float32)


def _largest(*tensors: Tensor) -> float:
    return max((float(t.detach().abs().max()) for t in tensors if t.numel()), default=0.0)


def _smallest_nonzero(*tensors: Tensor) -> float:
    values = [t.detach().abs() for t in tensors if t.numel()]
    values = [float(torch.where(v > 0, v, torch.full_like(v, float('inf'))).min())
              for v in values]
    return min(values, default=float('inf'))


def unit_rows(x: Tensor, y: Tensor) -> Tuple[Tensor, Tensor]:
    """Rows of ``x`` and ``y`` as float64 unit vectors, for cosine distance.

    Each row is divided by its largest entry before its norm is taken, so rows
    whose squared norm would overflow (float16 norms above 65504, float32
    entries near 1e20) or underflow (norms below 1e-19) keep their direction.

    A zero row has no direction, so its cosine distance is undefined; it must
    not win by accident (at the origin it would sit at distance 1 from every
    unit vector, nearer than any vector more than 90 degrees away). When any
    row is zero, every row gets one extra coordinate: 0 for unit vectors and
    ``2`` for zero rows. A zero row then lies sqrt(5) from every unit vector,
    farther than any two unit vectors (at most 2) can be: it ranks after every
    nonzero row, and zero rows are each other's nearest neighbours (they are
    equal vectors).
    """
    def normalise(v: Tensor) -> Tuple[Tensor, Tensor]:
        v = v.detach().double()
        peak = v.abs().amax(dim=1, keepdim=True) if v.size(1) else v.new_zeros(v.size(0), 1)
        zero = peak == 0
        v = v / torch.where(zero, torch.ones_like(peak), peak)
        v = v / torch.where(zero, torch.ones_like(peak), v.norm(dim=1, keepdim=True))
        return v, zero
    ux, zx = normalise(x)
    uy, zy = (ux, zx) if y is x else normalise(y)
    if bool(zx.any()) or bool(zy.any()):
        ux = torch.cat([ux, zx.double() * _ZERO_ROW_HEIGHT], dim=1)
        uy = torch.cat([uy, zy.double() * _ZERO_ROW_HEIGHT], dim=1)
    return ux, uy


def times_power_of_two(t: Tensor, shift: int) -> Tensor:
    """``t * 2 ** shift``, exact while the result stays normal in ``t``'s dtype.

    Multiplies by factors of at most ``2 ** 100`` (representable in float32),
    so that a shift beyond float32's exponent range does not overflow the factor.
    """
    while shift:
        step = max(-100, min(100, shift))
        t = t * (2.0 ** step)
        shift -= step
    return t


def scaled_radius(r: float, shift: int) -> float:
    """``r * 2 ** shift`` as a Python float (inf on overflow, never 0 for ``r > 0``)."""
    try:
        value = math.ldexp(r, shift)
    except OverflowError:
        return float('inf')
    # An underflow to 0 would exclude duplicate points (distance 0 < r).
    return value if value > 0 else math.ulp(0.0)


def working_points(x: Tensor, y: Tensor, cosine: bool = False) -> Tuple[Tensor, Tensor, int]:
    """Copies of ``x`` (the points searched) and ``y`` (the queries) for the engines.

    Returns:
        ``(x_w, y_w, shift)``: floating tensors whose distances are the true
        ones (cosine: those between unit vectors) times ``2 ** shift``. Scale a
        radius with :func:`scaled_radius` and the engines' distances back with
        ``times_power_of_two(dist, -shift)``.
    """
    narrow = all(t.dtype in (torch.float16, torch.bfloat16, torch.float32) for t in (x, y))
    same = y is x  # a set searched in itself: one copy serves both roles
    if cosine:
        x, y = unit_rows(x, y)
    else:
        x, y = x.detach(), y.detach()
    both = (x,) if same else (x, y)
    largest = _largest(*both)
    # frexp: largest = m * 2**e with m in [0.5, 1); multiplying by 2**-e is exact.
    shift = -math.frexp(largest)[1] if largest > 0 else 0
    dtype = torch.float64
    if narrow and _smallest_nonzero(*both) >= _FLOAT32_RANGE * largest:
        dtype = torch.float32
    x_w = times_power_of_two(x.to(dtype), shift)
    y_w = x_w if same else times_power_of_two(y.to(dtype), shift)
    return x_w, y_w, shift

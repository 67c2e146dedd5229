"""Argument checks shared by the graph builders.

Every public builder validates its inputs up front so that a wrong shape or
dtype is reported with the argument's name and the expected form, instead of
failing deep inside PyTorch or returning a silently wrong graph.
"""
from __future__ import annotations

import os
import sys
import warnings
from typing import Optional

import torch
from torch import Tensor


def check_positive_int(name: str, value, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"'{name}' must be an int (got {type(value).__name__})")
    if value < minimum:
        raise ValueError(f"'{name}' must be >= {minimum} (got {value})")
    return value


def check_positive_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"'{name}' must be a number (got {type(value).__name__})")
    value = float(value)
    if not value > 0 or value != value or value == float('inf'):
        raise ValueError(f"'{name}' must be a finite number > 0 (got {value})")
    return value


def check_points(name: str, pos) -> Tensor:
    """``pos`` must be a finite floating (N, D) tensor (a 1-D tensor is read as D = 1)."""
    if not isinstance(pos, Tensor):
        raise TypeError(f"'{name}' must be a torch.Tensor of shape (N, D) "
                        f"(got {type(pos).__name__})")
    if pos.dim() == 1:
        pos = pos.view(-1, 1)
    if pos.dim() != 2 or pos.size(1) == 0:
        raise ValueError(f"'{name}' must have shape (N, D) with D >= 1 "
                         f"(got shape {tuple(pos.shape)})")
    if not pos.is_floating_point():
        raise TypeError(f"'{name}' must be a floating-point tensor (got {pos.dtype})")
    if pos.numel() > 0 and not bool(torch.isfinite(pos).all()):
        raise ValueError(f"'{name}' contains NaN or infinite values")
    return pos


def check_batch(batch: Optional[Tensor], num_nodes: int, *,
                name: str = 'batch') -> Optional[Tensor]:
    """``batch`` must be None or a sorted, non-negative integer vector of length N."""
    if batch is None:
        return None
    if not isinstance(batch, Tensor):
        raise TypeError(f"'{name}' must be a torch.Tensor of shape (N,) or None "
                        f"(got {type(batch).__name__})")
    if batch.is_floating_point() or batch.is_complex() or batch.dtype == torch.bool:
        raise TypeError(f"'{name}' must be an integer tensor (got {batch.dtype})")
    if batch.dim() != 1 or batch.numel() != num_nodes:
        raise ValueError(f"'{name}' must have shape ({num_nodes},), one graph index per "
                         f"node (got shape {tuple(batch.shape)})")
    if batch.numel() > 0:
        if int(batch.min()) < 0:
            raise ValueError(f"'{name}' must hold non-negative graph indices")
        if batch.numel() > 1 and not bool((batch[1:] >= batch[:-1]).all()):
            raise ValueError(f"'{name}' must be sorted (nodes of one graph contiguous, "
                             f"as in a PyG Batch)")
    return batch.long()


def check_edge_index(name: str, edge_index, num_nodes: Optional[int] = None) -> Tensor:
    """``edge_index`` must be a ``(2, E)`` integer tensor of indices in ``[0, num_nodes)``."""
    if not isinstance(edge_index, Tensor) or edge_index.is_sparse:
        raise TypeError(f"'{name}' must be a dense (2, E) integer torch.Tensor "
                        f"(got {type(edge_index).__name__})")
    if edge_index.is_floating_point() or edge_index.is_complex() or (
            edge_index.dtype == torch.bool):
        raise TypeError(f"'{name}' must be an integer tensor (got {edge_index.dtype})")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"'{name}' must have shape (2, E) (got shape "
                         f"{tuple(edge_index.shape)})")
    if edge_index.numel() > 0:
        if int(edge_index.min()) < 0:
            raise ValueError(f"'{name}' must hold non-negative node indices")
        if num_nodes is not None and int(edge_index.max()) >= num_nodes:
            raise ValueError(f"'{name}' holds node indices >= the number of nodes "
                             f"({num_nodes})")
    return edge_index.long()


def check_flow(flow: str) -> str:
    if flow not in ('source_to_target', 'target_to_source'):
        raise ValueError("'flow' must be 'source_to_target' or 'target_to_source' "
                         f"(got {flow!r})")
    return flow


def check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"'{name}' must be a bool (got {type(value).__name__})")
    return value


def check_same_device(ref_name: str, ref, **others) -> None:
    """Every tensor of ``others`` must be on the device of ``ref`` (named ``ref_name``).

    ``None`` entries and non-tensors (a sparse adjacency of torch-sparse, say)
    are skipped; a pair ``(src, dst)`` is checked entry by entry. Reads no
    data, so it costs nothing and runs first: otherwise a kernel mixing a CUDA
    tensor with a CPU one fails with a message naming neither argument, and a
    data-reading check (a sorted ``batch``, an index range) may fail first
    with a confusing one.
    """
    if not isinstance(ref, Tensor):
        return
    for name, value in others.items():
        parts = value if isinstance(value, (tuple, list)) else (value,)
        for i, part in enumerate(parts):
            if isinstance(part, Tensor) and part.device != ref.device:
                which = f'{name}[{i}]' if isinstance(value, (tuple, list)) else name
                raise ValueError(f"'{which}' is on {part.device} but '{ref_name}' is on "
                                 f"{ref.device}: move them to one device (e.g. "
                                 f"{name}.to({ref_name}.device))")


def check_index_range(name: str, index: Tensor, limit: int, what: str = 'the number of nodes'
                      ) -> None:
    """Every entry of the integer tensor ``index`` must lie in ``[0, limit)``.

    One reduction and one device sync; skipped under :func:`torch.compile`
    (it reads data). It exists for devices where an out-of-range
    ``index_select`` is not an :class:`IndexError` but a device-side assert
    that leaves the CUDA context unusable.
    """
    if index.numel() == 0 or torch.compiler.is_compiling():
        return
    low, high = torch.stack([index.min(), index.max()]).tolist()
    if low < 0 or high >= limit:
        raise IndexError(f"'{name}' holds node indices outside [0, {limit}) ({what}): "
                         f"min {low}, max {high}")


def select_nodes(name: str, values: Tensor, index: Tensor) -> Tensor:
    """``values.index_select(0, index)`` with an error naming ``name`` for bad indices.

    ``index`` must be an integer tensor; an index that is negative or
    ``>= values.size(0)`` raises an :class:`IndexError` naming ``name``. On the
    CPU nothing is checked up front (``index_select`` raises, and we rename its
    error), so valid input costs no extra pass. On other devices the range is
    checked first (:func:`check_index_range`, one device sync), because there
    ``index_select`` would fail with a device-side assert; under
    :func:`torch.compile` that check is skipped, so it traces.
    """
    if index.is_floating_point() or index.is_complex() or index.dtype == torch.bool:
        raise TypeError(f"'{name}' must be an integer tensor (got {index.dtype})")
    check_same_device(name, index, values=values)
    if index.device.type != 'cpu':
        check_index_range(name, index, values.size(0))
    try:
        return values.index_select(0, index)
    except IndexError as error:
        raise IndexError(f"'{name}' holds node indices outside [0, {values.size(0)}) "
                         f"(negative or too large)") from error


# float64 holds every integer up to 2**53 exactly; integer coordinates beyond it would be rounded.
_EXACT_INTEGER = 2 ** 53


def check_positions(name: str, pos, batch: Optional[Tensor] = None, *,
                    may_be_transposed: bool = True) -> Tensor:
    """Like :func:`check_points`, but integer coordinates are accepted, as torch-cluster does.

    Integer positions are searched in float64, which holds them exactly up to
    ``2 ** 53`` in magnitude; larger ones would be rounded (and neighbours
    swapped), so they raise a ``ValueError``. ``bool`` and complex tensors are
    refused. Without ``batch`` (and unless ``may_be_transposed=False``, for
    query sets), a tensor with 1 to 3 rows and more columns warns that it may
    be a transposed point cloud (see :func:`warn_if_transposed`).
    """
    if isinstance(pos, Tensor) and not pos.is_floating_point():
        if pos.dtype == torch.bool or pos.is_complex():
            raise TypeError(f"'{name}' must be a floating-point or integer tensor "
                            f"(got {pos.dtype})")
        pos = pos.view(-1, 1) if pos.dim() == 1 else pos
        if pos.dim() != 2 or pos.size(1) == 0:
            raise ValueError(f"'{name}' must have shape (N, D) with D >= 1 "
                             f"(got shape {tuple(pos.shape)})")
        if pos.numel() and max(int(pos.max()), -int(pos.min())) > _EXACT_INTEGER:
            raise ValueError(
                f"'{name}' holds integer coordinates beyond 2**53 in magnitude, which the "
                f"search (in float64) cannot represent exactly, so neighbours could be "
                f"swapped; convert them yourself ({name}.double()) if that rounding is "
                f"acceptable")
    else:
        pos = check_points(name, pos)
    if batch is None and may_be_transposed:
        warn_if_transposed(name, pos)
    return pos


def warn_if_transposed(name: str, pos: Tensor) -> None:
    """Warn when ``pos`` looks like a point cloud passed as ``(D, N)`` instead of ``(N, D)``.

    The common mistake is a ``(3, N)`` (or ``(2, N)``) coordinate array, which
    would silently be read as 3 points in N dimensions. The warning fires when
    there are 1 to 3 rows and more than 3 columns: a kNN or radius graph of at
    most 3 points is rarely wanted, while feature-space searches (many columns)
    have many rows. Empty inputs and callers that pass ``batch`` (whose length
    already pins the number of points) are not checked.
    """
    rows, cols = pos.shape
    if 0 < rows <= 3 < cols:
        warnings.warn(
            f"'{name}' has shape {tuple(pos.shape)}: {rows} point(s) in {cols} dimensions. "
            f"If these are {cols} points in {rows}-D, pass {name}.t() (shape ({cols}, {rows}))",
            UserWarning, stacklevel=_first_outside_frame())


def _first_outside_frame() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside this package."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def check_num_workers(num_workers) -> int:
    """``num_workers``: None (follow :func:`torch.get_num_threads`), -1 (every core) or >= 1."""
    if num_workers is None:
        return torch.get_num_threads()
    if isinstance(num_workers, bool) or not isinstance(num_workers, int):
        raise TypeError(f"'num_workers' must be an int or None (got "
                        f"{type(num_workers).__name__})")
    if num_workers == 0 or num_workers < -1:
        raise ValueError(f"'num_workers' must be >= 1, or -1 for every core (got {num_workers})")
    return num_workers

"""Argument checks of the layers, in one place.

Every public entry of :mod:`graphattn` (a module's ``__init__`` or its
outermost ``forward``) validates its arguments here, once, so that bad input is
reported with the argument's name and the expected shape or dtype, and the
inner layers of a stack do not check again. Checks that read tensor data (a
device sync) are skipped under :func:`torch.compile`, so tracing never breaks.
Graph-builder checks (points, batch vectors, edge indices) live in
:mod:`graphs.validation`, which builds graphs and knows nothing of layers.
"""
from __future__ import annotations

import warnings
from typing import Any, Optional, Sequence, Tuple

import torch
from torch import Tensor

from graphs.validation import check_positive_int, check_same_device

__all__ = ['PATHS', 'LGA_PATHS', 'check_path', 'check_choice', 'check_dtype', 'check_features',
           'check_batch_size', 'check_flag', 'check_same_device', 'check_graph_tensors']

#: The computation paths of every module, in one vocabulary:
#: ``'message_passing'`` is the exact, general PyG path (any graph, inspectable);
#: ``'fused'`` the dense kernel for the graph's regular form (a grid's shifted
#: sums, an ``(N, k)`` neighbour table, LatentGNN's complete bipartite products);
#: ``'auto'`` picks ``'fused'`` wherever the input has such a form.
PATHS = ('auto', 'fused', 'message_passing')

#: LGA's paths: :data:`PATHS` and ``'compiled'``, the grid kernel compiled by
#: ``torch.compile`` (:mod:`graphattn.compiled_grid_attention`).
LGA_PATHS = PATHS + ('compiled',)

# Names accepted for a while after a rename, with what they now mean.
_DEPRECATED_PATHS = {'fast': 'fused'}


def check_path(path: Any, paths: Sequence[str] = PATHS) -> str:
    """``path`` must be one of ``paths`` (``'fast'``, the old name of
    ``'fused'``, is accepted with a :class:`DeprecationWarning`)."""
    if isinstance(path, str) and path in _DEPRECATED_PATHS:
        new = _DEPRECATED_PATHS[path]
        warnings.warn(f"path={path!r} is deprecated; use path={new!r} (same computation)",
                      DeprecationWarning, stacklevel=3)
        return new
    if path not in paths:
        raise ValueError(f"'path' must be one of {tuple(paths)} (got {path!r})")
    return path


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` must be one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"'{name}' must be one of {tuple(choices)} (got {value!r})")
    return value


def check_flag(name: str, value: Any) -> bool:
    """``value`` must be a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"'{name}' must be a bool (got {type(value).__name__})")
    return value


def check_dtype(name: str, x: Tensor, dtype: torch.dtype) -> Tensor:
    """``x`` must have the dtype of the layer's parameters (unless autocast is on).

    PyTorch's own message for this mismatch ("mat1 and mat2 must have the same
    dtype") names neither the argument nor the fix. Under :func:`torch.autocast`
    mixed dtypes are expected and left to autocast. Reads no data.
    """
    if x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(f"'{name}' has dtype {x.dtype} but the layer's parameters are "
                        f"{dtype}: convert one to the other (module.to({x.dtype}) or "
                        f"{name}.to({dtype})), or run under torch.autocast")
    return x


def check_features(name: str, x: Any, channels: Optional[int], shapes: Tuple[str, ...],
                   dims: Tuple[int, ...], dtype: Optional[torch.dtype] = None,
                   channel_dim: int = -1) -> Tensor:
    """``x`` must be a floating tensor of one of ``dims`` ranks, with ``channels``
    entries along ``channel_dim`` (``None`` or ``-1``: any) and, when given, the
    parameters' ``dtype``. ``shapes`` spells the expected shapes for the message,
    e.g. ``('(N, 64)', '(B, N, 64)')``."""
    expected = ' or '.join(shapes)
    if not isinstance(x, Tensor):
        raise TypeError(f"'{name}' must be a Tensor of shape {expected} "
                        f"(got {type(x).__name__})")
    if x.dim() not in dims or (channels not in (None, -1) and x.size(channel_dim) != channels):
        raise ValueError(f"'{name}' must have shape {expected} (got shape {tuple(x.shape)})")
    if not x.is_floating_point():
        raise TypeError(f"'{name}' must be a floating-point tensor (got {x.dtype})")
    if dtype is not None:
        check_dtype(name, x, dtype)
    return x


def check_batch_size(batch: Tensor, batch_size: Optional[int], name: str = 'batch') -> int:
    """The number of graphs of a sorted ``batch`` vector: ``batch_size`` when
    given (checked against the last graph index, outside compilation), else
    ``batch[-1] + 1`` (a device sync)."""
    n = batch.numel()
    if batch_size is None:
        return int(batch[-1]) + 1 if n > 0 else 1
    if not torch.compiler.is_compiling():
        check_positive_int('batch_size', batch_size)
        if n > 0 and int(batch[-1]) >= batch_size:
            raise ValueError(f"'{name}' holds graph index {int(batch[-1])} but "
                             f"batch_size={batch_size}")
    return int(batch_size)


def check_graph_tensors(x_src: Tensor, x_dst: Optional[Tensor], edge_index: Any = None,
                        edge_attr: Any = None, pos: Any = None, neighbors: Any = None,
                        flow: str = 'source_to_target', num_dst: Optional[int] = None) -> None:
    """The device and index checks of one graph given to an LGA layer, before any kernel.

    Every tensor must be on the features' device (an error naming both
    devices; reads no data). A dense integer ``edge_index`` ``(2, E)`` must
    index the features (one reduction, one device sync, skipped under
    :func:`torch.compile`): on a GPU an out-of-range index would otherwise be
    a device-side assert inside PyG's gather, which leaves the CUDA context
    unusable, instead of an :class:`IndexError` naming the argument. ``pos``
    has exactly one row per node (:func:`graphattn.lga_graph.prepare_graph`
    checks its shape first) and the neighbour table's range is checked where
    the table is validated; shapes and dtypes are left to each form's own checks.
    """
    check_same_device('x', x_src if x_dst is None else x_dst,
                      x_src=None if x_src is x_dst else x_src, edge_index=edge_index,
                      edge_attr=edge_attr, pos=pos, neighbors=neighbors)
    if not isinstance(edge_index, Tensor) or edge_index.layout != torch.strided or (
            edge_index.dim() != 2 or edge_index.size(0) != 2 or edge_index.is_floating_point()
            or edge_index.dtype == torch.bool):
        return   # not a dense (2, E) index: the form's own checks say what is wrong
    if edge_index.numel() == 0 or torch.compiler.is_compiling():
        return
    # Sources, centres; (x_src, None) has no x_dst: its count comes from the graph.
    limits = (x_src.size(-2), x_dst.size(-2) if x_dst is not None else num_dst)
    src, dst = (0, 1) if flow == 'source_to_target' else (1, 0)
    low, high = torch.stack([edge_index.amin(1), edge_index.amax(1)]).tolist()
    for row, limit, role in ((src, limits[0], 'neighbours'), (dst, limits[1], 'centres')):
        if low[row] < 0 or high[row] >= limit:
            raise IndexError(f"'edge_index' row {row} (the {role}) holds node indices outside "
                             f"[0, {limit}) (the nodes of 'x'): min {low[row]}, "
                             f"max {high[row]}")


def check_single_backward() -> None:
    """Called in a compiled kernel's backward: ``create_graph=True`` would need that
    backward to be differentiable, and the compiled one is not traced by autograd, so
    its gradient would silently be missing terms."""
    if torch.is_grad_enabled():
        raise RuntimeError("path='compiled' does not support double backward "
                           "(create_graph=True); use path='fused', whose backward is "
                           "differentiable")


def detached(*tensors: Optional[Tensor]) -> Tuple[Optional[Tensor], ...]:
    """A compiled kernel's tensors as its ``torch.compile``'d functions get them: detached
    (``None`` kept). The kernel's ``autograd.Function`` is their autograd node, so nothing is
    lost; and Dynamo reads the ``.grad`` of every input while it makes its fake copy, which
    for a non-leaf input that requires grad raises torch's "The .grad attribute of a Tensor
    that is not a leaf Tensor is being accessed" UserWarning (hidden by torch itself, but an
    error under ``-W error``)."""
    return tuple(None if t is None else t.detach() for t in tensors)

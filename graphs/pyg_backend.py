"""Run PyG's own kNN / radius code on graphs' engines when pyg-lib is not installed.

PyG 2.8 sends every kNN and radius search through two pyg-lib operators,
``torch.ops.pyg.knn`` and ``torch.ops.pyg.radius``, guarded by the flags
``torch_geometric.typing.WITH_KNN`` and ``WITH_RADIUS``: ``knn``, ``knn_graph``,
``radius``, ``radius_graph``, ``knn_interpolate``, ``DynamicEdgeConv``,
``XConv``, ``GravNetConv``, the ``KNNGraph`` / ``RadiusGraph`` transforms and
the models built on ``radius_graph`` (SchNet, DimeNet, ...). Without pyg-lib
they raise ``ImportError``.

Code that calls the functions itself can import :func:`graphs.knn`,
:func:`graphs.knn_graph`, :func:`graphs.radius` and :func:`graphs.radius_graph`
instead. For PyG's modules and transforms, which call PyG's functions, there is
no public hook; :func:`use_as_pyg_backend` is an explicit, reversible opt-in
that registers our search as those two operators (with pyg-lib's schemas,
through :mod:`torch.library`, PyTorch's public mechanism for adding operators)
and sets the two flags, and undoes both when it ends. Nothing happens at
import time.
"""
from __future__ import annotations

import threading
from typing import Optional

import torch
from torch import Tensor

from .bipartite import _prepare_pair
from .neighbors import search
from .point_graphs import neighbors_to_edge_index
from .validation import check_num_workers, check_positive_float, check_positive_int

__all__ = ['use_as_pyg_backend', 'PygBackend']

# pyg-lib's schemas (pyg_lib/csrc/ops/knn.cpp and radius.cpp), so that PyG's calls bind alike.
_SCHEMAS = {
    'knn': ('knn(Tensor x, Tensor y, Tensor? ptr_x=None, Tensor? ptr_y=None, int k=1, '
            'bool cosine=False, int num_workers=1) -> Tensor'),
    'radius': ('radius(Tensor x, Tensor y, Tensor? ptr_x=None, Tensor? ptr_y=None, '
               'float r=1.0, int max_num_neighbors=32, int num_workers=1, '
               'bool ignore_same_index=False) -> Tensor'),
}
_FLAGS = {'knn': 'WITH_KNN', 'radius': 'WITH_RADIUS'}

_lock = threading.Lock()
_state = {'users': 0, 'library': None, 'saved_flags': {}}


def _ptr_to_batch(name: str, ptr: Optional[Tensor], num_nodes: int) -> Optional[Tensor]:
    """PyG passes clouds as CSR pointers (``ptr[b]`` = first node of cloud b)."""
    if ptr is None:
        return None
    ptr = ptr.long()
    if ptr.dim() != 1 or ptr.numel() == 0 or int(ptr[0]) != 0 or int(ptr[-1]) != num_nodes:
        raise ValueError(f"'{name}' must be a pointer vector from 0 to {num_nodes} "
                         f"(got {ptr.tolist() if ptr.numel() < 10 else tuple(ptr.shape)})")
    counts = ptr[1:] - ptr[:-1]
    if bool((counts < 0).any()):
        raise ValueError(f"'{name}' must be non-decreasing")
    return torch.repeat_interleave(torch.arange(counts.numel(), device=ptr.device), counts)


# The dispatcher drops trailing arguments equal to the schema's defaults: repeat them here.
def _knn_op(x: Tensor, y: Tensor, ptr_x: Optional[Tensor] = None,
            ptr_y: Optional[Tensor] = None, k: int = 1, cosine: bool = False,
            num_workers: int = 1) -> Tensor:
    check_positive_int('k', k)
    batch_x = _ptr_to_batch('ptr_x', ptr_x, x.size(0))
    batch_y = _ptr_to_batch('ptr_y', ptr_y, y.size(0))
    x, y, batch_x, batch_y = _prepare_pair(x, y, batch_x, batch_y)
    index, _ = search(x, y, k, batch_x, batch_y, cosine=cosine,
                      num_workers=check_num_workers(num_workers))
    return neighbors_to_edge_index(index, flow='target_to_source')


def _radius_op(x: Tensor, y: Tensor, ptr_x: Optional[Tensor] = None,
               ptr_y: Optional[Tensor] = None, r: float = 1.0, max_num_neighbors: int = 32,
               num_workers: int = 1, ignore_same_index: bool = False) -> Tensor:
    r = check_positive_float('r', r)
    check_positive_int('max_num_neighbors', max_num_neighbors)
    batch_x = _ptr_to_batch('ptr_x', ptr_x, x.size(0))
    batch_y = _ptr_to_batch('ptr_y', ptr_y, y.size(0))
    x, y, batch_x, batch_y = _prepare_pair(x, y, batch_x, batch_y)
    index, _ = search(x, y, max_num_neighbors, batch_x, batch_y, r=r,
                      skip_same_index=ignore_same_index,
                      num_workers=check_num_workers(num_workers))
    return neighbors_to_edge_index(index, flow='target_to_source')


_IMPLS = {'knn': _knn_op, 'radius': _radius_op}


def _has_op(name: str) -> bool:
    return hasattr(torch.ops.pyg, name)


def _check_pyg_version() -> None:
    import torch_geometric
    import torch_geometric.typing as pyg_typing
    if not all(hasattr(pyg_typing, flag) for flag in _FLAGS.values()):
        # Before 2.8, PyG's knn and radius call torch-cluster's Python functions, not
        # operators: there is no public place to plug a search in.
        raise RuntimeError(
            f"use_as_pyg_backend() needs torch_geometric>=2.8, whose kNN and radius "
            f"searches run through the operators it provides; torch_geometric "
            f"{torch_geometric.__version__} calls torch-cluster instead. Install "
            f"torch-cluster, or call graphs.knn, graphs.knn_graph, graphs.radius and "
            f"graphs.radius_graph directly")


def _activate() -> None:
    import torch_geometric.typing as pyg_typing
    _check_pyg_version()
    with _lock:
        if _state['users'] == 0:
            missing = [name for name in _SCHEMAS if not _has_op(name)]
            library = torch.library.Library('pyg', 'FRAGMENT') if missing else None
            for name in missing:
                library.define(_SCHEMAS[name])
                library.impl(name, _IMPLS[name], 'CompositeExplicitAutograd')
            _state['library'] = library
            _state['saved_flags'] = {flag: getattr(pyg_typing, flag) for flag in _FLAGS.values()}
            for name, flag in _FLAGS.items():
                setattr(pyg_typing, flag, _has_op(name))
        _state['users'] += 1


def _deactivate() -> None:
    import torch_geometric.typing as pyg_typing
    with _lock:
        _state['users'] -= 1
        if _state['users'] == 0:
            for flag, value in _state['saved_flags'].items():
                setattr(pyg_typing, flag, value)
            _remove(_state['library'])
            _state['library'] = None
            _state['saved_flags'] = {}


def _remove(library: Optional[torch.library.Library]) -> None:
    """Remove our operators, and torch's cached ``torch.ops.pyg.<name>`` with them."""
    if library is None:
        return
    # Dropping the last reference removes the operators, but up to torch 2.12 that path
    # leaves the cached packets in torch.ops.pyg, whose overloads no longer exist; the
    # next torch.compile enumerates them and fails ("'CustomDecompTable' object is not a
    # mapping", seen on torch 2.11). _destroy is what torch.library's own scoped
    # libraries call; it clears the cache on every version.
    destroy = getattr(library, '_destroy', None)
    if destroy is not None:
        destroy()


class PygBackend:
    """The handle returned by :func:`use_as_pyg_backend`; a context manager."""

    def __init__(self) -> None:
        _activate()
        self.active = True

    def restore(self) -> None:
        """Undo this activation (once; further calls do nothing)."""
        if self.active:
            self.active = False
            _deactivate()

    def __enter__(self) -> 'PygBackend':
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def __repr__(self) -> str:
        return f'PygBackend(active={self.active})'


def use_as_pyg_backend() -> PygBackend:
    r"""Serve PyG's kNN and radius searches with :mod:`graphs` while active.

    Registers :func:`graphs.knn` and :func:`graphs.radius` as the pyg-lib
    operators ``torch.ops.pyg.knn`` and ``torch.ops.pyg.radius`` (only those
    not already provided, e.g. by an installed pyg-lib, which is never
    replaced) and sets ``torch_geometric.typing.WITH_KNN`` / ``WITH_RADIUS``
    accordingly, so that PyG's ``knn``, ``knn_graph``, ``radius``,
    ``radius_graph``, ``knn_interpolate``, ``DynamicEdgeConv``, ``XConv``,
    ``GravNetConv`` and the ``KNNGraph`` / ``RadiusGraph`` transforms run
    without pyg-lib or torch-cluster. Activation is immediate; it ends when
    the returned handle's :meth:`~PygBackend.restore` is called or its
    ``with`` block exits, which puts back the flags and removes the operators
    (activations nest: the last one to end restores).

    .. code-block:: python

        import graphs
        from torch_geometric.nn import DynamicEdgeConv

        with graphs.use_as_pyg_backend():
            conv = DynamicEdgeConv(mlp, k=20)  # PyG checks for kNN support here...
            out = conv(x, batch)               # ...and searches here

        backend = graphs.use_as_pyg_backend()  # or for the whole program
        ...
        backend.restore()

    Needs ``torch_geometric>=2.8`` (earlier versions call torch-cluster's
    functions, which leave no operator to provide; a ``RuntimeError`` says so).

    Differences from pyg-lib: searches are exact and deterministic in their
    choice (ties aside); ``radius`` keeps the *closest* ``max_num_neighbors``
    points, where pyg-lib's CPU kernel keeps the first ones found;
    ``num_workers`` (PyG passes 1 unless told otherwise) sets the scipy
    engine's threads, with or without a batch; the engine is chosen as with
    ``engine='auto'``. Distances follow the rules of :mod:`graphs.distances`.

    Returns:
        PygBackend: the handle (a context manager).
    """
    return PygBackend()

"""Several point clouds (crops) collated into one PyG ``Batch`` of kNN graphs."""
from __future__ import annotations

from typing import Optional, Sequence

from torch import Tensor
from torch_geometric.data import Batch

from .point_cloud import point_cloud_to_data
from .validation import check_positive_int

__all__ = ['collate_clouds']


def _check_list(name: str, values: Optional[Sequence[Tensor]], count: int) -> None:
    if values is None:
        return
    if isinstance(values, Tensor) or len(values) != count:
        raise ValueError(f"'{name}' must be a list of {count} tensors, one per cloud of 'pos' "
                         f"(got {type(values).__name__} of length "
                         f"{getattr(values, '__len__', lambda: '?')()})")
    for i, value in enumerate(values):
        if not isinstance(value, Tensor):
            raise TypeError(f"'{name}[{i}]' must be a torch.Tensor (got {type(value).__name__})")


def collate_clouds(pos: Sequence[Tensor], x: Optional[Sequence[Tensor]] = None,
                   y: Optional[Sequence[Tensor]] = None, *, k: int = 16, loop: bool = True,
                   engine: str = 'auto') -> Batch:
    r"""Point clouds as one PyG :class:`~torch_geometric.data.Batch` of kNN graphs.

    Each cloud becomes a graph of :func:`graphs.point_cloud_to_data` (``k``
    nearest neighbours of its own cloud, self-loops with ``loop=True`` as
    :meth:`graphattn.LGA.for_points` wants them, ``edge_attr`` the offset
    :math:`\mathbf{p}_j - \mathbf{p}_i` of every edge :math:`j \to i`); the
    graphs are collated with :meth:`Batch.from_data_list`, so ``to_data_list``
    and PyG loaders work on the result. For an ``(N, k)`` neighbour table
    instead of edges use :func:`graphs.to_neighbor_table` on its
    ``edge_index``.

    Args:
        pos (list of Tensor): Coordinates ``(n_i, D)`` of each cloud.
        x (list of Tensor, optional): Features ``(n_i, C)`` of each cloud.
        y (list of Tensor, optional): Per-point labels ``(n_i, ...)``.
        k (int, optional): Neighbours per point (counting itself with
            ``loop=True``). (default: :obj:`16`)
        loop (bool, optional): Self-loops. (default: :obj:`True`)
        engine (str, optional): Neighbour search engine (:mod:`graphs.neighbors`).

    Returns:
        ``Batch`` with ``pos``, ``edge_index``, ``edge_attr``, ``batch``,
        ``ptr`` and ``x``/``y`` when given.
    """
    if isinstance(pos, Tensor) or not isinstance(pos, Sequence) or len(pos) == 0:
        raise ValueError("'pos' must be a non-empty list of (n_i, D) tensors, one per cloud")
    check_positive_int('k', k)
    _check_list('x', x, len(pos))
    _check_list('y', y, len(pos))
    data_list = []
    for i, p in enumerate(pos):
        data = point_cloud_to_data(p, None if x is None else x[i], k=k, loop=loop,
                                   engine=engine)
        if y is not None:
            if y[i].dim() == 0 or y[i].size(0) != data.num_nodes:
                raise ValueError(f"'y[{i}]' must have one entry per point of 'pos[{i}]' "
                                 f"({data.num_nodes}) (got shape {tuple(y[i].shape)})")
            data.y = y[i]
        data_list.append(data)
    return Batch.from_data_list(data_list)

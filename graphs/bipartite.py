"""Bipartite kNN and radius search with PyG's signatures, without compiled extensions.

``graphs.knn`` and ``graphs.radius`` take the arguments of
:func:`torch_geometric.nn.knn` and :func:`torch_geometric.nn.radius` and return
edges in their convention: for every point of ``y`` (the queries), its
neighbours among the points of ``x``, as a ``(2, E)`` tensor whose row 0 indexes
``y`` and row 1 indexes ``x``. Edges are grouped by ``y``, nearest first. They
run on the engines of :mod:`graphs.neighbors`.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from .neighbors import search
from .point_graphs import neighbors_to_edge_index
from .validation import (check_batch, check_num_workers, check_positions, check_same_device,
                         check_positive_float, check_positive_int)

__all__ = ['knn', 'radius']


def _prepare_pair(x: Tensor, y: Tensor, batch_x: Optional[Tensor],
                  batch_y: Optional[Tensor]) -> Tuple[Tensor, Tensor, Optional[Tensor],
                                                      Optional[Tensor]]:
    # Only x (the searched set) is checked for a transposed cloud: a handful of
    # queries in many dimensions is an ordinary request.
    check_same_device('x', x, y=y, batch_x=batch_x, batch_y=batch_y)  # before reading data
    x = check_positions('x', x, batch_x)
    y = check_positions('y', y, may_be_transposed=False)
    if y.size(1) != x.size(1):
        raise ValueError(f"'y' must have as many columns as 'x' ({x.size(1)}) "
                         f"(got shape {tuple(y.shape)})")
    batch_x = check_batch(batch_x, x.size(0), name='batch_x')
    batch_y = check_batch(batch_y, y.size(0), name='batch_y')
    return x, y, batch_x, batch_y


def knn(x: Tensor, y: Tensor, k: int, batch_x: Optional[Tensor] = None,
        batch_y: Optional[Tensor] = None, cosine: bool = False,
        num_workers: Optional[int] = None, batch_size: Optional[int] = None, *,
        engine: str = 'auto') -> Tensor:
    r"""For each point of ``y``, its ``k`` nearest points of ``x`` in the same cloud.

    The same arguments and edges as :func:`torch_geometric.nn.knn`. A query
    whose cloud holds fewer than ``k`` points of ``x`` gets all of them (none
    if its cloud has no point of ``x``). Points of equal index are not special:
    ``knn(x, x, k)`` finds each point itself first (at distance 0).

    Args:
        x (Tensor): Points searched, shape ``(N, D)``, floating or integer.
        y (Tensor): Query points, shape ``(M, D)``.
        k (int): Number of neighbours.
        batch_x (LongTensor, optional): Sorted cloud index of every point of
            ``x``. (default: one cloud)
        batch_y (LongTensor, optional): Sorted cloud index of every point of
            ``y``; a query is matched only with points of ``x`` of the same
            index. (default: one cloud)
        cosine (bool, optional): Rank by cosine distance (see
            :func:`graphs.knn_graph` for zero rows). (default: :obj:`False`)
        num_workers (int, optional): Threads for the scipy engine's queries;
            ``-1`` for every core. (default: :func:`torch.get_num_threads`)
        batch_size (int, optional): Accepted for PyG compatibility.
        engine (str, optional): As in :func:`graphs.knn_graph`.

    Returns:
        LongTensor of shape ``(2, E)``: row 0 indexes ``y``, row 1 indexes
        ``x``; grouped by query, nearest first.
    """
    check_positive_int('k', k)
    x, y, batch_x, batch_y = _prepare_pair(x, y, batch_x, batch_y)
    index, _ = search(x, y, k, batch_x, batch_y, cosine=cosine, engine=engine,
                      num_workers=check_num_workers(num_workers))
    return neighbors_to_edge_index(index, flow='target_to_source')


def radius(x: Tensor, y: Tensor, r: float, batch_x: Optional[Tensor] = None,
           batch_y: Optional[Tensor] = None, max_num_neighbors: int = 32,
           num_workers: Optional[int] = None, batch_size: Optional[int] = None, *,
           engine: str = 'auto') -> Tensor:
    r"""For each point of ``y``, the points of ``x`` in its cloud closer than ``r``.

    The same arguments and edges as :func:`torch_geometric.nn.radius`, except
    that where more than ``max_num_neighbors`` points qualify the *closest*
    ones are kept (PyG's CPU kernel keeps the first ones it finds).
    Distances are compared with ``r`` in float64, as in
    :func:`graphs.radius_graph`.

    Args:
        x (Tensor): Points searched, shape ``(N, D)``, floating or integer.
        y (Tensor): Query points, shape ``(M, D)``.
        r (float): Radius; neighbours satisfy ``dist < r``.
        batch_x (LongTensor, optional): As in :func:`knn`.
        batch_y (LongTensor, optional): As in :func:`knn`.
        max_num_neighbors (int, optional): Most neighbours per query.
            (default: :obj:`32`)
        num_workers (int, optional): As in :func:`knn`.
        batch_size (int, optional): Accepted for PyG compatibility.
        engine (str, optional): As in :func:`graphs.knn_graph`.

    Returns:
        LongTensor of shape ``(2, E)``: row 0 indexes ``y``, row 1 indexes
        ``x``; grouped by query, nearest first.
    """
    r = check_positive_float('r', r)
    check_positive_int('max_num_neighbors', max_num_neighbors)
    x, y, batch_x, batch_y = _prepare_pair(x, y, batch_x, batch_y)
    index, _ = search(x, y, max_num_neighbors, batch_x, batch_y, r=r, engine=engine,
                      num_workers=check_num_workers(num_workers))
    return neighbors_to_edge_index(index, flow='target_to_source')

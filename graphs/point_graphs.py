"""kNN and radius graphs with PyG's signatures, without compiled extensions.

``graphs.knn_graph`` and ``graphs.radius_graph`` take the same arguments and
return the same edges as :func:`torch_geometric.nn.knn_graph` and
:func:`torch_geometric.nn.radius_graph`, so that code can swap the import and
drop the pyg-lib / torch-cluster requirement. They use torch-cluster when it is
installed (see :mod:`graphs.neighbors` for the engines). :func:`graphs.knn` and
:func:`graphs.radius` (in :mod:`graphs.bipartite`) do the same for PyG's
``knn`` and ``radius``.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from .neighbors import self_table
from .validation import (check_batch, check_bool, check_edge_index, check_flow,
                         check_num_workers, check_positions, check_positive_float,
                         check_positive_int, check_same_device)

__all__ = ['knn_graph', 'radius_graph', 'neighbors_to_edge_index', 'to_neighbor_table']


def neighbors_to_edge_index(index: Tensor, flow: str = 'source_to_target') -> Tensor:
    """Turn an ``(N, k)`` neighbour table (``-1`` = none) into an edge index.

    Edges are ordered by centre node, then by the table's column (distance).
    With ``flow='source_to_target'`` row 0 holds the neighbours and row 1 the
    centres (messages flow from neighbours to centres); the other flow swaps them.
    """
    n, k = index.shape
    centre = torch.arange(n, device=index.device).view(-1, 1).expand(n, k)
    valid = index >= 0
    if bool(valid.all()):  # every point has k neighbours: no masking copy needed
        neighbour, centre = index.reshape(-1), centre.reshape(-1)
    else:
        neighbour, centre = index[valid], centre[valid]
    if flow == 'source_to_target':
        return torch.stack([neighbour, centre], dim=0)
    return torch.stack([centre, neighbour], dim=0)


def to_neighbor_table(edge_index: Tensor, num_nodes: Optional[int] = None,
                      flow: str = 'source_to_target', *,
                      size: Optional[Tuple[int, int]] = None) -> Tuple[Tensor, Tensor]:
    """Turn an edge index into an ``(N, K)`` neighbour table, the inverse of
    :func:`neighbors_to_edge_index`.

    Row ``i`` lists the neighbours of centre ``i`` in edge order, padded with
    ``-1`` up to the largest degree ``K``; duplicate edges stay duplicate
    entries (message passing counts them twice, and so does the table). The
    second table holds the position of each entry's edge in ``edge_index``
    (``-1`` at padding), so that per-edge values move into the table's layout
    as ``values[edge_id]``.

    Args:
        edge_index (LongTensor): ``(2, E)``, int64 or int32.
        num_nodes (int, optional): Number of nodes ``N``: every index, source
            or centre, must be below it. (default: one more than the largest
            index, as :func:`torch_geometric.utils.num_nodes.maybe_num_nodes`)
        flow (str, optional): ``'source_to_target'`` (row 1 holds the centres)
            or ``'target_to_source'`` (row 0 does). (default:
            :obj:`'source_to_target'`)
        size ((int, int), optional): ``(num_src, num_dst)`` of a bipartite
            graph, instead of ``num_nodes``: ``num_dst`` rows, sources below
            ``num_src``. (default: :obj:`None`)

    Returns:
        ``(neighbors, edge_id)``, two LongTensors of shape ``(N, K)``.
    """
    check_flow(flow)
    edge_index = check_edge_index('edge_index', edge_index)
    centre, neighbour = ((edge_index[1], edge_index[0]) if flow == 'source_to_target'
                         else (edge_index[0], edge_index[1]))
    num_src, num_dst = _table_size(edge_index, num_nodes, size)
    _check_below('centre', centre, num_dst, 'num_dst' if size is not None else 'num_nodes')
    _check_below('source', neighbour, num_src, 'num_src' if size is not None else 'num_nodes')
    degree = torch.bincount(centre, minlength=num_dst)
    width = int(degree.max()) if num_dst else 0
    if centre.numel() > 1 and bool((centre[1:] >= centre[:-1]).all()):
        order = torch.arange(centre.numel(), device=centre.device)  # already grouped
    else:
        order = torch.sort(centre, stable=True).indices
    ptr = torch.cumsum(degree, 0) - degree
    sorted_centre = centre[order]
    slot = torch.arange(order.numel(), device=centre.device) - ptr[sorted_centre]
    neighbors = centre.new_full((num_dst, width), -1)
    edge_id = centre.new_full((num_dst, width), -1)
    neighbors[sorted_centre, slot] = neighbour[order]
    edge_id[sorted_centre, slot] = order
    return neighbors, edge_id


def _table_size(edge_index: Tensor, num_nodes: Optional[int],
                size: Optional[Tuple[int, int]]) -> Tuple[int, int]:
    """``(num_src, num_dst)`` of :func:`to_neighbor_table`'s arguments."""
    if size is not None:
        if num_nodes is not None:
            raise ValueError("pass either 'num_nodes' or 'size', not both")
        if not isinstance(size, (tuple, list)) or len(size) != 2:
            raise ValueError(f"'size' must be a pair (num_src, num_dst) (got {size!r})")
        return (check_positive_int('size[0]', size[0], minimum=0),
                check_positive_int('size[1]', size[1], minimum=0))
    if num_nodes is None:
        num_nodes = int(edge_index.max()) + 1 if edge_index.numel() else 0
    check_positive_int('num_nodes', num_nodes, minimum=0)
    return num_nodes, num_nodes


def _check_below(what: str, index: Tensor, bound: int, name: str) -> None:
    if index.numel() and int(index.max()) >= bound:
        raise ValueError(f"'edge_index' has a {what} index {int(index.max())} >= {name} "
                         f"({bound})")


def _prepare(x: Tensor, batch: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
    check_same_device('x', x, batch=batch)   # before check_batch reads the data
    x = check_positions('x', x, batch)
    return x, check_batch(batch, x.size(0))


def knn_graph(x: Tensor, k: int, batch: Optional[Tensor] = None, loop: bool = False,
              flow: str = 'source_to_target', cosine: bool = False,
              num_workers: Optional[int] = None, batch_size: Optional[int] = None, *,
              engine: str = 'auto') -> Tensor:
    r"""The k-nearest-neighbour graph of a point set (or a batch of sets).

    Each point is linked to its ``k`` nearest points of the same cloud. A cloud
    with ``n <= k`` points gives each of its points all ``n - 1`` others (``n``
    with ``loop=True``): no edge ever crosses clouds and no neighbour is
    invented. With ``loop=True`` every point is its own neighbour (counted in
    ``k``); duplicates of a point are ordinary neighbours at distance 0. Memory
    grows with ``min(k, largest cloud)``, so any ``k`` is allowed.

    Positions may be floating or integer (as in torch-cluster); they are
    searched in float32 at least, float64 for float64 and integer input, scaled
    by a power of two so that no squared distance overflows or underflows
    (see :mod:`graphs.distances`).

    Args:
        x (Tensor): Node positions or features, shape ``(N, D)``. Without
            ``batch``, a shape with 1 to 3 rows and more columns warns: it is
            most likely a transposed ``(D, N)`` cloud.
        k (int): Number of neighbours.
        batch (LongTensor, optional): Sorted graph index of every node, ``(N,)``.
        loop (bool, optional): Include self-loops. (default: :obj:`False`)
        flow (str, optional): ``'source_to_target'`` (row 0 = neighbours,
            row 1 = centres) or ``'target_to_source'``. (default:
            :obj:`'source_to_target'`)
        cosine (bool, optional): Rank neighbours by cosine distance instead of
            Euclidean distance. A zero row has no direction: it ranks after
            every nonzero row, and zero rows are each other's nearest
            neighbours. (default: :obj:`False`)
        num_workers (int, optional): Threads for the scipy engine's queries;
            ``-1`` for every core. (default: :func:`torch.get_num_threads`)
        batch_size (int, optional): Accepted for PyG compatibility.
        engine (str, optional): ``'auto'``, ``'scipy'``, ``'torch'`` or
            ``'extension'`` (see :mod:`graphs.neighbors`). (default: :obj:`'auto'`)

    Returns:
        LongTensor of shape ``(2, E)``, ordered by centre node and, per centre,
        by increasing distance.
    """
    check_positive_int('k', k)
    check_flow(flow)
    check_bool('loop', loop)
    x, batch = _prepare(x, batch)
    index, _ = self_table(x, k, batch, loop=loop, cosine=cosine, engine=engine,
                          num_workers=check_num_workers(num_workers))
    return neighbors_to_edge_index(index, flow)


def radius_graph(x: Tensor, r: float, batch: Optional[Tensor] = None, loop: bool = False,
                 max_num_neighbors: int = 32, flow: str = 'source_to_target',
                 num_workers: Optional[int] = None, batch_size: Optional[int] = None, *,
                 engine: str = 'auto') -> Tensor:
    r"""The graph linking every point to the points of its cloud closer than ``r``.

    Where more than ``max_num_neighbors`` points qualify, the closest ones are
    kept (deterministic, unlike torch-cluster's CPU kernel, which keeps the
    first ones it finds). Self-loops (``loop=True``) count towards the cap.
    Distances are compared with ``r`` in float64 (never a rounded ``r``) after
    a search in float32 at least, as in :func:`knn_graph`.

    Args:
        x (Tensor): Node positions, shape ``(N, D)``, floating or integer.
        r (float): Radius; neighbours satisfy ``dist < r``.
        batch (LongTensor, optional): Sorted graph index of every node, ``(N,)``.
        loop (bool, optional): Include self-loops. (default: :obj:`False`)
        max_num_neighbors (int, optional): Most neighbours per node.
            (default: :obj:`32`)
        flow (str, optional): As in :func:`knn_graph`.
        num_workers (int, optional): As in :func:`knn_graph`.
        batch_size (int, optional): Accepted for PyG compatibility.
        engine (str, optional): As in :func:`knn_graph`.

    Returns:
        LongTensor of shape ``(2, E)``, ordered by centre node and, per centre,
        by increasing distance.
    """
    r = check_positive_float('r', r)
    check_positive_int('max_num_neighbors', max_num_neighbors)
    check_flow(flow)
    check_bool('loop', loop)
    x, batch = _prepare(x, batch)
    index, _ = self_table(x, max_num_neighbors, batch, loop=loop, r=r, engine=engine,
                          num_workers=check_num_workers(num_workers))
    return neighbors_to_edge_index(index, flow)

"""Point clouds to PyG graphs (kNN or radius neighbourhoods)."""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data

from .neighbors import self_table
from .point_graphs import neighbors_to_edge_index
from .validation import (check_batch, check_bool, check_flow, check_points,
                         check_positive_float, check_positive_int, select_nodes,
                         warn_if_transposed)

__all__ = ['point_cloud_to_data', 'relative_positions']


def _check_features(x: Optional[Tensor], num_nodes: int) -> Optional[Tensor]:
    if x is None:
        return None
    if not isinstance(x, Tensor):
        raise TypeError(f"'x' must be a torch.Tensor of shape (N, C) or None "
                        f"(got {type(x).__name__})")
    if x.dim() == 1:
        x = x.view(-1, 1)
    if x.dim() != 2 or x.size(0) != num_nodes:
        raise ValueError(f"'x' must have shape ({num_nodes}, C), one row per point "
                         f"(got shape {tuple(x.shape)})")
    return x


def relative_positions(pos: Union[Tensor, Tuple[Tensor, Tensor]], edge_index: Tensor) -> Tensor:
    """The edge attribute ``pos[j] - pos[i]`` of every edge ``j -> i``.

    ``edge_index[0]`` holds the sources (neighbours ``j``) and ``edge_index[1]``
    the targets (centres ``i``), as everywhere in :mod:`graphs`. ``pos`` may be
    a pair ``(pos_src, pos_dst)`` for bipartite graphs. Positions must be
    floating ``(N, D)`` tensors; an index outside ``[0, N)`` raises an
    :class:`IndexError` naming ``edge_index`` (values are not checked: NaN
    positions give NaN offsets).
    """
    pos_src, pos_dst = (pos, pos) if isinstance(pos, Tensor) else pos
    for p in (pos_src, pos_dst):
        if not isinstance(p, Tensor) or p.dim() != 2 or not p.is_floating_point():
            raise ValueError("'pos' must be a floating (N, D) tensor or a pair of them (got "
                             f"{getattr(p, 'shape', type(p).__name__)})")
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError("'edge_index' must have shape (2, E) (got "
                         f"{getattr(edge_index, 'shape', type(edge_index).__name__)})")
    return (select_nodes('edge_index', pos_src, edge_index[0])
            - select_nodes('edge_index', pos_dst, edge_index[1]))


def point_cloud_to_data(pos: Tensor, x: Optional[Tensor] = None, *, k: Optional[int] = None,
                        r: Optional[float] = None, batch: Optional[Tensor] = None,
                        loop: bool = False, max_num_neighbors: int = 32,
                        flow: str = 'source_to_target',
                        engine: str = 'auto') -> Union[Data, Batch]:
    r"""A point cloud (or a batch of clouds) as a graph of its neighbourhoods.

    Exactly one of ``k`` (k nearest neighbours, see :func:`graphs.knn_graph`) or
    ``r`` (neighbours closer than ``r``, at most ``max_num_neighbors``, see
    :func:`graphs.radius_graph`) must be given. Edges never cross clouds.

    Args:
        pos (Tensor): Point coordinates, shape ``(N, D)`` (any ``D >= 1``),
            floating (the edge offsets are stored in its dtype). Without
            ``batch``, 1 to 3 rows and more columns warn (a transposed cloud?).
        x (Tensor, optional): Point features, shape ``(N, C)``.
        k (int, optional): Number of nearest neighbours.
        r (float, optional): Neighbourhood radius.
        batch (LongTensor, optional): Sorted cloud index of every point. Clouds
            with no points (indices skipped in ``batch``) become empty graphs;
            an empty ``batch`` (no cloud at all) is refused.
        loop (bool, optional): Link every point to itself. (default: :obj:`False`)
        max_num_neighbors (int, optional): Cap for radius graphs. (default: :obj:`32`)
        flow (str, optional): Edge direction, as in :func:`graphs.knn_graph`.
        engine (str, optional): Search engine (see :mod:`graphs.neighbors`).

    Returns:
        :class:`~torch_geometric.data.Data` (no ``batch``) or
        :class:`~torch_geometric.data.Batch` (with ``batch``), holding ``pos``,
        ``x`` (if given), ``edge_index`` and ``edge_attr = pos[edge_index[0]] -
        pos[edge_index[1]]``, shape (E, D): with the default flow, the offset of
        each neighbour from its centre (with ``flow='target_to_source'`` row 0
        holds the centres, so the sign is the other way round).
    """
    pos = check_points('pos', pos)
    if batch is None:
        warn_if_transposed('pos', pos)
    x = _check_features(x, pos.size(0))
    batch = check_batch(batch, pos.size(0))
    check_flow(flow)
    check_bool('loop', loop)
    if (k is None) == (r is None):
        raise ValueError("give exactly one of 'k' (kNN graph) or 'r' (radius graph)")
    if k is not None:
        check_positive_int('k', k)
        index, _ = self_table(pos, k, batch, loop=loop, engine=engine,
                              num_workers=torch.get_num_threads())
    else:
        r = check_positive_float('r', r)
        check_positive_int('max_num_neighbors', max_num_neighbors)
        index, _ = self_table(pos, max_num_neighbors, batch, loop=loop, r=r, engine=engine,
                              num_workers=torch.get_num_threads())
    edge_index = neighbors_to_edge_index(index, flow)
    edge_attr = relative_positions(pos, edge_index)
    if batch is None:
        data = Data(pos=pos, edge_index=edge_index, edge_attr=edge_attr, num_nodes=pos.size(0))
        if x is not None:
            data.x = x
        return data
    return _split_into_batch(pos, x, edge_index, edge_attr, batch)


def _split_into_batch(pos: Tensor, x: Optional[Tensor], edge_index: Tensor,
                      edge_attr: Tensor, batch: Tensor) -> Batch:
    """Cut the batch-wide graph into one Data per cloud and collate them.

    Collating through :meth:`Batch.from_data_list` keeps the result a real PyG
    batch (``to_data_list``, ``get_example`` and loaders work on it).
    """
    if batch.numel() == 0:
        raise ValueError("'batch' is empty, so there is no cloud to build: pass batch=None "
                         "for a single (possibly empty) cloud")
    num_graphs = int(batch.max()) + 1
    node_ptr = torch.cat([batch.new_zeros(1),
                          torch.bincount(batch, minlength=num_graphs).cumsum(0)]).tolist()
    # Edges are ordered by centre node, so each cloud's edges are contiguous.
    edge_counts = torch.bincount(batch[edge_index[0]], minlength=num_graphs)
    edge_ptr = torch.cat([edge_counts.new_zeros(1), edge_counts.cumsum(0)]).tolist()
    data_list = []
    for g in range(num_graphs):
        n0, n1, e0, e1 = node_ptr[g], node_ptr[g + 1], edge_ptr[g], edge_ptr[g + 1]
        data = Data(pos=pos[n0:n1], edge_index=edge_index[:, e0:e1] - n0,
                    edge_attr=edge_attr[e0:e1], num_nodes=n1 - n0)
        if x is not None:
            data.x = x[n0:n1]
        data_list.append(data)
    return Batch.from_data_list(data_list)

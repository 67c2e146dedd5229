"""Exact nearest-neighbour search with a fixed-width result, per cloud of a batch.

The search returns a dense ``(N, k)`` index table (``-1`` where a node has fewer
than ``k`` neighbours) and the matching distances. :func:`graphs.knn_graph`,
:func:`graphs.radius_graph`, :func:`graphs.knn` and :func:`graphs.radius` turn
it into an edge list; layers that exploit a fixed degree can use the table
directly.

Engines (``engine=``):

* ``'scipy'``: one :class:`scipy.spatial.cKDTree` over all clouds of the batch
  (each cloud moved apart along an extra axis, so that no query can find a point
  of another cloud before the points of its own), queried on ``num_workers``
  threads. O(N log N); CPU tensors only.
* ``'torch'``: chunked :func:`torch.cdist` + :func:`torch.topk` on any device,
  restricted to each chunk's own clouds, with the distance block bounded by
  ``max_block`` entries. O(N * n_cloud).
* ``'extension'``: torch-cluster's compiled kernels, if installed (untested
  here: torch-cluster is not installed in CI). Its radius search keeps the
  first ``max_num_neighbors`` points it finds, not the closest.
* ``'auto'``: the extension for kNN when present, otherwise scipy on CPU (torch
  where scipy is not installed) and torch on other devices.

Every engine searches a copy of the points made by
:func:`graphs.distances.working_points`: at least float32, scaled by a power of
two so that squared distances neither overflow nor underflow. Cloud indices in
``batch`` are replaced by their ranks first, so any ``int64`` index works.
Tables are as wide as the request or the largest cloud, whichever is smaller.
"""
from __future__ import annotations

import functools
import importlib.util
import warnings
from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .distances import output_dtype, scaled_radius, times_power_of_two, working_points
from .validation import (check_batch, check_bool, check_num_workers, check_positions,
                         check_positive_float, check_positive_int, check_same_device)

__all__ = ['nearest_neighbors', 'available_engines']

ENGINES = ('auto', 'scipy', 'torch', 'extension')

#: Points in one cloud above which a brute-force CPU search (what 'auto' falls back to
#: without scipy) warns: its time grows with the square of the cloud (a 16-NN graph of 50k
#: points took 23.8 s on one thread against scipy's 0.42 s; about 1 s at 10k).
SLOW_CLOUD = 10_000


@functools.lru_cache(maxsize=None)
def _importable(module: str) -> bool:
    # Asked of importlib, not of torch_geometric.typing (PyG 2.8 no longer reports
    # torch-cluster), and without importing the module; once per process, since every
    # search asks (a path search costs 30-40 us where the module is not imported).
    return importlib.util.find_spec(module) is not None


def _has_extension() -> bool:
    return _importable('torch_cluster')


def _has_scipy() -> bool:
    # A declared dependency, yet absent from some bare images (the lent GPU machines'):
    # 'auto' then searches with torch rather than failing on a missing import.
    return _importable('scipy')


def available_engines() -> Tuple[str, ...]:
    """The search engines usable in this environment."""
    return (('scipy',) if _has_scipy() else ()) + ('torch',) + (
        ('extension',) if _has_extension() else ())


def _resolve_engine(engine: str, device: torch.device, radius: bool = False) -> str:
    if engine not in ENGINES:
        raise ValueError(f"'engine' must be one of {ENGINES} (got {engine!r})")
    if engine == 'auto':
        # torch-cluster's radius keeps the first neighbours it finds, not the closest.
        if _has_extension() and not radius:
            return 'extension'
        return 'scipy' if device.type == 'cpu' and _has_scipy() else 'torch'
    if engine == 'scipy' and device.type != 'cpu':
        raise ValueError("engine='scipy' needs CPU tensors; use engine='torch' on "
                         f"{device.type}")
    if engine == 'scipy' and not _has_scipy():
        raise ValueError("engine='scipy' needs scipy, which is not installed; use "
                         "engine='torch' (or 'auto')")
    if engine == 'extension' and not _has_extension():
        raise ValueError("engine='extension' needs torch-cluster, which is not installed")
    return engine


def _first_k_kept(index: Tensor, dist: Tensor, keep: Tensor, k: int) -> Tuple[Tensor, Tensor]:
    """Left-align the kept entries of each row (their order preserved), keep k."""
    n = index.size(0)
    # The common cases: only the point itself, found first, is dropped (or nothing).
    if keep.size(1) > k and bool(keep[:, 1:k + 1].all()) and not bool(keep[:, 0].any()):
        return index[:, 1:k + 1].contiguous(), dist[:, 1:k + 1].contiguous()
    if bool(keep[:, :k].all()):
        return index[:, :k].contiguous(), dist[:, :k].contiguous()
    # Each kept entry's slot is the number of kept entries before it in its row.
    slot = keep.cumsum(1) - 1
    take = keep & (slot < k)
    rows = torch.arange(n, device=index.device).view(-1, 1).expand_as(index)
    out_index = torch.full((n, k), -1, dtype=index.dtype, device=index.device)
    out_dist = torch.full((n, k), float('inf'), dtype=dist.dtype, device=dist.device)
    out_index[rows[take], slot[take]] = index[take]
    out_dist[rows[take], slot[take]] = dist[take]
    return out_index, out_dist


def _query_scipy(x: Tensor, rank_x: Tensor, y: Tensor, rank_y: Tensor, num_clouds: int,
                 q: int, upper: float, workers: int) -> Tuple[Tensor, Tensor]:
    from scipy.spatial import cKDTree
    points = x.double().cpu().numpy()
    queries = y.double().cpu().numpy()
    if num_clouds > 1:
        # Separate the clouds along an extra axis by more than any distance that
        # can occur within one cloud, so one tree serves the whole batch. The
        # working points lie in [-1, 1] and the ranks are below N: no overflow,
        # and distinct ranks stay distinct in float64.
        both = np.concatenate([points, queries], axis=0)
        span = float(np.ptp(both, axis=0).max())
        gap = 2.0 * span * np.sqrt(points.shape[1]) + 1.0
        points = np.concatenate([points, rank_x.cpu().numpy()[:, None] * gap], axis=1)
        queries = np.concatenate([queries, rank_y.cpu().numpy()[:, None] * gap], axis=1)
    tree = cKDTree(points)
    dist, index = tree.query(queries, k=q, distance_upper_bound=upper, workers=workers)
    m = len(queries)
    dist = torch.from_numpy(np.asarray(dist, dtype=np.float64).reshape(m, q))
    index = torch.from_numpy(np.asarray(index, dtype=np.int64).reshape(m, q))
    index = index.masked_fill(index >= len(points), -1)  # scipy marks missing ones with n
    return index, dist


def _query_torch(x: Tensor, rank_x: Tensor, y: Tensor, rank_y: Tensor, num_clouds: int,
                 q: int, max_block: int) -> Tuple[Tensor, Tensor]:
    m = y.size(0)
    index = torch.full((m, q), -1, dtype=torch.long, device=y.device)
    dist = torch.full((m, q), float('inf'), dtype=x.dtype, device=y.device)
    counts = torch.bincount(rank_x, minlength=num_clouds)
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)]).tolist()
    rank_y_cpu = rank_y.cpu()
    start = 0
    while start < m:
        # Candidates: every point of the clouds that the chunk's queries belong to.
        first_cloud = int(rank_y_cpu[start])
        lo = ptr[first_cloud]
        rows = max(1, max_block // max(1, ptr[first_cloud + 1] - lo))
        end = start + rows
        while True:
            end = min(end, m)
            hi = ptr[int(rank_y_cpu[end - 1]) + 1]
            if (end - start) * (hi - lo) <= max_block or end - start == 1:
                break
            end = start + max(1, (end - start) // 2)
        if hi > lo:
            # The matrix-product form of cdist loses precision and reorders neighbours.
            block = torch.cdist(y[start:end], x[lo:hi],
                                compute_mode='donot_use_mm_for_euclid_dist')
            same = rank_y[start:end].view(-1, 1) == rank_x[lo:hi].view(1, -1)
            block = block.masked_fill(~same, float('inf'))
            kk = min(q, hi - lo)
            d, i = torch.topk(block, kk, dim=1, largest=False, sorted=True)
            found = torch.isfinite(d)
            index[start:end, :kk] = torch.where(found, i + lo, torch.full_like(i, -1))
            dist[start:end, :kk] = d
        start = end
    return index, dist


def _query_extension(x: Tensor, rank_x: Tensor, y: Tensor, rank_y: Tensor, q: int,
                     upper: Optional[float]) -> Tuple[Tensor, Tensor]:
    import torch_cluster
    m = y.size(0)
    if upper is None:
        edge = torch_cluster.knn(x, y, q, rank_x, rank_y)
    else:
        edge = torch_cluster.radius(x, y, upper, rank_x, rank_y, max_num_neighbors=q)
    centre, nb = edge[0], edge[1]  # torch-cluster: row 0 indexes y, row 1 indexes x
    d = (y[centre] - x[nb]).norm(dim=-1)
    # Sort each centre's neighbours by distance, then place them in rows.
    order = torch.argsort(d, stable=True)
    order = order[torch.argsort(centre[order], stable=True)]
    centre, nb, d = centre[order], nb[order], d[order]
    counts = torch.bincount(centre, minlength=m)
    slot = torch.arange(centre.numel(), device=y.device) - (counts.cumsum(0) - counts)[centre]
    index = torch.full((m, q), -1, dtype=torch.long, device=y.device)
    dist = torch.full((m, q), float('inf'), dtype=x.dtype, device=y.device)
    index[centre, slot] = nb
    dist[centre, slot] = d
    return index, dist


def _exact_near_radius(x: Tensor, y: Tensor, index: Tensor, dist: Tensor,
                       upper: float) -> Tensor:
    """Recompute in float64 the distances that float32 rounding could put on the wrong
    side of the radius (within ``D * 2**-20`` of it, relative; a float32 distance over
    ``D`` coordinates is off by a few ``D * 2**-24``)."""
    if x.dtype == torch.float64 or upper == float('inf'):
        return dist
    near = (index >= 0) & ((dist - upper).abs() <= upper * x.size(1) * 2.0 ** -20)
    if bool(near.any()):
        rows, cols = near.nonzero(as_tuple=True)
        exact = (y[rows].double() - x[index[rows, cols]].double()).norm(dim=1)
        dist = dist.index_put((rows, cols), exact)
    return dist


def _cloud_ranks(batch_x: Optional[Tensor], batch_y: Optional[Tensor], n: int, m: int,
                 device: torch.device) -> Tuple[Tensor, Tensor, int]:
    """Consecutive cloud ranks shared by x and y (a cloud index may be any int64)."""
    if batch_x is None and batch_y is None:
        zeros = torch.zeros(max(n, m), dtype=torch.long, device=device)
        return zeros[:n], zeros[:m], 1
    if batch_x is batch_y:  # a set searched in itself; batch is sorted
        if batch_x.numel() == 0:
            return batch_x, batch_x, 1
        ranks = torch.cat([batch_x.new_zeros(1), (batch_x[1:] != batch_x[:-1]).cumsum(0)])
        return ranks, ranks, int(ranks[-1]) + 1
    bx = batch_x if batch_x is not None else torch.zeros(n, dtype=torch.long, device=device)
    by = batch_y if batch_y is not None else torch.zeros(m, dtype=torch.long, device=device)
    clouds, inverse = torch.unique(torch.cat([bx, by]), return_inverse=True)
    return inverse[:n], inverse[n:], clouds.numel()


def search(x: Tensor, y: Tensor, k: int, batch_x: Optional[Tensor] = None,
           batch_y: Optional[Tensor] = None, *, r: Optional[float] = None,
           skip_same_index: bool = False, cosine: bool = False, engine: str = 'auto',
           max_block: int = 1 << 24, num_workers: int = 1) -> Tuple[Tensor, Tensor]:
    """The ``k`` nearest points of ``x`` to every row of ``y``, within its own cloud.

    Inputs are checked by the caller (floating or integer ``(N, D)`` and
    ``(M, D)`` tensors, sorted int64 batches or None).

    Returns:
        ``(index, dist)`` of shape ``(M, w)`` with ``w = min(k, largest cloud
        of x)``: indices into ``x`` sorted by distance (``-1`` = none) and the
        distances (``inf`` = none; cosine: between unit vectors), in
        :func:`graphs.distances.output_dtype` of ``x``. ``skip_same_index``
        drops ``x[i]`` from the neighbours of ``y[i]`` (for a search of a set
        in itself); ``r`` keeps neighbours strictly closer than ``r``.
    """
    n, m = x.size(0), y.size(0)
    device = y.device
    out_dtype = output_dtype(x.dtype)
    rank_x, rank_y, num_clouds = _cloud_ranks(batch_x, batch_y, n, m, device)
    largest = int(torch.bincount(rank_x, minlength=num_clouds).max()) if n else 0
    # Ask for one extra neighbour when the query point itself is to be dropped.
    q = min(k + int(skip_same_index), largest)
    width = min(k, q)
    asked = engine
    engine = _resolve_engine(engine, device, radius=r is not None)
    if asked == 'auto' and engine == 'torch' and device.type == 'cpu' and largest > SLOW_CLOUD:
        # One text for every size, so that Python shows it once per call site.
        warnings.warn(f"scipy is not installed, so engine='auto' searches clouds of more "
                      f"than {SLOW_CLOUD:,} points by brute force on the CPU (time grows "
                      f"with the square of the cloud); install scipy for a k-d tree",
                      stacklevel=2)
    if m == 0 or width == 0:
        return (torch.full((m, width), -1, dtype=torch.long, device=device),
                torch.full((m, width), float('inf'), dtype=out_dtype, device=device))
    x_w, y_w, shift = working_points(x, y, cosine)
    upper = float('inf') if r is None else scaled_radius(r, shift)
    if engine == 'scipy':
        index, dist = _query_scipy(x_w, rank_x, y_w, rank_y, num_clouds, q, upper, num_workers)
        index, dist = index.to(device), dist.to(device)
    elif engine == 'torch':
        index, dist = _query_torch(x_w, rank_x, y_w, rank_y, num_clouds, q, max_block)
    else:
        index, dist = _query_extension(x_w, rank_x, y_w, rank_y, q,
                                       None if r is None else upper)
    # A cloud smaller than q lets some searches reach into other clouds.
    keep = index >= 0
    if num_clouds > 1:
        keep &= rank_x[index.clamp(min=0)] == rank_y.view(-1, 1)
    if skip_same_index:
        keep &= index != torch.arange(m, device=device).view(-1, 1)
    if r is not None:
        dist = _exact_near_radius(x_w, y_w, index, dist.double(), upper)
        # Compare in float64 against the exactly scaled radius, never a rounded one.
        keep &= dist < upper
    index, dist = _first_k_kept(index, dist, keep, width)
    dist = times_power_of_two(dist.double(), -shift).to(out_dtype)
    return index, dist


def self_table(pos: Tensor, k: int, batch: Optional[Tensor], *, loop: bool = False,
               r: Optional[float] = None, cosine: bool = False, engine: str = 'auto',
               max_block: int = 1 << 24, num_workers: int = 1) -> Tuple[Tensor, Tensor]:
    """The neighbour table of a set in itself, as wide as needed (at most ``k``).

    Arguments are checked by the caller. With ``loop=True`` column 0 is the
    point itself (distance 0), followed by its ``k - 1`` nearest other points.
    """
    n = pos.size(0)
    others = k - 1 if loop else k
    index, dist = search(pos, pos, others, batch, batch, r=r, skip_same_index=True,
                         cosine=cosine, engine=engine, max_block=max_block,
                         num_workers=num_workers)
    if loop:
        me = torch.arange(n, device=pos.device).view(-1, 1)
        index = torch.cat([me, index], dim=1)
        dist = torch.cat([dist.new_zeros(n, 1), dist], dim=1)
    return index, dist


def nearest_neighbors(pos: Tensor, k: int, batch: Optional[Tensor] = None, *,
                      loop: bool = False, r: Optional[float] = None,
                      engine: str = 'auto', max_block: int = 1 << 24,
                      num_workers: Optional[int] = None) -> Tuple[Tensor, Tensor]:
    r"""The ``k`` nearest neighbours of every point within its own cloud.

    Arguments are checked as in :func:`graphs.knn_graph` (``pos`` a finite
    ``(N, D)`` floating or integer tensor, ``k >= 1``, ``batch`` sorted,
    ``r > 0``). ``num_workers`` threads query the scipy engine's tree
    (default: :func:`torch.get_num_threads`; ``-1``: every core).

    Returns:
        ``(index, dist)``, both ``(N, k)``: neighbour indices sorted by distance
        (``-1`` where a point has fewer than ``k`` neighbours) and their
        Euclidean distances (``inf`` where missing), in ``pos``'s dtype widened
        to float32 at least (the default dtype for integer positions; a
        distance beyond that dtype's range is ``inf``). With ``loop=True``
        each point is its own first neighbour, followed by its ``k - 1`` nearest
        other points; with ``loop=False`` the point itself never appears, even
        when it has duplicates (which do appear, at distance 0). With ``r``,
        only neighbours strictly closer than ``r`` are kept. The table has
        ``k`` columns even when every cloud is smaller (the extra ones are
        padding), so ask for no more than you need; the graph builders do not
        pad.
    """
    check_same_device('pos', pos, batch=batch)   # before check_batch reads the data
    pos = check_positions('pos', pos, batch)
    check_positive_int('k', k)
    batch = check_batch(batch, pos.size(0))
    check_bool('loop', loop)
    if r is not None:
        r = check_positive_float('r', r)
    workers = check_num_workers(num_workers)
    index, dist = self_table(pos, k, batch, loop=loop, r=r, engine=engine,
                             max_block=max_block, num_workers=workers)
    missing = k - index.size(1)
    if missing > 0:
        index = torch.cat([index, index.new_full((index.size(0), missing), -1)], dim=1)
        dist = torch.cat([dist, dist.new_full((dist.size(0), missing), float('inf'))], dim=1)
    return index, dist

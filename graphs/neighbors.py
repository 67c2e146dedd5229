"""Exact nearest-neighbour search with a fixed-width result, per cloud of a batch.

The search returns a dense ``(N, k)`` index table (``-1`` where a node has fewer
than ``k`` neighbours) and the matching distances. :func:`graphs.knn_graph` and
:func:`graphs.radius_graph` turn it into an edge list; layers that exploit a
fixed degree can use the table directly.

Engines (``engine=``):

* ``'scipy'``: one :class:`scipy.spatial.cKDTree` over all clouds of the batch
  (each cloud moved apart along an extra axis, so that no query can find a point
  of another cloud before the points of its own), queried on all cores.
  O(N log N); CPU tensors only.
* ``'torch'``: chunked :func:`torch.cdist` + :func:`torch.topk` on any device,
  restricted to each chunk's own clouds, with the distance block bounded by
  ``max_block`` entries. O(N * n_cloud).
* ``'extension'``: torch-cluster's compiled kernels, if installed (untested
  here: torch-cluster is not installed in CI). Its radius search keeps the
  first ``max_num_neighbors`` points it finds, not the closest.
* ``'auto'``: the extension for kNN when present, otherwise scipy on CPU and
  torch on other devices.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .validation import (check_batch, check_bool, check_points, check_positive_float,
                         check_positive_int)

__all__ = ['nearest_neighbors', 'available_engines']

ENGINES = ('auto', 'scipy', 'torch', 'extension')


def _has_extension() -> bool:
    # PyG 2.8's torch_geometric.typing no longer reports torch-cluster: ask importlib.
    import importlib.util
    return importlib.util.find_spec('torch_cluster') is not None


def available_engines() -> Tuple[str, ...]:
    """The search engines usable in this environment."""
    return ('scipy', 'torch') + (('extension',) if _has_extension() else ())


def _resolve_engine(engine: str, device: torch.device, radius: bool = False) -> str:
    if engine not in ENGINES:
        raise ValueError(f"'engine' must be one of {ENGINES} (got {engine!r})")
    if engine == 'auto':
        # torch-cluster's radius keeps the first neighbours it finds, not the closest.
        if _has_extension() and not radius:
            return 'extension'
        return 'scipy' if device.type == 'cpu' else 'torch'
    if engine == 'scipy' and device.type != 'cpu':
        raise ValueError("engine='scipy' needs CPU tensors; use engine='torch' on "
                         f"{device.type}")
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


def _query_scipy(pos: Tensor, batch: Tensor, q: int, upper: float) -> Tuple[Tensor, Tensor]:
    from scipy.spatial import cKDTree
    points = pos.detach().double().cpu().numpy()
    if batch.numel() and int(batch[-1]) > 0:
        # Separate the clouds along an extra axis by more than any distance that
        # can occur within one cloud, so one tree serves the whole batch.
        span = float(np.ptp(points, axis=0).max()) if points.size else 0.0
        gap = 2.0 * span * np.sqrt(points.shape[1]) + 1.0
        extra = batch.cpu().numpy().astype(np.float64)[:, None] * gap
        points = np.concatenate([points, extra], axis=1)
    tree = cKDTree(points)
    dist, index = tree.query(points, k=q, distance_upper_bound=upper, workers=-1)
    dist = torch.from_numpy(np.asarray(dist, dtype=np.float64).reshape(len(points), q))
    index = torch.from_numpy(np.asarray(index, dtype=np.int64).reshape(len(points), q))
    missing = index >= len(points)  # scipy marks missing neighbours with n
    index = index.masked_fill(missing, -1)
    return index, dist


def _query_torch(pos: Tensor, batch: Tensor, q: int, max_block: int) -> Tuple[Tensor, Tensor]:
    n = pos.size(0)
    index = torch.full((n, q), -1, dtype=torch.long, device=pos.device)
    dist = torch.full((n, q), float('inf'), dtype=pos.dtype, device=pos.device)
    if pos.dtype not in (torch.float32, torch.float64):
        pos = pos.float()  # cdist has no float16/bfloat16 kernels on CPU
    counts = torch.bincount(batch)
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    ptr_cpu = ptr.cpu()
    batch_cpu = batch.cpu()
    start = 0
    while start < n:
        # Candidates: every point of the clouds that the chunk's queries belong to.
        first_graph = int(batch_cpu[start])
        lo = int(ptr_cpu[first_graph])
        rows = max(1, max_block // int(ptr_cpu[first_graph + 1] - lo))
        end = start + rows
        while True:
            end = min(end, n)
            hi = int(ptr_cpu[int(batch_cpu[end - 1]) + 1])
            if (end - start) * (hi - lo) <= max_block or end - start == 1:
                break
            end = start + max(1, (end - start) // 2)
        # The matrix-product form of cdist loses precision and reorders neighbours.
        block = torch.cdist(pos[start:end], pos[lo:hi],
                            compute_mode='donot_use_mm_for_euclid_dist')
        same = batch[start:end].view(-1, 1) == batch[lo:hi].view(1, -1)
        block = block.masked_fill(~same, float('inf'))
        kk = min(q, hi - lo)
        d, i = torch.topk(block, kk, dim=1, largest=False, sorted=True)
        found = torch.isfinite(d)
        index[start:end, :kk] = torch.where(found, i + lo, torch.full_like(i, -1))
        dist[start:end, :kk] = d
        start = end
    return index, dist


def _query_extension(pos: Tensor, batch: Tensor, q: int, upper: Optional[float]) -> Tuple[Tensor, Tensor]:
    import torch_cluster
    n = pos.size(0)
    if upper is None:
        edge = torch_cluster.knn(pos, pos, q, batch, batch)
    else:
        edge = torch_cluster.radius(pos, pos, upper, batch, batch, max_num_neighbors=q)
    centre, nb = edge[0], edge[1]
    d = (pos[centre] - pos[nb]).norm(dim=-1)
    # Sort each centre's neighbours by distance, then place them in rows.
    order = torch.argsort(d, stable=True)
    order = order[torch.argsort(centre[order], stable=True)]
    centre, nb, d = centre[order], nb[order], d[order]
    counts = torch.bincount(centre, minlength=n)
    slot = torch.arange(centre.numel(), device=pos.device) - (counts.cumsum(0) - counts)[centre]
    index = torch.full((n, q), -1, dtype=torch.long, device=pos.device)
    dist = torch.full((n, q), float('inf'), dtype=pos.dtype, device=pos.device)
    index[centre, slot] = nb
    dist[centre, slot] = d
    return index, dist


def nearest_neighbors(pos: Tensor, k: int, batch: Optional[Tensor] = None, *,
                      loop: bool = False, r: Optional[float] = None,
                      engine: str = 'auto', max_block: int = 1 << 24) -> Tuple[Tensor, Tensor]:
    r"""The ``k`` nearest neighbours of every point within its own cloud.

    Arguments are checked as in :func:`graphs.knn_graph` (``pos`` a finite
    ``(N, D)`` floating tensor, ``k >= 1``, ``batch`` sorted, ``r > 0``).

    Returns:
        ``(index, dist)``, both ``(N, k)``: neighbour indices sorted by distance
        (``-1`` where a point has fewer than ``k`` neighbours) and their
        Euclidean distances (``inf`` where missing). With ``loop=True`` each
        point is its own first neighbour, followed by its ``k - 1`` nearest
        other points; with ``loop=False`` the point itself never appears, even
        when it has duplicates (which do appear, at distance 0). With ``r``,
        only neighbours strictly closer than ``r`` are kept.
    """
    pos = check_points('pos', pos)
    check_positive_int('k', k)
    batch = check_batch(batch, pos.size(0))
    check_bool('loop', loop)
    if r is not None:
        r = check_positive_float('r', r)
    n = pos.size(0)
    device = pos.device
    one_cloud = batch is None
    if batch is None:
        batch = torch.zeros(n, dtype=torch.long, device=device)
    if n == 0:
        return (torch.empty(0, k, dtype=torch.long, device=device),
                torch.empty(0, k, dtype=pos.dtype, device=device))
    engine = _resolve_engine(engine, device, radius=r is not None)
    others = k - 1 if loop else k
    # Ask for one extra neighbour so that the point itself can be dropped.
    q = others + 1
    if engine == 'scipy':
        index, dist = _query_scipy(pos, batch, q, float('inf') if r is None else r)
        index, dist = index.to(device), dist.to(device=device, dtype=pos.dtype)
    elif engine == 'torch':
        index, dist = _query_torch(pos, batch, q, max_block)
    else:
        index, dist = _query_extension(pos, batch, q, r)
    me = torch.arange(n, device=device).view(-1, 1)
    # A cloud smaller than q lets some searches reach into other clouds.
    keep = (index >= 0) & (index != me)
    if not one_cloud:
        keep &= batch[index.clamp(min=0)] == batch.view(-1, 1)
    if r is not None:
        keep &= dist < r
    index, dist = _first_k_kept(index, dist, keep, others)
    if loop:
        index = torch.cat([me, index], dim=1)
        dist = torch.cat([dist.new_zeros(n, 1), dist], dim=1)
    return index, dist

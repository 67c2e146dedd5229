"""Grid graphs of H x W feature maps.

Conventions (shared by every grid helper in this package):

* Nodes are pixels in row-major order: node ``i = row * width + col``.
* ``pos[i] = (col, row)`` in pixel units, i.e. image coordinates ``(x, y)``
  with ``y`` growing downwards.
* An edge ``j -> i`` (``edge_index[0] = j`` the source/neighbour,
  ``edge_index[1] = i`` the target/centre, PyG's ``source_to_target`` flow)
  carries the offset ``pos[j] - pos[i] = (dx, dy)``.
* The *stencil* lists the offsets of a neighbourhood in row-major order over
  ``(dy, dx)``; an edge's direction is its offset's index in the stencil. On
  the 3x3 stencil (8-connectivity with self-loops) direction ``t`` is the
  3x3 convolution tap ``(t // 3, t % 3)`` and direction 4 is the self-loop.
* Edges are sorted by target, then by source (each pixel's neighbourhood is a
  contiguous block, in stencil order).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch_geometric.data import Data

from .validation import check_bool, check_positive_int

__all__ = ['grid_stencil', 'grid_graph', 'grid_edge_count', 'grid_edges']


def _check_connectivity(connectivity: int) -> int:
    if connectivity not in (4, 8):
        raise ValueError(f"'connectivity' must be 4 or 8 (got {connectivity!r})")
    return connectivity


def grid_stencil(connectivity: int = 8, dilation: int = 1,
                 self_loops: bool = True) -> Tensor:
    r"""The neighbour offsets ``(dx, dy)`` of a grid stencil, shape ``(S, 2)``.

    Offsets are listed in row-major order over ``(dy, dx)``; the row index is
    the direction index used by :func:`grid_graph`'s one-hot ``edge_attr``.
    ``S`` is 9 (8-connectivity with self-loops), 8, 5 or 4.
    """
    _check_connectivity(connectivity)
    check_positive_int('dilation', dilation)
    check_bool('self_loops', self_loops)
    offsets = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if connectivity == 4 and dx != 0 and dy != 0:
                continue
            if dx == 0 and dy == 0 and not self_loops:
                continue
            offsets.append((dx * dilation, dy * dilation))
    # Built on the CPU whatever the default device: a stencil is metadata, and
    # modules built under torch.device('meta') read it with .tolist().
    return torch.tensor(offsets, dtype=torch.long, device='cpu')


def grid_edge_count(height: int, width: int, connectivity: int = 8,
                    dilation: int = 1, self_loops: bool = True) -> int:
    """The number of edges :func:`grid_graph` returns, in closed form."""
    total = 0
    for dx, dy in grid_stencil(connectivity, dilation, self_loops).tolist():
        total += max(height - abs(dy), 0) * max(width - abs(dx), 0)
    return total


@lru_cache(maxsize=32)
def _grid_tensors(height: int, width: int, connectivity: int, dilation: int,
                  self_loops: bool, device: torch.device) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    stencil = grid_stencil(connectivity, dilation, self_loops).to(device)
    rows = torch.arange(height, device=device).view(-1, 1).expand(height, width).reshape(-1)
    cols = torch.arange(width, device=device).view(1, -1).expand(height, width).reshape(-1)
    # (N, S) candidate neighbours of every target; out-of-bounds ones are masked.
    nb_cols = cols.view(-1, 1) + stencil[:, 0].view(1, -1)
    nb_rows = rows.view(-1, 1) + stencil[:, 1].view(1, -1)
    valid = (nb_cols >= 0) & (nb_cols < width) & (nb_rows >= 0) & (nb_rows < height)
    source = (nb_rows * width + nb_cols)[valid]
    target = torch.arange(height * width, device=device).view(-1, 1).expand_as(valid)[valid]
    direction = torch.arange(stencil.size(0), device=device).view(1, -1).expand_as(valid)[valid]
    edge_index = torch.stack([source, target], dim=0)
    edge_attr = torch.nn.functional.one_hot(direction, stencil.size(0)).float()
    edge_offset = stencil[direction].float()
    pos = torch.stack([cols, rows], dim=1).float()
    return edge_index, edge_attr, edge_offset, pos


def grid_graph(height: int, width: int, *, connectivity: int = 8, dilation: int = 1,
               self_loops: bool = True, device: Optional[torch.device] = None) -> Data:
    r"""The grid graph of an ``height x width`` feature map.

    Each pixel is linked to the pixels at the stencil offsets (see
    :func:`grid_stencil`): its 4 or 8 neighbours at distance ``dilation``,
    plus itself when ``self_loops=True``. With the defaults the edge set equals
    :func:`torch_geometric.utils.grid` (``9HW - 6(H + W) + 4`` edges).

    The result is built once per size and device and cached; each call returns
    a new :class:`~torch_geometric.data.Data` whose tensors are shared with the
    cache, so do not modify them in place.

    Args:
        height (int): Number of rows ``H``.
        width (int): Number of columns ``W``.
        connectivity (int, optional): 4 or 8. (default: :obj:`8`)
        dilation (int, optional): Distance of the neighbours. (default: :obj:`1`)
        self_loops (bool, optional): Link each pixel to itself. (default: :obj:`True`)
        device (torch.device, optional): Where to build the graph.

    Returns:
        :class:`~torch_geometric.data.Data` with ``edge_index`` (2, E),
        ``edge_attr`` (E, S) the one-hot direction of each edge over the
        stencil, ``edge_offset`` (E, 2) the offset ``pos[src] - pos[dst]``,
        ``pos`` (H*W, 2) as ``(col, row)``, ``num_nodes`` and ``grid_size``
        ``[[H, W]]`` (shape (1, 2), so that a :class:`~torch_geometric.data.Batch`
        of grids stacks it to (B, 2)).
    """
    check_positive_int('height', height)
    check_positive_int('width', width)
    _check_connectivity(connectivity)
    check_positive_int('dilation', dilation)
    if not isinstance(self_loops, bool):
        raise TypeError(f"'self_loops' must be a bool (got {type(self_loops).__name__})")
    device = torch.device(device) if device is not None else torch.device('cpu')
    edge_index, edge_attr, edge_offset, pos = _grid_tensors(
        height, width, connectivity, dilation, self_loops, device)
    return Data(edge_index=edge_index, edge_attr=edge_attr, edge_offset=edge_offset,
                pos=pos, num_nodes=height * width,
                grid_size=torch.tensor([[height, width]], device=device))


def grid_edges(height: int, width: int, offsets: Sequence[Sequence[int]],
               device: Optional[torch.device] = None) -> Tuple[Tensor, Tensor]:
    """The edges of :func:`graphs.grid_graph` and each edge's direction, by offset.

    The same edge set and directions as ``grid_graph(height, width, ...)`` with
    this stencil (tested), grouped by offset instead of sorted by target: each
    offset's edges are a rectangle of pixels, so every shape here follows from
    ``height`` and ``width`` alone and ``torch.compile`` traces it without graph
    breaks (``grid_graph`` masks out-of-image edges and caches a ``Data``).

    Returns:
        ``(edge_index, direction)``: ``(2, E)`` (row 0 neighbour, row 1
        centre) and ``(E,)``, the index in ``offsets`` of each edge's offset.
    """
    offsets = tuple((int(dx), int(dy)) for dx, dy in offsets)
    rows = torch.arange(height, device=device).view(-1, 1)
    cols = torch.arange(width, device=device).view(1, -1)
    src, dst, direction = [], [], []
    for t, (dx, dy) in enumerate(offsets):
        target = (rows[max(0, -dy):max(height - max(0, dy), 0)] * width
                  + cols[:, max(0, -dx):max(width - max(0, dx), 0)]).reshape(-1)
        dst.append(target)
        src.append(target + (dy * width + dx))
        direction.append(torch.full_like(target, t))
    return torch.stack([torch.cat(src), torch.cat(dst)]), torch.cat(direction)

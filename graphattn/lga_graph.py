"""The graph forms an LGA layer runs on, validated and prepared once per forward.

:class:`~graphattn.LGAConv` takes its graph in one of four forms, as PyG users
pass graphs: an ``edge_index``, a transposed sparse adjacency ``adj_t``, an
``(N, k)`` neighbour table (``neighbors=``) or a grid ``(height, width)``
(``grid=``). :func:`prepare_graph` checks the chosen form against the node
features, resolves the computation ``path`` and converts the form when the path
needs another one (a table or a grid run by message passing becomes an edge
list). A stack of layers (:class:`~graphattn.LGA`, :class:`~graphattn.LGA2d`)
prepares the graph once and hands the same :class:`LGAGraph` to every layer, so
nothing is checked, converted or synchronised per layer.
"""
from __future__ import annotations

import warnings
from typing import Any, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from graphs.grid import grid_edges, grid_stencil
from graphs.point_cloud import relative_positions
from graphs.point_graphs import neighbors_to_edge_index

from ._checks import LGA_PATHS, check_graph_tensors, check_path
from .adjacency import adjacency_to_edge_index, is_sparse_adjacency

__all__ = ['LGAGraph', 'prepare_graph', 'GridSpec', 'DEFAULT_OFFSETS']

Offsets = Tuple[Tuple[int, int], ...]
#: A grid as ``(height, width)`` or ``(height, width, offsets)``.
GridSpec = Union[Tuple[int, int], Tuple[int, int, Sequence[Sequence[int]]]]

#: The paper's stencil: 8 neighbours and the pixel itself, in conv-tap order.
DEFAULT_OFFSETS: Offsets = tuple((int(dx), int(dy)) for dx, dy in grid_stencil(8, 1, True).tolist())

PairTensor = Tuple[Tensor, Tensor]


class LGAGraph(NamedTuple):
    """One graph in the form a path of :class:`~graphattn.LGAConv` runs on.

    Attributes:
        form (str): ``'edges'`` (message passing), ``'table'`` or ``'grid'``
            (the fused kernels).
        edge_index (Tensor, optional): ``(2, E)``, form ``'edges'``.
        edge_attr (Tensor, optional): ``(E, D)`` (edges) or ``(N, K, D)``
            (table; :obj:`None` when computed from ``pos``).
        neighbors (Tensor, optional): ``(N, K)`` long table, ``-1`` padding.
        pos_src (Tensor, optional): Positions of the neighbours (table).
        pos_dst (Tensor, optional): Positions of the centres (table).
        height (int): Grid height (0 unless ``form='grid'``).
        width (int): Grid width.
        offsets (tuple): Grid stencil ``((dx, dy), ...)``.
        size (tuple, optional): ``(num_src, num_dst)`` for message passing.
        adjacency (Any): The sparse ``adj_t`` the graph came from, if any (the
            attention weights are returned in its layout).
        relative (bool): Whether the edge attributes are relative positions
            computed from ``pos``.
        compiled (bool): Whether a grid runs through the compiled kernel
            (``path='compiled'``).
    """
    form: str
    edge_index: Optional[Tensor] = None
    edge_attr: Optional[Tensor] = None
    neighbors: Optional[Tensor] = None
    pos_src: Optional[Tensor] = None
    pos_dst: Optional[Tensor] = None
    height: int = 0
    width: int = 0
    offsets: Offsets = DEFAULT_OFFSETS
    size: Optional[Tuple[int, int]] = None
    adjacency: Any = None
    relative: bool = False
    compiled: bool = False


def _pair(value: Union[Tensor, PairTensor, None]) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    if value is None or isinstance(value, Tensor):
        return value, value
    return value[0], value[1]


def _edge_dim_hint(edge_dim: int, got: int) -> str:
    if edge_dim == 9 and got in (2, 3):
        return (" (edge_dim=9 is the grid's one-hot default; for relative positions of a "
                f"point cloud build the layer with edge_dim={got}, edge_encoder='mlp')")
    return ''


def _check_edge_attr(edge_attr: Any, shape: Tuple[int, ...], edge_dim: int, what: str,
                     table: bool = False) -> None:
    want = (*shape, edge_dim)
    if not isinstance(edge_attr, Tensor) or not edge_attr.is_floating_point() or (
            tuple(edge_attr.shape) != want):
        got = getattr(edge_attr, 'shape', None)
        got = tuple(got) if got is not None else type(edge_attr).__name__
        hint = _edge_dim_hint(edge_dim, edge_attr.size(-1)) if isinstance(
            edge_attr, Tensor) and edge_attr.dim() == len(want) else ''
        symbolic = {1: '(E, {})', 2: '(N, K, {})' if table else '(B, E, {})'}[len(shape)]
        raise ValueError(f"'edge_attr' must have shape {symbolic.format(edge_dim)} = {want} "
                         f"{what}, floating point (got {got}){hint}")


def _grid(grid: Any, num_nodes: int, edge_dim: int) -> Tuple[int, int, Offsets]:
    if not isinstance(grid, (tuple, list)) or len(grid) not in (2, 3) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in grid[:2]):
        raise ValueError("'grid' must be (height, width) or (height, width, offsets) with "
                         f"positive ints (got {grid!r})")
    height, width = int(grid[0]), int(grid[1])
    offsets = DEFAULT_OFFSETS if len(grid) == 2 else tuple(
        (int(dx), int(dy)) for dx, dy in grid[2])
    if height * width != num_nodes:
        raise ValueError(f"'grid'={height}x{width} has {height * width} pixels but 'x' holds "
                         f"{num_nodes} nodes (x must be (B, H*W, C), pixels row-major)")
    if len(offsets) != edge_dim:
        raise ValueError(f"'grid' has {len(offsets)} directions but the layer's "
                         f"edge_dim={edge_dim} (one one-hot column per direction)")
    return height, width, offsets


def _table(neighbors: Any, num_src: int, num_dst: int) -> Tensor:
    if not isinstance(neighbors, Tensor) or neighbors.dtype not in (torch.long, torch.int):
        raise TypeError("'neighbors' must be an (N, K) integer tensor "
                        f"(got {getattr(neighbors, 'dtype', type(neighbors).__name__)})")
    if neighbors.dim() != 2 or neighbors.size(0) != num_dst:
        raise ValueError(f"'neighbors' must have shape (N, K) with N={num_dst} "
                         f"(got shape {tuple(neighbors.shape)})")
    # The range check reads the data once per forward: skipped under torch.compile.
    if not torch.compiler.is_compiling() and neighbors.numel() and (
            int(neighbors.min()) < -1 or int(neighbors.max()) >= num_src):
        raise ValueError(f"'neighbors' entries must lie in [0, {num_src}) or be -1 (padding)")
    return neighbors.long()


def _edges(edge_index: Any) -> Tensor:
    if not isinstance(edge_index, Tensor) or edge_index.is_floating_point() or (
            edge_index.dtype == torch.bool):
        raise TypeError("'edge_index' must be a (2, E) integer Tensor, a sparse adjacency "
                        f"adj_t, or None with 'neighbors'/'grid' (got "
                        f"{getattr(edge_index, 'dtype', type(edge_index).__name__)})")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"'edge_index' must have shape (2, E) (got shape "
                         f"{tuple(edge_index.shape)})")
    # int32 indices (EdgeIndex, pyg-lib) are valid input, but index_fill_ and torch's
    # scatter kernels under PyG's softmax take int64 only: one conversion per forward.
    return edge_index.long()


def _warn_without_self(num_nodes: int, has_self: Tensor) -> None:
    # LGA aggregates over N(i) only: without the self-loop a node's own features
    # never reach its output, a silent loss of information. One sync per forward,
    # at the outermost entry; skipped while compiling.
    if num_nodes == 0:
        return
    missing = int((~has_self).sum())
    if missing:
        warnings.warn(f"{missing} of {num_nodes} nodes have no self-loop: LGA aggregates over "
                      "each node's neighbourhood only, so their own features never reach "
                      "their output. Build the graph with self-loops (graphs.knn_graph(..., "
                      "loop=True), point_cloud_to_data(..., loop=True), "
                      "torch_geometric.utils.add_self_loops)", UserWarning, stacklevel=4)


def _check_pos(pos: Union[Tensor, PairTensor], num_src: int, num_dst: int,
               batch: Optional[int]) -> None:
    # (N, D): one position per node, shared by a batch x (B, N, C); (B, N, D): one set per
    # sample, only with such a batch.
    pos_src, pos_dst = _pair(pos)
    names = ('pos', 'pos') if isinstance(pos, Tensor) else ('pos[0]', 'pos[1]')
    for name, p, n in ((names[0], pos_src, num_src), (names[1], pos_dst, num_dst)):
        if isinstance(p, Tensor) and p.is_floating_point() and p.dim() >= 2 and (
                p.shape[:-1] == (n,) or (batch is not None and p.shape[:-1] == (batch, n))):
            continue
        got = tuple(p.shape) if isinstance(p, Tensor) else type(p).__name__
        batched = ('' if batch is None else
                   f" or, one set per sample of x, (B, N, D) = ({batch}, {n}, D)")
        hint = (" ((B, N, D) positions need x of shape (B, N, C))"
                if batch is None and isinstance(p, Tensor) and p.dim() == 3 else '')
        raise ValueError(f"'{name}' must have shape (N, D) = ({n}, D){batched}, floating "
                         f"point (got {got}){hint}")


def _offsets(pos: Union[Tensor, PairTensor], edge_index: Tensor) -> Tensor:
    """``pos[j] - pos[i]`` per edge ``j -> i``: ``(E, D)``, or ``(B, E, D)`` for
    positions with a batch dim."""
    pos_src, pos_dst = _pair(pos)
    if pos_src.dim() == 2 and pos_dst.dim() == 2:
        return relative_positions(pos, edge_index)
    try:
        return (pos_src.index_select(-2, edge_index[0])
                - pos_dst.index_select(-2, edge_index[1]))
    except IndexError as error:
        raise IndexError("'edge_index' holds node indices outside the positions' "
                         f"{pos_src.size(-2)} (sources) or {pos_dst.size(-2)} (targets)"
                         ) from error


def _num_targets(x_dst: Optional[Tensor], size: Optional[Tuple[int, int]], edge_index: Any,
                 neighbors: Any, flow: str) -> int:
    """The number of target nodes: ``x_dst``'s, else ``size[1]``, else what the graph
    holds (as PyG counts them for ``(x_src, None)``: one more than the largest target)."""
    if x_dst is not None:
        return x_dst.size(-2)
    if size is not None:
        return int(size[1])
    if isinstance(neighbors, Tensor) and neighbors.dim() == 2:
        return neighbors.size(0)
    if is_sparse_adjacency(edge_index):
        return int(edge_index.size(0))
    if isinstance(edge_index, Tensor) and edge_index.dim() == 2 and edge_index.size(0) == 2:
        centre = edge_index[1] if flow == 'source_to_target' else edge_index[0]
        return int(centre.max()) + 1 if centre.numel() else 0
    return 0   # the graph is reported as invalid by its own check


def _relative(pos: Union[Tensor, PairTensor], edge_index: Tensor, flow: str) -> Tensor:
    # pos[j] - pos[i] for the edge j -> i: with flow='target_to_source' the
    # neighbour j is row 1 and the centre i row 0.
    if flow == 'target_to_source':
        pos_src, pos_dst = _pair(pos)
        return _offsets((pos_dst, pos_src), edge_index.flip(0))
    return _offsets(pos, edge_index)


def prepare_graph(x_src: Tensor, x_dst: Optional[Tensor], edge_index: Any = None,
                  edge_attr: Optional[Tensor] = None, size: Optional[Tuple[int, int]] = None,
                  pos: Union[Tensor, PairTensor, None] = None, neighbors: Any = None,
                  grid: Optional[GridSpec] = None, *, edge_dim: int, path: str = 'auto',
                  flow: str = 'source_to_target') -> LGAGraph:
    """Validate one graph form against the features and prepare it for ``path``.

    Exactly one of ``edge_index`` (dense, ``EdgeIndex`` or sparse ``adj_t``),
    ``neighbors`` and ``grid`` must be given. ``'auto'`` runs the fused kernel
    for a table or a grid and message passing for an edge list;
    ``'message_passing'`` turns a table or a grid into its edge list;
    ``'fused'`` needs a table or a grid, ``'compiled'`` a grid. ``x_dst`` may be
    :obj:`None` (targets without features): their number is then ``size[1]``, the
    table's rows or, for an edge list, one more than the largest target.
    """
    path = check_path(path, LGA_PATHS)
    given = [name for name, value in (('edge_index', edge_index), ('neighbors', neighbors),
                                      ('grid', grid)) if value is not None]
    if len(given) != 1:
        raise ValueError("pass the graph as exactly one of 'edge_index' (2, E) or adj_t, "
                         f"'neighbors' (N, K) or 'grid' (H, W) (got {given or 'none'})")
    num_src = x_src.size(-2)
    num_dst = _num_targets(x_dst, size, edge_index, neighbors, flow)
    if x_dst is None and size is None and grid is None:
        size = (num_src, num_dst)
    if pos is not None and edge_attr is None and grid is None:
        _check_pos(pos, num_src, num_dst, x_src.size(0) if x_src.dim() == 3 else None)
    check_graph_tensors(x_src, x_dst, edge_index, edge_attr, pos, neighbors, flow, num_dst)
    if grid is not None:
        if x_src is not x_dst:
            raise ValueError("'grid' graphs are not bipartite: pass one 'x' of shape (B, H*W, C)")
        if edge_attr is not None or pos is not None:
            raise ValueError("'grid' graphs carry their own edge attribute (the one-hot "
                             "direction): leave 'edge_attr' and 'pos' unset")
        height, width, offsets = _grid(grid, num_dst, edge_dim)
        if (0, 0) not in offsets and not torch.compiler.is_compiling():
            _warn_without_self(num_dst, torch.zeros(num_dst, dtype=torch.bool))
        if path == 'message_passing':
            ei, direction = grid_edges(height, width, offsets, x_dst.device)
            eye = torch.eye(len(offsets), dtype=x_dst.dtype, device=x_dst.device)
            return LGAGraph('edges', ei, eye.index_select(0, direction), size=size)
        return LGAGraph('grid', height=height, width=width, offsets=offsets,
                        compiled=path == 'compiled')
    if path == 'compiled':
        raise ValueError("path='compiled' is the compiled grid kernel: pass the graph as "
                         "'grid' (H, W); use 'fused' for a neighbour table")
    if neighbors is not None:
        table = _table(neighbors, num_src, num_dst)
        if edge_attr is not None:
            _check_edge_attr(edge_attr, tuple(table.shape), edge_dim, "with 'neighbors'",
                             table=True)
        elif pos is None:
            raise ValueError("'edge_attr' of shape (N, K, edge_dim) is required with "
                             "'neighbors' (or pass 'pos' for relative positions)")
        if x_src is x_dst and not torch.compiler.is_compiling():
            _warn_without_self(num_dst, (table == torch.arange(
                num_dst, device=table.device).unsqueeze(1)).any(dim=1))
        if path == 'message_passing':
            ei = neighbors_to_edge_index(table)
            attr = edge_attr[table >= 0] if edge_attr is not None else _offsets(pos, ei)
            _check_edge_attr(attr, (*attr.shape[:-2], ei.size(1)), edge_dim,
                             "(relative positions of 'pos')")
            return LGAGraph('edges', ei, attr, size=(num_src, num_dst),
                            relative=edge_attr is None)
        pos_src, pos_dst = _pair(pos)
        return LGAGraph('table', edge_attr=edge_attr, neighbors=table, pos_src=pos_src,
                        pos_dst=pos_dst, relative=edge_attr is None)
    if path == 'fused':
        raise ValueError("path='fused' needs a regular graph form: pass 'neighbors' (an (N, K) "
                         "table, e.g. graphs.to_neighbor_table(edge_index)) or 'grid'")
    adjacency = None
    if is_sparse_adjacency(edge_index):  # PyG's adj_t: its 2-D values are the edge_attr
        adjacency = edge_index
        if isinstance(adjacency, Tensor) and adjacency.layout == torch.sparse_coo:
            adjacency = adjacency.coalesce()  # the order the weights come back in
        edge_index, values = adjacency_to_edge_index(adjacency)
        if edge_attr is None and values is not None and values.dim() == 2:
            edge_attr = values
    edge_index = _edges(edge_index)
    relative = edge_attr is None
    if relative:
        if pos is None:
            raise ValueError("'edge_attr' of shape (E, edge_dim) is required (or pass "
                             "'pos' to use relative positions pos[j] - pos[i])")
        edge_attr = _relative(pos, edge_index, flow)
    rows = (*edge_attr.shape[:-2], edge_index.size(1)) if relative else (edge_index.size(1),)
    _check_edge_attr(edge_attr, rows, edge_dim, 'for the edges of edge_index')
    if x_src is x_dst and size is None and edge_index.numel() and (
            not torch.compiler.is_compiling()):
        centre = edge_index[1] if flow == 'source_to_target' else edge_index[0]
        # One spare slot: out-of-range indices are reported later, naming edge_index.
        looped = torch.zeros(num_dst + 1, dtype=torch.bool, device=edge_index.device)
        looped.index_fill_(0, centre[edge_index[0] == edge_index[1]].clamp(0, num_dst), True)
        _warn_without_self(num_dst, looped[:num_dst])
    return LGAGraph('edges', edge_index, edge_attr, size=size, adjacency=adjacency,
                    relative=relative)

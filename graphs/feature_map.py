"""Feature maps (B, C, H, W) to PyG graphs and back.

Two forms are offered:

* :func:`feature_map_to_batch` gives a :class:`~torch_geometric.data.Batch`
  of B grid graphs (``x`` of shape (B*H*W, C), ``batch``, ``pos``, grid edges),
  the form every PyG layer and loader understands; :func:`batch_to_feature_map`
  inverts it exactly.
* :func:`feature_map_to_nodes` gives the static-graph form (B, H*W, C): with PyG's
  default ``node_dim=-2`` a layer can run all B maps over the one shared
  ``grid_graph(H, W).edge_index``; :func:`nodes_to_feature_map` inverts it.
"""
from __future__ import annotations

from typing import Optional, Union

from torch import Tensor
from torch_geometric.data import Batch, Data

from .grid import grid_graph
from .validation import check_positive_int

__all__ = ['feature_map_to_batch', 'batch_to_feature_map',
           'feature_map_to_nodes', 'nodes_to_feature_map']


def _check_feature_map(x) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"'x' must be a torch.Tensor of shape (B, C, H, W) "
                        f"(got {type(x).__name__})")
    if x.dim() != 4:
        raise ValueError(f"'x' must have shape (B, C, H, W) (got shape {tuple(x.shape)})")
    if not x.is_floating_point():
        raise TypeError(f"'x' must be a floating-point tensor (got {x.dtype})")
    return x


def feature_map_to_nodes(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H*W, C), nodes in row-major pixel order."""
    x = _check_feature_map(x)
    return x.flatten(2).transpose(1, 2)


def nodes_to_feature_map(x: Tensor, height: int, width: int) -> Tensor:
    """(B, H*W, C) -> (B, C, H, W); the inverse of :func:`feature_map_to_nodes`."""
    check_positive_int('height', height)
    check_positive_int('width', width)
    if not isinstance(x, Tensor) or x.dim() != 3 or x.size(1) != height * width:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"'x' must have shape (B, {height * width}, C) for a "
                         f"{height}x{width} map (got {shape})")
    return x.transpose(1, 2).reshape(x.size(0), x.size(2), height, width)


def feature_map_to_batch(x: Tensor, *, connectivity: int = 8, dilation: int = 1,
                         self_loops: bool = True) -> Batch:
    r"""Turn a feature map into a :class:`~torch_geometric.data.Batch` of grid graphs.

    Image ``b`` becomes graph ``b``: its pixels are nodes ``b*H*W + row*W + col``,
    linked as in :func:`graphs.grid_graph` (same ``connectivity``,
    ``dilation`` and ``self_loops``).

    Args:
        x (Tensor): Feature map of shape ``(B, C, H, W)``, ``B, H, W >= 1``.

    Returns:
        :class:`~torch_geometric.data.Batch` with ``x`` (B*H*W, C), ``pos``,
        ``edge_index``, ``edge_attr`` (one-hot direction), ``edge_offset``,
        ``batch`` and ``grid_size`` (B, 2), so that :func:`batch_to_feature_map`
        can restore the map.
    """
    x = _check_feature_map(x)
    b, _, h, w = x.shape
    if b == 0 or h == 0 or w == 0:
        raise ValueError(f"'x' must hold at least one non-empty map, B, H, W >= 1 "
                         f"(got shape {tuple(x.shape)})")
    graph = grid_graph(h, w, connectivity=connectivity, dilation=dilation,
                       self_loops=self_loops, device=x.device)
    nodes = feature_map_to_nodes(x)
    # The grid tensors are cached and shared by every image of the batch.
    data_list = [Data(x=nodes[i], edge_index=graph.edge_index, edge_attr=graph.edge_attr,
                      edge_offset=graph.edge_offset, pos=graph.pos,
                      grid_size=graph.grid_size, num_nodes=h * w) for i in range(b)]
    return Batch.from_data_list(data_list)


def batch_to_feature_map(batch: Union[Batch, Data], x: Optional[Tensor] = None) -> Tensor:
    r"""Restore the (B, C, H, W) feature map of a batch of grid graphs.

    Args:
        batch (Batch or Data): The output of :func:`feature_map_to_batch` (or one
            :func:`graphs.grid_graph` with node features), carrying ``grid_size``.
        x (Tensor, optional): Node features to place on the grid instead of
            ``batch.x``, for example a layer's output of shape (B*H*W, C').
    """
    if not isinstance(batch, Data) and not isinstance(batch, Batch):
        raise TypeError(f"'batch' must be a torch_geometric Batch or Data "
                        f"(got {type(batch).__name__})")
    grid_size = getattr(batch, 'grid_size', None)
    if not isinstance(grid_size, Tensor) or grid_size.dim() != 2 or grid_size.size(1) != 2:
        raise ValueError("'batch' has no 'grid_size' of shape (B, 2); build it with "
                         "graphs.feature_map_to_batch or graphs.grid_graph")
    if bool((grid_size != grid_size[0]).any()):
        raise ValueError("'batch' holds grids of different sizes "
                         f"({grid_size.unique(dim=0).tolist()}); they cannot be stacked "
                         "into one (B, C, H, W) tensor: convert the graphs one by one")
    h, w = (int(v) for v in grid_size[0])
    b = grid_size.size(0)
    x = batch.x if x is None else x
    if not isinstance(x, Tensor) or x.dim() != 2 or x.size(0) != b * h * w:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"'x' must have shape ({b * h * w}, C) for {b} grids of "
                         f"{h}x{w} (got {shape})")
    return nodes_to_feature_map(x.view(b, h * w, -1), h, w)

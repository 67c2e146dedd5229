"""Inspect graphs with networkx: export with positions and per-edge values, import back.

networkx is imported lazily, inside the functions, as PyG does.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Optional, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import from_networkx as pyg_from_networkx
from torch_geometric.utils import to_networkx as pyg_to_networkx

from .grid import grid_graph
from .validation import check_edge_index, check_positive_int

__all__ = ['to_networkx', 'from_networkx', 'align_edge_values', 'receptive_field']

EdgeValues = Union[Tensor, Tuple[Tensor, Tensor]]


def align_edge_values(edge_index: Tensor, values_edge_index: Tensor, values: Tensor,
                      num_nodes: int) -> Tensor:
    """Reorder per-edge ``values`` given on ``values_edge_index`` to ``edge_index``'s order.

    Useful for attention weights that a layer returns with its own edge order.
    Every edge of ``edge_index`` must appear in ``values_edge_index``.
    """
    key = values_edge_index[0] * num_nodes + values_edge_index[1]
    order = torch.argsort(key)
    sorted_key = key[order]
    wanted = edge_index[0] * num_nodes + edge_index[1]
    pos = torch.searchsorted(sorted_key, wanted).clamp(max=max(sorted_key.numel() - 1, 0))
    if sorted_key.numel() == 0 or bool((sorted_key[pos] != wanted).any()):
        raise ValueError("'edge_values' misses some edges of the graph's 'edge_index'")
    return values[order[pos]]


def to_networkx(data: Data, *, node_attrs: Optional[Iterable[str]] = None,
                edge_attrs: Optional[Iterable[str]] = None,
                edge_values: Optional[Dict[str, EdgeValues]] = None,
                to_undirected: bool = False, remove_self_loops: bool = False) -> Any:
    r"""Export a graph to a :class:`networkx.DiGraph` (or ``Graph``).

    Node positions (``data.pos``) are always exported as the node attribute
    ``'pos'`` (a tuple, ready for :func:`networkx.draw`), and ``grid_size`` as a
    graph attribute when present.

    Args:
        data (Data): The graph.
        node_attrs (iterable of str, optional): Further node attributes of
            ``data`` to export (e.g. ``['x']``).
        edge_attrs (iterable of str, optional): Edge attributes of ``data`` to
            export (e.g. ``['edge_attr']``).
        edge_values (dict, optional): Extra per-edge values by name, each either a
            tensor aligned with ``data.edge_index`` (first dimension E) or a pair
            ``(edge_index, values)`` as returned by a layer's
            ``return_attention_weights=True``, aligned here by edge.
        to_undirected (bool, optional): Return an undirected graph.
        remove_self_loops (bool, optional): Drop self-loops.
    """
    if not isinstance(data, Data):
        raise TypeError(f"'data' must be a torch_geometric Data (got {type(data).__name__})")
    check_edge_index('data.edge_index', data.edge_index, data.num_nodes)
    shallow = Data(edge_index=data.edge_index, num_nodes=data.num_nodes)
    node_keys = list(node_attrs or [])
    edge_keys = list(edge_attrs or [])
    for key in node_keys + edge_keys:
        if key not in data:
            kind = 'node_attrs' if key in node_keys else 'edge_attrs'
            raise KeyError(f"'{kind}' names {key!r}, which 'data' does not have "
                           f"(it has {sorted(data.keys())})")
        shallow[key] = data[key]
    if getattr(data, 'pos', None) is not None:
        shallow.pos = data.pos
        node_keys.append('pos')
    num_edges = data.edge_index.size(1)
    for name, value in (edge_values or {}).items():
        if isinstance(value, tuple):
            value = align_edge_values(data.edge_index, value[0], value[1], data.num_nodes)
        if not isinstance(value, Tensor) or value.size(0) != num_edges:
            raise ValueError(f"edge_values[{name!r}] must have first dimension {num_edges} "
                             "(one value per edge of 'data.edge_index')")
        shallow[name] = value.detach()
        edge_keys.append(name)
    graph_keys = []
    if isinstance(getattr(data, 'grid_size', None), Tensor):
        shallow.grid_size = data.grid_size
        graph_keys.append('grid_size')
    G = pyg_to_networkx(shallow, node_attrs=node_keys, edge_attrs=edge_keys,
                        graph_attrs=graph_keys, to_undirected=to_undirected,
                        remove_self_loops=remove_self_loops)
    if 'pos' in node_keys:
        for _, attrs in G.nodes(data=True):
            attrs['pos'] = tuple(attrs['pos'])
    return G


def from_networkx(G: Any, group_node_attrs=None, group_edge_attrs=None) -> Data:
    """Import a networkx graph as :class:`~torch_geometric.data.Data`.

    The inverse of :func:`to_networkx`: node ``'pos'`` tuples become a float
    ``pos`` tensor and ``grid_size`` is restored. Other arguments as in
    :func:`torch_geometric.utils.from_networkx`.
    """
    import networkx as nx
    if not isinstance(G, nx.Graph):
        raise TypeError(f"'G' must be a networkx graph (got {type(G).__name__})")
    graph_attrs = dict(G.graph)
    G = G.copy()
    G.graph.clear()
    data = pyg_from_networkx(G, group_node_attrs, group_edge_attrs)
    if isinstance(getattr(data, 'pos', None), Tensor):
        data.pos = data.pos.float()
    if 'grid_size' in graph_attrs:
        data.grid_size = torch.tensor(graph_attrs['grid_size'], dtype=torch.long)
    return data


def receptive_field(height: int, width: int, pixel: Tuple[int, int], hops: int, *,
                    connectivity: int = 8, dilation: int = 1) -> Tensor:
    r"""Which pixels can reach ``pixel`` within ``hops`` edges of the grid graph.

    This is the receptive field of ``hops`` stacked local layers on the grid graph
    of :func:`graphs.grid_graph` (a ``(2L+1) x (2L+1)`` square for the 8-connected
    graph, a diamond for the 4-connected one, clipped at the borders), computed
    by a breadth-first search in networkx.

    Args:
        height (int): Rows of the map.
        width (int): Columns of the map.
        pixel (tuple): ``(row, col)`` of the output pixel.
        hops (int): Number of layers ``L`` (0 gives the pixel alone).

    Returns:
        BoolTensor of shape ``(height, width)``.
    """
    import networkx as nx
    check_positive_int('height', height)
    check_positive_int('width', width)
    check_positive_int('hops', hops, minimum=0)
    if (not isinstance(pixel, (tuple, list)) or len(pixel) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in pixel)):
        raise TypeError(f"'pixel' must be a pair of ints (row, col) (got {pixel!r})")
    row, col = pixel
    if not (0 <= row < height and 0 <= col < width):
        raise ValueError(f"'pixel' must be (row, col) inside the {height}x{width} map "
                         f"(got {pixel})")
    graph = grid_graph(height, width, connectivity=connectivity, dilation=dilation,
                       self_loops=False)
    G = nx.DiGraph()
    G.add_nodes_from(range(height * width))
    G.add_edges_from(graph.edge_index.t().tolist())
    # Messages flow source -> target, so the pixels that reach the target are its
    # ancestors: search the reversed graph.
    reached = nx.single_source_shortest_path_length(G.reverse(copy=False), row * width + col,
                                                    cutoff=hops)
    mask = torch.zeros(height * width, dtype=torch.bool)
    mask[list(reached)] = True
    return mask.view(height, width)

"""The latent bipartite graph of LatentGNN.

LatentGNN (Zhang, Yan and He, ICML 2019, https://arxiv.org/abs/1905.11634)
connects the :math:`N` visible nodes of a graph to :math:`d` latent nodes that
belong to that graph alone.  For :math:`B` graphs the latent nodes are numbered
graph by graph: latent node :math:`k` of graph :math:`b` has the global index
:math:`b \\cdot d + k`.

Edges are stored in the *visible -> latent* orientation: ``edge_index[0]``
holds visible node indices (global over the batch, in the order of ``x``) and
``edge_index[1]`` holds latent node indices.  Messages of the latent -> visible
step flow along the same edges, reversed.

The graph is complete by default (every visible node reaches the ``d`` latent
nodes of its own graph, and no others); given an ``(N, d)`` affinity and
``top_m``, each visible node keeps only its ``top_m`` highest-affinity latent
nodes.  Edges are sorted by visible node, then by latent node.

:class:`LatentGraph` batches correctly with :meth:`torch_geometric.data.Batch.from_data_list`:
visible indices are shifted by the number of visible nodes and latent indices
by the number of latent nodes of the preceding graphs.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.data import Data

from .validation import check_batch, check_positive_int

__all__ = ['LatentGraph', 'latent_graph', 'latent_edge_index', 'latent_to_networkx']


class LatentGraph(Data):
    r"""A visible -> latent bipartite graph (a :class:`~torch_geometric.data.Data`).

    Attributes:
        edge_index (LongTensor): ``(2, E)``; row 0 visible nodes, row 1 latent
            nodes (``b * latent_dim + k``).
        edge_weight (Tensor, optional): ``(E,)`` affinity of each edge.
        num_nodes (int): number of visible nodes.
        num_latent_nodes (LongTensor): ``(1,)``, the number of latent nodes
            (``num_graphs * latent_dim``); one entry per element after collation.
        latent_dim (LongTensor): ``(1,)``, latent nodes per graph :math:`d`.
        latent_batch (LongTensor): ``(num_latent_nodes,)`` graph of each latent node.

    When batched, ``edge_index[0]`` is incremented by ``num_nodes`` and
    ``edge_index[1]`` by ``num_latent_nodes``; ``latent_batch`` by the number of
    graphs the element holds (``num_latent_nodes // latent_dim``).
    """

    def __inc__(self, key: str, value: Any, *args, **kwargs) -> Any:
        # After collation the int attributes become per-element tensors: sum them,
        # so that batches of batches (and to_data_list round trips) still work.
        if key == 'edge_index':
            return torch.tensor([[int(self.num_nodes)], [self.total_latent_nodes]])
        if key == 'latent_batch':
            return self.total_graphs
        return super().__inc__(key, value, *args, **kwargs)

    @property
    def total_latent_nodes(self) -> int:
        return int(torch.as_tensor(self.num_latent_nodes).sum())

    @property
    def total_graphs(self) -> int:
        counts = torch.as_tensor(self.num_latent_nodes) // torch.as_tensor(self.latent_dim)
        return int(counts.sum())


def latent_edge_index(
    batch: Optional[Tensor],
    num_nodes: int,
    num_latent: int,
    *,
    affinity: Optional[Tensor] = None,
    top_m: Optional[int] = None,
    device: Optional[torch.device] = None,
) -> Tuple[Tensor, Optional[Tensor]]:
    r"""Edge index (and weights) of the latent bipartite graph, without checks.

    The unchecked kernel behind :func:`latent_graph`, used inside layers'
    forward passes.  ``batch`` is a sorted batch vector of length ``num_nodes``
    or ``None`` (one graph).  Returns ``(edge_index, edge_weight)``;
    ``edge_weight`` is ``None`` when no ``affinity`` is given.
    """
    d = num_latent
    if affinity is not None:
        device = affinity.device
    elif batch is not None:
        device = batch.device
    nodes = torch.arange(num_nodes, device=device)
    offset = None if batch is None else (batch * d).view(-1, 1)
    if top_m is None or top_m >= d:
        cols = torch.arange(d, device=device).view(1, -1).expand(num_nodes, d)
        weight = None if affinity is None else affinity.reshape(-1)
        m = d
    else:
        assert affinity is not None
        cols = affinity.topk(top_m, dim=1).indices.sort(dim=1).values
        weight = affinity.gather(1, cols).reshape(-1)
        m = top_m
    if offset is not None:
        cols = cols + offset
    rows = nodes.view(-1, 1).expand(num_nodes, m)
    return torch.stack([rows.reshape(-1), cols.reshape(-1)], dim=0), weight


def latent_graph(
    nodes: Union[int, Tensor, Data],
    num_latent: int,
    *,
    affinity: Optional[Tensor] = None,
    top_m: Optional[int] = None,
    num_graphs: Optional[int] = None,
    device: Optional[Union[str, torch.device]] = None,
) -> LatentGraph:
    r"""The visible -> latent bipartite graph of LatentGNN for one or more graphs.

    Visible node :math:`i` of graph :math:`b` is joined to the latent nodes
    :math:`b \cdot d + k` of its own graph, :math:`k = 0, \dots, d - 1`
    (complete), or, with ``affinity`` :math:`\mathbf{A} \in \mathbb{R}^{N \times d}`
    and ``top_m`` :math:`= m`, only to the :math:`m` latent nodes with the
    largest :math:`A_{ik}` (ties broken as :func:`torch.topk` does).

    Args:
        nodes (int, Tensor or Data): the visible nodes: a node count (one
            graph), a sorted batch vector of shape ``(N,)`` (several graphs),
            or a :class:`~torch_geometric.data.Data` / ``Batch`` (its
            ``num_nodes`` and, if present, ``batch``).
        num_latent (int): latent nodes per graph :math:`d`.
        affinity (Tensor, optional): ``(N, d)`` affinities; stored as
            ``edge_weight`` and used by ``top_m``. (default: :obj:`None`)
        top_m (int, optional): keep the ``top_m`` highest-affinity latent nodes
            of each visible node; needs ``affinity``.  ``top_m >= d`` gives the
            complete graph. (default: :obj:`None`, complete)
        num_graphs (int, optional): number of graphs for a batch vector
            (default: ``batch.max() + 1``); trailing empty graphs still get
            their latent nodes.
        device (torch.device, optional): device of the result when ``nodes``
            is an int and no ``affinity`` is given.

    Returns:
        :class:`LatentGraph` with ``edge_index`` ``(2, N * d)`` or
        ``(2, N * m)``, ``edge_weight`` (when ``affinity`` is given),
        ``num_nodes = N``, ``num_latent_nodes = B * d``, ``latent_dim = d``,
        ``latent_batch``.

    Example:
        >>> g = latent_graph(3, 2)
        >>> g.edge_index
        tensor([[0, 0, 1, 1, 2, 2],
                [0, 1, 0, 1, 0, 1]])
    """
    d = check_positive_int('num_latent', num_latent)
    batch: Optional[Tensor] = None
    if isinstance(nodes, bool):
        raise TypeError("'nodes' must be an int, a batch vector or a Data object (got bool)")
    if isinstance(nodes, int):
        n = check_positive_int('nodes', nodes, minimum=0)
        b = 1
    elif isinstance(nodes, Tensor):
        if nodes.dim() != 1:
            raise ValueError("'nodes' as a tensor must be a batch vector of shape (N,) "
                             f"(got shape {tuple(nodes.shape)})")
        batch = check_batch(nodes, nodes.numel(), name='nodes')
        n = batch.numel()
    elif isinstance(nodes, Data):
        n = nodes.num_nodes
        if n is None:
            raise ValueError("'nodes' (a Data object) must know its 'num_nodes'")
        batch = getattr(nodes, 'batch', None)
        if batch is not None:
            batch = check_batch(batch, n, name='nodes.batch')
            if num_graphs is None and hasattr(nodes, 'num_graphs'):
                num_graphs = int(nodes.num_graphs)
        b = 1
    else:
        raise TypeError("'nodes' must be an int, a batch vector of shape (N,) or a "
                        f"Data object (got {type(nodes).__name__})")
    if batch is not None:
        inferred = int(batch.max()) + 1 if n > 0 else 0
        if num_graphs is None:
            b = max(inferred, 1)
        else:
            b = check_positive_int('num_graphs', num_graphs)
            if b < inferred:
                raise ValueError(f"'num_graphs' ({b}) is smaller than the number of graphs "
                                 f"in the batch vector ({inferred})")
    elif num_graphs is not None and num_graphs != 1:
        raise ValueError("'num_graphs' must be 1 (or None) when 'nodes' describes one graph")

    if affinity is not None:
        if not isinstance(affinity, Tensor):
            raise TypeError(f"'affinity' must be a torch.Tensor of shape ({n}, {d}) "
                            f"(got {type(affinity).__name__})")
        if not affinity.is_floating_point():
            raise TypeError(f"'affinity' must be a floating-point tensor (got {affinity.dtype})")
        if affinity.dim() != 2 or tuple(affinity.shape) != (n, d):
            raise ValueError(f"'affinity' must have shape ({n}, {d}), one row per visible "
                             f"node and one column per latent node "
                             f"(got shape {tuple(affinity.shape)})")
        if affinity.numel() > 0 and bool(torch.isnan(affinity).any()):
            raise ValueError("'affinity' contains NaN values")
    if top_m is not None:
        top_m = check_positive_int('top_m', top_m)
        if affinity is None:
            raise ValueError("'top_m' needs an 'affinity' of shape (N, num_latent) to rank "
                             "the latent nodes")
    if batch is not None:
        device = batch.device
    elif affinity is not None:
        device = affinity.device
    edge_index, edge_weight = latent_edge_index(batch, n, d, affinity=affinity,
                                                top_m=top_m, device=device)
    latent_batch = torch.arange(b, device=edge_index.device).repeat_interleave(d)
    # Counts are (1,)-tensors, not ints, so that collation stacks them and
    # to_data_list() gives back the same type (PyG would mix ints and tensors).
    data = LatentGraph(edge_index=edge_index, num_nodes=n,
                       num_latent_nodes=torch.tensor([b * d]),
                       latent_dim=torch.tensor([d]), latent_batch=latent_batch)
    if edge_weight is not None:
        data.edge_weight = edge_weight
    return data


def latent_to_networkx(graph: Union[LatentGraph, Tensor], edge_weight: Optional[Tensor] = None,
                       *, num_nodes: Optional[int] = None,
                       num_latent_nodes: Optional[int] = None) -> Any:
    r"""Export a visible/latent bipartite graph to a :class:`networkx.DiGraph`.

    Nodes are ``('visible', i)`` and ``('latent', k)`` (attribute
    ``bipartite`` 0 or 1), edges run visible -> latent and carry ``weight``
    when weights are known (for example a :class:`graphattn.LatentAssignment`'s
    ``v2l_weight`` or ``l2v_weight``).

    Args:
        graph (LatentGraph or LongTensor): a :class:`LatentGraph`, or an edge
            index ``(2, E)`` (row 0 visible, row 1 latent).
        edge_weight (Tensor, optional): ``(E,)`` weights (default: the
            graph's ``edge_weight``, if any).
        num_nodes (int, optional): visible nodes (default: from ``graph``, or
            ``edge_index[0].max() + 1``).
        num_latent_nodes (int, optional): latent nodes (likewise).
    """
    import networkx as nx

    if isinstance(graph, LatentGraph):
        edge_index = graph.edge_index
        if edge_weight is None:
            edge_weight = getattr(graph, 'edge_weight', None)
        num_nodes = int(graph.num_nodes) if num_nodes is None else num_nodes
        num_latent_nodes = (graph.total_latent_nodes if num_latent_nodes is None
                            else num_latent_nodes)
    elif isinstance(graph, Tensor):
        edge_index = graph
    else:
        raise TypeError("'graph' must be a LatentGraph or an edge index of shape (2, E) "
                        f"(got {type(graph).__name__})")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError("'graph' edge index must have shape (2, E) "
                         f"(got shape {tuple(edge_index.shape)})")
    if edge_weight is not None and tuple(edge_weight.shape) != (edge_index.size(1),):
        raise ValueError(f"'edge_weight' must have shape ({edge_index.size(1)},) "
                         f"(got shape {tuple(edge_weight.shape)})")
    empty = edge_index.size(1) == 0
    if num_nodes is None:
        num_nodes = 0 if empty else int(edge_index[0].max()) + 1
    if num_latent_nodes is None:
        num_latent_nodes = 0 if empty else int(edge_index[1].max()) + 1
    G = nx.DiGraph()
    G.add_nodes_from((('visible', i) for i in range(num_nodes)), bipartite=0)
    G.add_nodes_from((('latent', k) for k in range(num_latent_nodes)), bipartite=1)
    rows, cols = edge_index.tolist()
    if edge_weight is None:
        G.add_edges_from((('visible', i), ('latent', k)) for i, k in zip(rows, cols))
    else:
        G.add_edges_from((('visible', i), ('latent', k), {'weight': w})
                         for i, k, w in zip(rows, cols, edge_weight.tolist()))
    return G

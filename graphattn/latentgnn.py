"""LatentGNN on nodes: any graph, any batch of graphs (PyG ``batch`` vector)."""
from __future__ import annotations

from typing import ClassVar, Optional, Union

import torch
from torch import Tensor
from torch_geometric.data import Batch
from torch_geometric.data.data import BaseData

from graphs.validation import check_batch, check_positive_int

from ._checks import check_batch_size, check_features, check_same_device
from .dense_layout import DenseLayout
from .latentgnn_base import LatentGNNBase, Output, consecutive_graphs
from .norms import check_batch_norm_nodes

__all__ = ['LatentGNN']


class LatentGNN(LatentGNNBase):
    r"""The LatentGNN operator from the `"Latent Graph Neural Networks:
    Efficient Non-local Relations Learning" <https://arxiv.org/abs/1905.11634>`_
    paper (Zhang, Yan and He, ICML 2019), on the nodes of any batch of graphs.

    Every graph of the batch gets :math:`d_k` latent nodes of its own per
    kernel; the computation is that of
    :class:`~graphattn.latentgnn_base.LatentGNNBase` (steps 1-6 there), with
    :math:`\Psi` normalised over the nodes of each graph:

    .. math::
        \mathbf{X}' = \mathbf{X} + \gamma \, \mathcal{N}\Big(\big\Vert_{k}\,
        \Psi_{l,k}\, \mathbf{F}_k\, \Psi_{v,k}^{\top} \mathbf{X}_v\Big)
        \mathbf{W}_{up}, \qquad \gamma = 0 \text{ at initialisation}

    Norms on nodes: the default ``norm='layer'`` normalises each node over
    its channels, so a node's output never depends on the other graphs of
    the batch nor on training statistics, and ``eval()`` computes what
    training computed.  ``norm='batch'`` (the authors' choice for batches of
    images, and :class:`~graphattn.LatentGNN2d`'s default) normalises with
    the statistics of the nodes of the batch in training and with running
    averages in ``eval()``: with one or two point clouds per step those are
    the statistics of one cloud, and the running averages over clouds are
    not.  In ``tests/test_latentgnn_defaults.py``, after 20 steps on one
    cloud at a time, the block's ``eval()`` output moved by 5.9 times its
    train-mode size with ``'batch'`` and not at all with ``'layer'`` (no
    running state).  On the cortex crops of ``examples/segment_points.py``
    (3 seeds) the two score alike: ``'layer'`` 25.0 +- 0.5 mIoU and
    ``'batch'`` 25.3 +- 0.4 with two crops per step (re-run paired on
    2026-12-05), 21.1 +- 1.7 and 20.5 +- 1.0 with one (2026-11-29).  A
    model saved with ``norm='batch'`` (the default up to graphattn 0.2)
    loads into ``LatentGNN(..., norm='batch')``.

    Graphs of a batch with no nodes (a batch index that never occurs, or
    trailing graphs counted by ``batch_size``) are allowed: they produce no
    output rows and do not affect other graphs (their latent nodes carry zero
    features).  An input with no nodes at all is returned unchanged
    (``residual=True``) or as zeros.

    Args:
        in_channels (int): channels :math:`C` of every node.
        latent_dims (list of int or int): latent nodes :math:`d_k` of each
            kernel (an int is used for all kernels).
        channel_stride (int, optional): channel reduction :math:`s`,
            :math:`C' = C / s`; :obj:`None`: 4, or less so that
            :math:`C' \geq 8` at small widths
            (:func:`~graphattn.latentgnn_base.default_channel_stride`).
            (default: :obj:`None`)
        num_kernels (int, optional): kernels :math:`K`. (default: :obj:`1`)
        mode (str, optional): ``'asymmetric'`` (two projections and two
            :math:`\Psi`) or ``'symmetric'``. (default: :obj:`'asymmetric'`)
        graph_conv (bool, optional): add the graph convolution of step 5.
            (default: :obj:`False`)
        residual (bool, optional): return :math:`\mathbf{X} + \gamma\mathbf{Y}`
            (else :math:`\mathbf{Y}`). (default: :obj:`True`)
        norm (str or callable, optional): ``'layer'``, ``'batch'``, ``'none'``,
            ``'frozen'``, or ``f(num_features)`` returning a module on
            ``(N, C)``; :obj:`None`: ``'layer'`` (see above). (default: :obj:`None`)
        sparse_top_m (int, optional): keep the top-:math:`m` latent nodes of
            each visible node (message-passing path). (default: :obj:`None`)
        path (str, optional): ``'auto'`` (fused when the bipartite graph is
            complete), ``'fused'`` or ``'message_passing'``; ``forward`` can
            override it. (default: :obj:`'auto'`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, C)`, batch vector
          :math:`(|\mathcal{V}|)` (sorted) or :obj:`None` (one graph); or a
          PyG ``Data``/``Batch`` holding both
        - **output:** node features :math:`(|\mathcal{V}|, C)`, and with
          ``return_assignments=True`` a list of :math:`K`
          :class:`LatentAssignment` (edge indices :math:`(2, |\mathcal{V}| d)`
          or :math:`(2, |\mathcal{V}| m)`, weights, latent adjacency
          :math:`(B, d, d)`)
    """

    #: ``norm=None``: per-node layer norm (see the class docstring).
    default_norm: ClassVar[str] = 'layer'

    def forward(self, x: Union[Tensor, BaseData], batch: Optional[Tensor] = None, *,
                batch_size: Optional[int] = None, max_num_nodes: Optional[int] = None,
                path: Optional[str] = None, return_assignments: bool = False) -> Output:
        r"""
        Args:
            x (Tensor or Data): node features ``(N, in_channels)``; or a PyG
                ``Data``/``Batch``, whose ``x``, ``batch`` and (for a
                ``Batch``) ``num_graphs`` fill ``x``, ``batch`` and
                ``batch_size`` where not given.
            batch (LongTensor, optional): sorted graph index of each node
                (PyG batch vector); :obj:`None` for one graph. Without
                ``batch_size`` the ids may be any int64 (cloud ids such as 0
                and ``2**40``): the ids present are renumbered ``0, 1, ...``
                in order, which also numbers the assignments' ``latent_adj``.
            batch_size (int, optional): number of graphs; the ids are then
                graph indices below it (graphs without nodes allowed, each
                with its ``latent_adj`` entry). (default: the number of ids
                present); saves a device sync.
            max_num_nodes (int, optional): size of the largest graph (padding
                of the fused path; default: computed, a device sync).  With
                ``batch_size`` and ``max_num_nodes`` given, ``torch.compile``
                traces ``forward`` without graph breaks.
            path (str, optional): overrides the constructor's ``path``.
            return_assignments (bool, optional): also return each kernel's
                bipartite weights as a :class:`LatentAssignment`.

        Returns:
            ``out`` ``(N, in_channels)``, or ``(out, assignments)`` with
            ``return_assignments=True`` (a list of :math:`K`
            :class:`LatentAssignment`, empty for an input without nodes).
        """
        if isinstance(x, BaseData):
            x, batch, batch_size = _unpack(x, batch, batch_size)
        check_features('x', x, self.in_channels, (f'(N, {self.in_channels})',), (2,),
                       self.up.weight.dtype)
        n = x.size(0)
        check_batch_norm_nodes('x', n, self.norm, self.training)
        check_same_device('x', x, batch=batch)   # first: the checks below read batch's data
        if not torch.compiler.is_compiling():   # check_batch reads the data: a device sync
            if batch is not None:
                batch = check_batch(batch, n)
                if batch_size is None:
                    batch = consecutive_graphs(batch)
            elif batch_size is not None:
                check_positive_int('batch_size', batch_size)
            if max_num_nodes is not None:
                check_positive_int('max_num_nodes', max_num_nodes)
        num_graphs = 1 if batch is None else check_batch_size(batch, batch_size)
        chosen = self.resolve_path(path)
        if n == 0:
            return self.pack(self.output(x, None), [], return_assignments)
        layout = DenseLayout(n, batch, num_graphs, x.device, max_num_nodes,
                             dense=chosen == 'fused')
        y, assignments = self.node_forward(x, layout, chosen, return_assignments)
        return self.pack(self.output(x, y), assignments, return_assignments)


def _unpack(data: BaseData, batch: Optional[Tensor], batch_size: Optional[int]):
    """``x``, ``batch`` and ``batch_size`` of a PyG ``Data``/``Batch`` (the
    arguments given explicitly win)."""
    if not isinstance(data.x, Tensor):
        raise ValueError(f"'x' is a PyG {type(data).__name__} without node features: set its "
                         "'x' to an (N, in_channels) tensor, or pass the features as 'x'")
    if batch is None:
        batch = data.batch
    if batch_size is None and isinstance(data, Batch):
        batch_size = data.num_graphs
    return data.x, batch, batch_size

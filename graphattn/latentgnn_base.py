r"""The LatentGNN block: its parameters and its computation on flat ``(N, C)``
nodes, shared by :class:`~graphattn.LatentGNN` (nodes + batch vector) and
:class:`~graphattn.LatentGNN2d` (feature maps), which only check, reshape and
call it. The kernel maths (steps 3-5) is in :mod:`graphattn.latent_kernels`."""
from __future__ import annotations

from typing import ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphs.latent import latent_edge_index
from graphs.validation import check_positive_int

from ._checks import check_choice, check_path
from ._repr import non_default_options
from .dense_layout import DenseLayout
from .latent_kernels import (LatentAssignment, bipartite_convs, fused_latent_kernel,
                             l2_normalize, message_passing_latent_kernel)
from .latentgnn_official import convert_official_state_dict
from .norms import NormSpec, check_norm, make_norm

__all__ = ['MODES', 'Output', 'LatentKernel', 'LatentGNNBase', 'default_channel_stride',
           'MIN_HIDDEN_CHANNELS', 'consecutive_graphs']

#: The fewest reduced channels :math:`C'` the default ``channel_stride`` leaves
#: (all of :math:`C` when :math:`C` is smaller).
MIN_HIDDEN_CHANNELS = 8

#: The two ways of building the bipartite weights :math:`\Psi`.
MODES = ('asymmetric', 'symmetric')

#: What ``forward`` returns: ``out`` alone, or ``(out, assignments)``.
Output = Union[Tensor, Tuple[Tensor, List[LatentAssignment]]]


class LatentKernel(nn.Module):
    r"""One LatentGNN kernel (steps 2-5 of :class:`LatentGNNBase`): a thin module
    over :mod:`graphattn.latent_kernels`.

    Holds the parameters of :math:`\Psi_v, \Psi_l` (or :math:`\Psi`) and
    :math:`\mathbf{W}_g`, and the parameter-free message-passing layers
    :attr:`v2l` and :attr:`l2v` (:class:`~torch_geometric.nn.conv.SimpleConv`,
    hidden from PyG's explainers).
    """

    def __init__(self, channels: int, latent_dim: int, mode: str, graph_conv: bool,
                 norm: NormSpec) -> None:
        super().__init__()
        self.channels = channels
        self.latent_dim = latent_dim
        self.mode = mode
        if mode == 'asymmetric':
            self.psi_v2l = nn.Linear(channels, latent_dim, bias=False)
            self.psi_v2l_norm = make_norm(norm, latent_dim)
            self.psi_l2v = nn.Linear(channels, latent_dim, bias=False)
            self.psi_l2v_norm = make_norm(norm, latent_dim)
        else:
            self.psi = nn.Linear(channels, latent_dim, bias=False)
            self.psi_norm = make_norm(norm, latent_dim)
        self.v2l, self.l2v = bipartite_convs()
        if graph_conv:
            self.graph_conv = nn.Linear(channels, channels, bias=False)
            self.graph_conv_norm = make_norm(norm, channels)
        else:
            self.graph_conv = None
            self.graph_conv_norm = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for child in self.children():
            if hasattr(child, 'reset_parameters'):
                child.reset_parameters()
        if self.graph_conv is not None:
            nn.init.normal_(self.graph_conv.weight, mean=0.0, std=0.01)

    def affinities(self, xv: Tensor, xl: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """Raw (unnormalised, after ReLU) :math:`\\Psi_v` and :math:`\\Psi_l`, each (N, d)."""
        if self.mode == 'asymmetric':
            assert xl is not None
            psi_v = F.relu(self.psi_v2l_norm(self.psi_v2l(xv)))
            psi_l = F.relu(self.psi_l2v_norm(self.psi_l2v(xl)))
            return psi_v, psi_l
        psi = F.relu(self.psi_norm(self.psi(xv)))
        return psi, psi

    def update(self, x: Tensor) -> Tensor:
        """The graph convolution of step 5 (the identity without one)."""
        if self.graph_conv is None:
            return x
        return F.relu(self.graph_conv_norm(self.graph_conv(x)))

    def forward(self, xv: Tensor, xl: Optional[Tensor], xv_dense: Optional[Tensor],
                layout: DenseLayout, path: str, top_m: Optional[int],
                return_assignment: bool = False
                ) -> Tuple[Tensor, Optional[LatentAssignment]]:
        """Steps 2-5 on ``(N, C')`` visible features (``xv_dense``: their
        ``(B, n, C')`` blocks, for ``path='fused'``)."""
        psi_v, psi_l = self.affinities(xv, xl)
        symmetric = self.mode == 'symmetric'
        assignment: Optional[LatentAssignment] = None
        if path == 'fused':
            assert xv_dense is not None
            pl = layout.to_dense(psi_l)
            pv = pl if symmetric else layout.to_dense(psi_v)
            out, adj, weights = fused_latent_kernel(xv_dense, pv, pl, symmetric=symmetric,
                                                    return_weights=return_assignment)
            out = layout.to_flat(out)
            if weights is not None:
                assignment = self._complete_assignment(layout, *weights, adj)
        else:
            out, assignment = message_passing_latent_kernel(
                xv, psi_v, psi_l, layout.batch_vector(), layout.num_graphs, v2l=self.v2l,
                l2v=self.l2v, symmetric=symmetric, top_m=top_m)
        return self.update(out), assignment

    def _complete_assignment(self, layout: DenseLayout, w_v: Tensor, w_l: Tensor,
                             adj: Tensor) -> LatentAssignment:
        # The dense weights on the edges of the complete graph (node-major, as
        # latent_edge_index orders them).
        edge_index, _ = latent_edge_index(layout.batch_vector(), layout.num_nodes,
                                          self.latent_dim)
        return LatentAssignment(edge_index, layout.to_flat(w_v).reshape(-1), edge_index,
                                layout.to_flat(w_l).reshape(-1), adj)


class LatentGNNBase(nn.Module):
    r"""The LatentGNN block from the `"Latent Graph Neural Networks: Efficient
    Non-local Relations Learning" <https://arxiv.org/abs/1905.11634>`_ paper
    (Zhang, Yan and He, ICML 2019): its parameters and its computation on
    flat nodes, shared by :class:`~graphattn.LatentGNN` (nodes of any batch of
    graphs) and :class:`~graphattn.LatentGNN2d` (feature maps), which have the
    same state dict.

    Every graph of :math:`N` visible nodes :math:`\mathbf{X} \in \mathbb{R}^{N \times C}`
    gets :math:`d` latent nodes of its own, joined to all its visible nodes by a
    bipartite graph whose weights are learned; non-local relations pass
    visible -> latent -> latent -> visible in :math:`O(N d C')` instead of the
    :math:`O(N^2 C)` of a non-local block.  On feature maps this computes
    exactly what the authors' ``LatentGNNV1`` computes (``BatchNorm2d`` being
    ``'batch'`` here; their weights load with :meth:`load_official_state_dict`).

    1. Channel reduction (:math:`C' = C / s`; :math:`\mathcal{N}` the norm,
       rows L2-normalised over channels):

       .. math::
           \mathbf{X}_v = \mathrm{L2}_{\mathrm{row}}\big(\mathcal{N}(\mathbf{X}
           \mathbf{W}_v)\big), \qquad
           \mathbf{X}_l = \mathrm{L2}_{\mathrm{row}}\big(\mathcal{N}(\mathbf{X}
           \mathbf{W}_l)\big) \in \mathbb{R}^{N \times C'}

       (symmetric mode: one map, :math:`\mathbf{X}_l` unused).

    2. Per kernel :math:`k` with :math:`d = d_k` latent nodes, the bipartite
       weights, normalised over the visible nodes of the graph
       (:math:`\Psi_v`) and over the latent nodes (:math:`\Psi_l`):

       .. math::
           \Psi_v = \mathrm{L2}_{\mathrm{col}}\big(\mathrm{ReLU}(\mathcal{N}(
           \mathbf{X}_v \mathbf{W}_{\psi v}))\big), \qquad
           \Psi_l = \mathrm{L2}_{\mathrm{row}}\big(\mathrm{ReLU}(\mathcal{N}(
           \mathbf{X}_l \mathbf{W}_{\psi l}))\big) \in \mathbb{R}^{N \times d}

       (symmetric mode: :math:`\Psi_v = \Psi_l = \mathrm{L2}_{\mathrm{row}}
       (\mathrm{ReLU}(\mathcal{N}(\mathbf{X}_v \mathbf{W}_\psi)))`).

    3. Visible -> latent: :math:`\mathbf{Z} = \Psi_v^{\top} \mathbf{X}_v \in
       \mathbb{R}^{d \times C'}`

       .. math::
           \mathbf{z}_k = \sum_i (\Psi_v)_{ik} \, (\mathbf{X}_v)_i

    4. Latent -> latent, with :math:`\hat{\mathbf{Z}}` the row-normalised
       :math:`\mathbf{Z}`:

       .. math::
           \mathbf{F} = \mathrm{softmax}_{\mathrm{row}}\big(\hat{\mathbf{Z}}
           \hat{\mathbf{Z}}^{\top}\big), \qquad \tilde{\mathbf{Z}} = \mathbf{F}
           \mathbf{Z}

    5. Latent -> visible, then (``graph_conv=True``) a graph convolution with
       :math:`\mathbf{W}_g \sim \mathcal{N}(0, 0.01^2)` at initialisation:

       .. math::
           \tilde{\mathbf{X}}_k = \Psi_l \tilde{\mathbf{Z}}, \qquad
           \tilde{\mathbf{X}}_k \leftarrow \mathrm{ReLU}\big(\mathcal{N}(
           \tilde{\mathbf{X}}_k \mathbf{W}_g)\big)

    6. Kernels concatenated and mapped back to :math:`C` channels; the output
       is a residual with a learned scalar :math:`\gamma` initialised to 0
       (so the block starts as the identity):

       .. math::
           \mathbf{Y} = \mathcal{N}\big([\tilde{\mathbf{X}}_1 \,\|\, \cdots
           \,\|\, \tilde{\mathbf{X}}_K] \mathbf{W}_{up}\big), \qquad
           \mathbf{X}' = \mathbf{X} + \gamma \mathbf{Y}
           \quad (\text{or } \mathbf{Y} \text{ without residual})

    Steps 3 and 5 are message passing over the bipartite graph
    :func:`graphs.latent_graph` (PyG's :class:`~torch_geometric.nn.conv.SimpleConv`,
    edge weights :math:`\Psi`: :func:`~graphattn.latent_kernels.message_passing_latent_kernel`,
    ``path='message_passing'``).  When that graph is complete (the default)
    the same sums run as batched matrix products
    (:func:`~graphattn.latent_kernels.fused_latent_kernel`, ``path='fused'``):
    no :math:`N d` edge tensor, the column norm of :math:`\Psi_v` folded into
    :math:`\mathbf{Z}`, graphs of different sizes zero-padded (padding never
    enters a norm or softmax).  With ``sparse_top_m = m`` each visible node
    keeps only its :math:`m` largest raw affinities (ranked before
    normalisation) in each direction, and :math:`\Psi` is normalised over the
    kept edges: :math:`O(N m C')`, message passing only.

    Norms :math:`\mathcal{N}` (``norm``): ``'batch'`` is batch norm over all
    nodes of the batch (on feature maps: ``BatchNorm2d``'s statistics, the
    authors' choice and :class:`~graphattn.LatentGNN2d`'s default; it couples
    the graphs of a batch in training mode, as it does images, and needs more
    than one node there); ``'layer'`` normalises each node over its channels
    (:class:`~graphattn.LatentGNN`'s default: with one or two graphs per
    batch, batch statistics are one cloud's statistics, and the running
    averages used in ``eval()`` are not: see :class:`~graphattn.LatentGNN`);
    ``'none'``; ``'frozen'`` is an affine map from buffers (identity at init,
    no parameters), as in the authors' detection runs.

    Channel reduction: ``channel_stride=None`` (the default) is the authors'
    :math:`s = 4` whenever that leaves :math:`C' \geq 8`
    (:math:`C \geq 32`), else the largest :math:`s < 4` dividing :math:`C`
    with :math:`C / s \geq 8`, else :math:`s = 1`
    (:func:`default_channel_stride`): at :math:`C' = 2` or :math:`4` the
    L2-normalised reduced features, which carry all that the latent nodes
    see, have almost no room.  An explicit ``channel_stride`` is used as given.

    State dicts: the norms' parameters and buffers are part of it, so a module
    saved with ``norm='batch'`` (``LatentGNN``'s default up to graphattn 0.2)
    loads into one built with ``norm='batch'`` given explicitly, and one saved
    with the 0.2 default stride at :math:`C < 32` into one built with
    ``channel_stride=4``.  Loading into another configuration fails (strict
    loading) with a message (a shape mismatch) or a warning (a norm without
    the saved running statistics, or the reverse) that names the argument.

    The arguments are those of the two front-ends, documented once on
    :class:`~graphattn.LatentGNN` (nodes) and :class:`~graphattn.LatentGNN2d`
    (feature maps); ``norm=None`` means the class's :attr:`default_norm`.
    """

    #: The norm of ``norm=None``: the authors' batch norm (feature maps).
    default_norm: ClassVar[str] = 'batch'

    def __init__(
        self,
        in_channels: int,
        latent_dims: Union[int, Sequence[int]],
        channel_stride: Optional[int] = None,
        num_kernels: int = 1,
        mode: str = 'asymmetric',
        graph_conv: bool = False,
        residual: bool = True,
        norm: Optional[NormSpec] = None,
        sparse_top_m: Optional[int] = None,
        path: str = 'auto',
    ) -> None:
        super().__init__()
        check_positive_int('in_channels', in_channels)
        if channel_stride is None:
            channel_stride = default_channel_stride(in_channels)
        if norm is None:
            norm = self.default_norm
        check_positive_int('channel_stride', channel_stride)
        check_positive_int('num_kernels', num_kernels)
        if in_channels % channel_stride != 0:
            raise ValueError(f"'in_channels' ({in_channels}) must be divisible by "
                             f"'channel_stride' ({channel_stride})")
        latent_dims = _check_latent_dims(latent_dims, num_kernels)
        check_choice('mode', mode, MODES)
        check_norm(norm)
        if sparse_top_m is not None:
            check_positive_int('sparse_top_m', sparse_top_m)
            if sparse_top_m > min(latent_dims):
                raise ValueError(f"'sparse_top_m' must be in [1, min(latent_dims)="
                                 f"{min(latent_dims)}] (got {sparse_top_m})")

        self.in_channels = in_channels
        self.latent_dims = latent_dims
        self.channel_stride = channel_stride
        self.num_kernels = num_kernels
        self.mode = mode
        self.graph_conv = graph_conv
        self.residual = residual
        self.norm = norm
        self.sparse_top_m = sparse_top_m
        self.path = check_path(path)
        self.resolve_path()   # 'fused' needs sparse_top_m=None
        self.hidden_channels = c = in_channels // channel_stride

        if mode == 'asymmetric':
            self.down_v2l = nn.Linear(in_channels, c, bias=False)
            self.down_v2l_norm = make_norm(norm, c)
            self.down_l2v = nn.Linear(in_channels, c, bias=False)
            self.down_l2v_norm = make_norm(norm, c)
        else:
            self.down = nn.Linear(in_channels, c, bias=False)
            self.down_norm = make_norm(norm, c)
        self.kernels = nn.ModuleList(
            [LatentKernel(c, d, mode, graph_conv, norm) for d in self.latent_dims])
        self.up = nn.Linear(num_kernels * c, in_channels, bias=False)
        self.up_norm = make_norm(norm, in_channels)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Default ``Conv2d``/``Linear`` init for the projections,
        :math:`\mathcal{N}(0, 0.01^2)` for graph convs, identity norms and
        :math:`\gamma = 0`."""
        for name, child in self.named_children():
            if name != 'kernels' and hasattr(child, 'reset_parameters'):
                child.reset_parameters()
        for kernel in self.kernels:
            kernel.reset_parameters()
        nn.init.zeros_(self.gamma)

    def __repr__(self) -> str:
        norm = self.norm if isinstance(self.norm, str) else getattr(
            self.norm, '__name__', type(self.norm).__name__)
        options = non_default_options(
            graph_conv=(self.graph_conv, False), residual=(self.residual, True),
            norm=(norm, self.default_norm if isinstance(self.norm, str) else None),
            sparse_top_m=(self.sparse_top_m, None))
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'latent_dims={self.latent_dims}, channel_stride={self.channel_stride}, '
                f'num_kernels={self.num_kernels}, mode={self.mode!r}{options})')

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs) -> None:
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)
        hint = self._configuration_hint(state_dict, prefix)
        if hint is None:
            return
        if hint[0] == 'channel_stride':
            error_msgs.append(hint[1])   # the shapes differ: loading fails in any case
        else:
            # torch does not tell this hook whether loading is strict: a warning keeps
            # strict=False loading possible and explains strict loading's missing keys.
            warnings.warn(hint[1], UserWarning, stacklevel=4)

    def _configuration_hint(self, state_dict: Mapping[str, Tensor], prefix: str
                            ) -> Optional[Tuple[str, str]]:
        """``(argument, message)``: which constructor argument a state dict of
        another configuration needs (the defaults of ``norm`` and
        ``channel_stride`` changed in 0.2), or :obj:`None`."""
        name = self.__class__.__name__
        saved_up = state_dict.get(prefix + 'up.weight')
        if isinstance(saved_up, Tensor) and saved_up.dim() == 2 \
                and saved_up.shape != self.up.weight.shape \
                and saved_up.size(0) == self.in_channels \
                and saved_up.size(1) % self.num_kernels == 0 and saved_up.size(1) > 0:
            saved_c = saved_up.size(1) // self.num_kernels
            if self.in_channels % saved_c == 0:
                stride = self.in_channels // saved_c
                return 'channel_stride', (
                    f"this {name} state dict was saved with channel_stride={stride} "
                    f"(C' = {saved_c}); this module has channel_stride={self.channel_stride}: "
                    f"build it with channel_stride={stride} (the default stride keeps C' >= "
                    f"{MIN_HIDDEN_CHANNELS} since graphattn 0.2)")
        saved_stats = (prefix + 'up_norm.running_mean') in state_dict
        has_stats = hasattr(self.up_norm, 'running_mean')
        if saved_stats and not has_stats:
            return 'norm', (
                f"this {name} state dict was saved with norm='batch' (or 'frozen'), which "
                f"keeps running statistics; this module has norm={self.norm!r}: build it "
                "with norm='batch' to load it (LatentGNN's default norm is 'layer' since "
                "graphattn 0.2)")
        if has_stats and not saved_stats and (prefix + 'up_norm.weight') in state_dict:
            return 'norm', (
                f"this {name} state dict was saved with a norm without running statistics "
                f"('layer' or a callable); this module has norm={self.norm!r}: build it with "
                "the norm it was saved with")
        return None

    # ------------------------------------------------------ official weights
    def load_official_state_dict(self, state_dict: Mapping[str, Tensor],
                                 strict: bool = True):
        r"""Load a state dict of the authors' ``LatentGNNV1`` module.

        The keys are renamed and the conv weights flattened by
        :meth:`convert_official_state_dict`; returns what
        :meth:`torch.nn.Module.load_state_dict` returns.
        """
        return self.load_state_dict(convert_official_state_dict(state_dict), strict=strict)

    @staticmethod
    def convert_official_state_dict(state_dict: Mapping[str, Tensor]) -> Dict[str, Tensor]:
        """The authors' state dict with this module's key names and weight shapes
        (:func:`graphattn.latentgnn_official.convert_official_state_dict`)."""
        return convert_official_state_dict(state_dict)

    # ---------------------------------------------------------- computation
    def resolve_path(self, path: Optional[str] = None) -> str:
        """The computation path, ``'fused'`` or ``'message_passing'``, of
        ``path`` (default: the constructor's); ``'fused'`` needs the complete graph."""
        path = check_path(self.path if path is None else path)
        if path == 'fused' and self.sparse_top_m is not None:
            raise ValueError(f"path='fused' needs the complete bipartite graph "
                             f"(sparse_top_m=None, got sparse_top_m={self.sparse_top_m}); "
                             "use path='message_passing' or 'auto'")
        if path == 'auto':
            return 'fused' if self.sparse_top_m is None else 'message_passing'
        return path

    def node_forward(self, x: Tensor, layout: DenseLayout, path: str,
                     return_assignments: bool = False
                     ) -> Tuple[Tensor, List[LatentAssignment]]:
        """Steps 1-6 on flat ``(N, C)`` nodes, unchecked: :math:`\\mathbf{Y}`
        ``(N, C)`` (before the residual) and, when asked, each kernel's
        :class:`~graphattn.latent_kernels.LatentAssignment`."""
        if self.mode == 'asymmetric':
            xv = l2_normalize(self.down_v2l_norm(self.down_v2l(x)), -1)
            xl: Optional[Tensor] = l2_normalize(self.down_l2v_norm(self.down_l2v(x)), -1)
        else:
            xv = l2_normalize(self.down_norm(self.down(x)), -1)
            xl = None
        xv_dense = layout.to_dense(xv) if path == 'fused' else None
        outs: List[Tensor] = []
        assignments: List[LatentAssignment] = []
        for kernel in self.kernels:
            out, assignment = kernel(xv, xl, xv_dense, layout, path, self.sparse_top_m,
                                     return_assignments)
            outs.append(out)
            if return_assignments and assignment is not None:
                assignments.append(assignment)
        y = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
        return self.up_norm(self.up(y)), assignments

    def output(self, x: Tensor, y: Optional[Tensor]) -> Tensor:
        r""":math:`\mathbf{X} + \gamma\mathbf{Y}` (or :math:`\mathbf{Y}`);
        ``y=None`` for an input without nodes (returned as is, or zeros)."""
        if y is None:
            return x.clone() if self.residual else torch.zeros_like(x)
        return x + self.gamma * y if self.residual else y.contiguous()

    @staticmethod
    def pack(out: Tensor, assignments: List[LatentAssignment],
             return_assignments: bool) -> Output:
        """The one return convention: ``out``, or ``(out, assignments)`` with
        ``return_assignments=True`` (one :class:`LatentAssignment` per kernel)."""
        return (out, assignments) if return_assignments else out


def consecutive_graphs(batch: Tensor) -> Tensor:
    """A sorted batch vector with its graph ids renumbered ``0, 1, ...`` in order.

    Cloud ids may be any int64 (e.g. 0 and ``2**40``, as the kNN builders accept);
    taken as graph indices they would size every per-graph tensor (the fused
    path's ``(B, n, C)`` blocks, the ``(B, d, d)`` latent adjacency) by the
    largest id. Graphs are independent, so only the ids present matter.
    """
    if batch.numel() == 0:
        return batch
    return torch.cat([batch.new_zeros(1), (batch[1:] != batch[:-1]).cumsum(0)])


def default_channel_stride(in_channels: int) -> int:
    r"""The channel stride :math:`s` of ``channel_stride=None``: the authors'
    4 when it leaves :math:`C / s \geq` :data:`MIN_HIDDEN_CHANNELS` (8), else
    the largest :math:`s \in \{3, 2\}` dividing :math:`C` that does, else 1
    (all channels kept).

    >>> [default_channel_stride(c) for c in (256, 32, 24, 16, 12, 8, 4)]
    [4, 4, 3, 2, 1, 1, 1]
    """
    check_positive_int('in_channels', in_channels)
    for stride in (4, 3, 2):
        if in_channels % stride == 0 and in_channels // stride >= MIN_HIDDEN_CHANNELS:
            return stride
    return 1


def _check_latent_dims(latent_dims: Union[int, Sequence[int]], num_kernels: int) -> List[int]:
    """``latent_dims``: one positive int per kernel (an int: the same for all)."""
    if isinstance(latent_dims, int) and not isinstance(latent_dims, bool):
        latent_dims = [latent_dims] * num_kernels
    if not isinstance(latent_dims, (list, tuple)):
        raise TypeError("'latent_dims' must be a list of positive ints, one per kernel "
                        f"(got {latent_dims!r})")
    for i, d in enumerate(latent_dims):
        check_positive_int(f'latent_dims[{i}]', d)
    if len(latent_dims) != num_kernels:
        raise ValueError(f"'latent_dims' must have num_kernels={num_kernels} entries "
                         f"(got {len(latent_dims)}: {list(latent_dims)})")
    return list(latent_dims)

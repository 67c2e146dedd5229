"""LatentGNN on nodes: any graph, any batch of graphs (PyG ``batch`` vector)."""
from __future__ import annotations

from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphs.latent import latent_edge_index
from graphs.validation import check_batch, check_dtype, check_positive_int

from .latent_propagation import (LatentToVisible, VisibleToLatent, inverse_norm,
                                 l2_normalize_edge_weight)
from .norms import NORMS, NormSpec, make_norm

__all__ = ['LatentGNN', 'LatentAssignment', 'latentgnn_num_parameters']

_EPS = 1e-12  # the clamp of torch.nn.functional.normalize
MODES = ('asymmetric', 'symmetric')
PATHS = ('auto', 'fused', 'message_passing')


class LatentAssignment(NamedTuple):
    r"""The bipartite weights of one LatentGNN kernel (``return_assignments=True``).

    Both edge indices use the :class:`graphs.LatentGraph` orientation
    (row 0 visible node, row 1 latent node ``b * d + k``).

    Attributes:
        v2l_edge_index (LongTensor): ``(2, E)`` edges of step 3.
        v2l_weight (Tensor): ``(E,)`` normalised :math:`\hat{\Psi}_v` entries.
        l2v_edge_index (LongTensor): ``(2, E')`` edges of step 5.
        l2v_weight (Tensor): ``(E',)`` normalised :math:`\hat{\Psi}_l` entries.
        latent_adj (Tensor): ``(B, d, d)`` latent-to-latent weights :math:`\mathbf{F}`.
    """
    v2l_edge_index: Tensor
    v2l_weight: Tensor
    l2v_edge_index: Tensor
    l2v_weight: Tensor
    latent_adj: Tensor


def latentgnn_num_parameters(in_channels: int, latent_dims: Sequence[int],
                             channel_stride: int = 4, mode: str = 'asymmetric',
                             graph_conv: bool = False, norm: str = 'batch') -> int:
    r"""Trainable parameter count of :class:`LatentGNN` (and of the authors' block).

    With :math:`C' = C / s`, :math:`K` kernels of latent sizes :math:`d_k`,
    :math:`a = 2` (asymmetric) or :math:`1` (symmetric), :math:`g = 1` with
    graph conv, and :math:`n = 2` for ``'batch'`` / ``'layer'`` norms, else 0:

    .. math::
        a C C' + \sum_k \left(a C' d_k + g C'^2\right) + K C' C + 1
        + n \left(a C' + \sum_k (a d_k + g C') + C\right)
    """
    c = in_channels // channel_stride
    k = len(latent_dims)
    a = 2 if mode == 'asymmetric' else 1
    g = 1 if graph_conv else 0
    n = 2 if norm in ('batch', 'layer') else 0
    weights = a * in_channels * c + sum(a * c * d + g * c * c for d in latent_dims) \
        + k * c * in_channels + 1
    norms = n * (a * c + sum(a * d + g * c for d in latent_dims) + in_channels)
    return weights + norms


def _normalize(x: Tensor, dim: int) -> Tensor:
    """``torch.nn.functional.normalize(x, dim=dim)``, twice differentiable at zero rows."""
    return x * inverse_norm(x.square().sum(dim=dim, keepdim=True), _EPS)


def _latent_step(z: Tensor) -> Tuple[Tensor, Tensor]:
    """Step 4 on (B, d, C'): softmax affinity of row-normalised latent features."""
    zn = _normalize(z, -1)
    adj = torch.softmax(zn @ zn.transpose(1, 2), dim=-1)
    return adj @ z, adj


class _Layout:
    """Maps flat (N, F) node tensors to dense (B, N_max, F) blocks and back.

    Either every graph has ``n`` nodes (``batch is None``: a free view), or the
    nodes are grouped by a sorted batch vector and padded with zeros; padded
    rows are zero in every block, so they add nothing to a product or a norm.
    """

    def __init__(self, num_nodes: int, batch: Optional[Tensor], num_graphs: int,
                 device: torch.device, max_nodes: Optional[int] = None,
                 dense: bool = True) -> None:
        self.num_nodes = num_nodes
        self.batch = batch
        self.num_graphs = num_graphs
        self.index: Optional[Tensor] = None
        if batch is None:
            self.max_nodes = num_nodes // max(num_graphs, 1)
        elif not dense:  # message passing needs the batch vector only
            self.max_nodes = -1
        else:
            counts = torch.zeros(num_graphs, dtype=torch.long, device=device).scatter_add_(
                0, batch, torch.ones_like(batch))
            ptr = torch.cumsum(counts, 0) - counts
            if max_nodes is None:
                self.max_nodes = int(counts.max()) if num_nodes > 0 else 0
            else:
                if not torch.compiler.is_compiling() and int(counts.max()) > max_nodes:
                    raise ValueError(f"'max_num_nodes' ({max_nodes}) is smaller than the "
                                     f"largest graph ({int(counts.max())} nodes)")
                self.max_nodes = max_nodes
            self.index = batch * self.max_nodes + (torch.arange(num_nodes, device=device)
                                                   - ptr.index_select(0, batch))

    def to_dense(self, x: Tensor) -> Tensor:
        assert self.max_nodes >= 0
        if self.index is None:
            return x.view(self.num_graphs, self.max_nodes, x.size(-1))
        out = x.new_zeros(self.num_graphs * self.max_nodes, x.size(-1))
        out = out.index_copy(0, self.index, x)
        return out.view(self.num_graphs, self.max_nodes, x.size(-1))

    def to_flat(self, x: Tensor) -> Tensor:
        flat = x.reshape(-1, x.size(-1))
        if self.index is None:
            return flat
        return flat.index_select(0, self.index)


class LatentKernel(nn.Module):
    r"""One LatentGNN kernel: affinities, the bipartite steps and the graph conv.

    Part of :class:`LatentGNN` (see there for the math); holds the parameters
    of :math:`\Psi_v, \Psi_l` (or :math:`\Psi`) and :math:`\mathbf{W}_g`, and
    the parameter-free message-passing layers :attr:`v2l` and :attr:`l2v`.
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
        self.v2l = VisibleToLatent()
        self.l2v = LatentToVisible()
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
        """Raw (unnormalised, after ReLU) Psi_v and Psi_l, each (N, d)."""
        if self.mode == 'asymmetric':
            assert xl is not None
            psi_v = F.relu(self.psi_v2l_norm(self.psi_v2l(xv)))
            psi_l = F.relu(self.psi_l2v_norm(self.psi_l2v(xl)))
            return psi_v, psi_l
        psi = F.relu(self.psi_norm(self.psi(xv)))
        return psi, psi

    def update(self, x: Tensor) -> Tensor:
        if self.graph_conv is None:
            return x
        return F.relu(self.graph_conv_norm(self.graph_conv(x)))


class LatentGNNBase(nn.Module):
    """Parameters, checks and the node-level computation shared by
    :class:`LatentGNN` and :class:`graphattn.LatentGNN2d` (identical state dicts)."""

    def __init__(
        self,
        in_channels: int,
        latent_dims: Union[int, Sequence[int]],
        channel_stride: int = 4,
        num_kernels: int = 1,
        mode: str = 'asymmetric',
        graph_conv: bool = False,
        residual: bool = True,
        norm: NormSpec = 'batch',
        sparse_top_m: Optional[int] = None,
        path: str = 'auto',
    ) -> None:
        super().__init__()
        for name, value in (('in_channels', in_channels), ('channel_stride', channel_stride),
                            ('num_kernels', num_kernels)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"'{name}' must be an int (got {type(value).__name__})")
            if value < 1:
                raise ValueError(f"'{name}' must be >= 1 (got {value})")
        if in_channels % channel_stride != 0:
            raise ValueError(f"'in_channels' ({in_channels}) must be divisible by "
                             f"'channel_stride' ({channel_stride})")
        if isinstance(latent_dims, int) and not isinstance(latent_dims, bool):
            latent_dims = [latent_dims] * num_kernels
        if not isinstance(latent_dims, (list, tuple)) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in latent_dims):
            raise TypeError("'latent_dims' must be a list of positive ints, one per kernel "
                            f"(got {latent_dims!r})")
        if len(latent_dims) != num_kernels:
            raise ValueError(f"'latent_dims' must have num_kernels={num_kernels} entries "
                             f"(got {len(latent_dims)}: {list(latent_dims)})")
        if mode not in MODES:
            raise ValueError(f"'mode' must be one of {MODES} (got {mode!r})")
        if isinstance(norm, str) and norm not in NORMS:
            raise ValueError(f"'norm' must be one of {NORMS} or a callable (got {norm!r})")
        if sparse_top_m is not None:
            if isinstance(sparse_top_m, bool) or not isinstance(sparse_top_m, int):
                raise TypeError("'sparse_top_m' must be an int or None "
                                f"(got {type(sparse_top_m).__name__})")
            if not 1 <= sparse_top_m <= min(latent_dims):
                raise ValueError(f"'sparse_top_m' must be in [1, min(latent_dims)="
                                 f"{min(latent_dims)}] (got {sparse_top_m})")
        self._check_path(path, sparse_top_m)

        self.in_channels = in_channels
        self.latent_dims = list(latent_dims)
        self.channel_stride = channel_stride
        self.num_kernels = num_kernels
        self.mode = mode
        self.graph_conv = graph_conv
        self.residual = residual
        self.norm = norm
        self.sparse_top_m = sparse_top_m
        self.path = path
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

    @staticmethod
    def _check_path(path: str, sparse_top_m: Optional[int]) -> None:
        if path not in PATHS:
            raise ValueError(f"'path' must be one of {PATHS} (got {path!r})")
        if path == 'fused' and sparse_top_m is not None:
            raise ValueError("path='fused' needs the complete bipartite graph "
                             "(sparse_top_m=None)")

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

    # ------------------------------------------------------------------ repr
    def __repr__(self) -> str:
        extra = ''
        if self.graph_conv:
            extra += ', graph_conv=True'
        if not self.residual:
            extra += ', residual=False'
        if self.norm != 'batch':
            norm = self.norm if isinstance(self.norm, str) else getattr(
                self.norm, '__name__', type(self.norm).__name__)
            extra += f', norm={norm!r}'
        if self.sparse_top_m is not None:
            extra += f', sparse_top_m={self.sparse_top_m}'
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'latent_dims={self.latent_dims}, channel_stride={self.channel_stride}, '
                f'num_kernels={self.num_kernels}, mode={self.mode!r}{extra})')

    # ------------------------------------------------------ official weights
    def load_official_state_dict(self, state_dict: Mapping[str, Tensor],
                                 strict: bool = True):
        r"""Load a state dict of the authors' ``LatentGNNV1`` module.

        Keys ``down_channel_v2l.0.weight`` (a ``(C', C, 1, 1)`` conv weight),
        ``down_channel_v2l.1.*`` (its norm), likewise ``down_channel_l2v``,
        ``down_channel``, ``up_channel``, ``LatentGNN_Kernel_{i}.psi_v2l`` /
        ``psi_l2v`` / ``psi`` / ``GraphConvWeight``, and ``gamma``, are renamed
        to this module's, conv weights flattened to linear weights.  A
        ``module.`` prefix (``DataParallel``) is stripped.  Returns what
        :meth:`torch.nn.Module.load_state_dict` returns.
        """
        return self.load_state_dict(self.convert_official_state_dict(state_dict),
                                    strict=strict)

    @staticmethod
    def convert_official_state_dict(state_dict: Mapping[str, Tensor]) -> Dict[str, Tensor]:
        """The authors' state dict with this module's key names and weight shapes."""
        prefixes = {
            'down_channel_v2l': 'down_v2l', 'down_channel_l2v': 'down_l2v',
            'down_channel': 'down', 'up_channel': 'up',
        }
        kernel_parts = {'psi_v2l': 'psi_v2l', 'psi_l2v': 'psi_l2v', 'psi': 'psi',
                        'GraphConvWeight': 'graph_conv'}
        out: Dict[str, Tensor] = {}
        for key, value in state_dict.items():
            if key.startswith('module.'):
                key = key[len('module.'):]
            parts = key.split('.')
            if parts == ['gamma']:
                out['gamma'] = value
                continue
            if parts[0].startswith('LatentGNN_Kernel_') and len(parts) == 4 \
                    and parts[1] in kernel_parts:
                base = f'kernels.{parts[0][len("LatentGNN_Kernel_"):]}.{kernel_parts[parts[1]]}'
                layer, name = parts[2], parts[3]
            elif parts[0] in prefixes and len(parts) == 3:
                base, layer, name = prefixes[parts[0]], parts[1], parts[2]
            else:
                raise KeyError(f'unexpected key in the official state dict: {key!r}')
            if layer == '0':
                if name != 'weight':
                    raise KeyError(f'unexpected key in the official state dict: {key!r}')
                out[f'{base}.weight'] = value.reshape(value.shape[0], -1)
            elif layer == '1':
                out[f'{base}_norm.{name}'] = value
            else:
                raise KeyError(f'unexpected key in the official state dict: {key!r}')
        return out

    # ---------------------------------------------------------- computation
    def _choose_path(self, path: Optional[str]) -> str:
        path = self.path if path is None else path
        self._check_path(path, self.sparse_top_m)
        if path == 'auto':
            return 'fused' if self.sparse_top_m is None else 'message_passing'
        return path

    def _propagate(self, x: Tensor, layout: _Layout, path: str,
                   return_assignments: bool) -> Tuple[Tensor, List[LatentAssignment]]:
        """Steps 1-6 on flat (N, C) nodes; returns Y (N, C) (before the residual)."""
        if self.mode == 'asymmetric':
            xv = _normalize(self.down_v2l_norm(self.down_v2l(x)), -1)
            xl: Optional[Tensor] = _normalize(self.down_l2v_norm(self.down_l2v(x)), -1)
        else:
            xv = _normalize(self.down_norm(self.down(x)), -1)
            xl = None
        xv_dense = layout.to_dense(xv) if path == 'fused' else xv
        outs: List[Tensor] = []
        assignments: List[LatentAssignment] = []
        for kernel in self.kernels:
            psi_v, psi_l = kernel.affinities(xv, xl)
            if path == 'fused':
                out, assignment = self._fused_kernel(kernel, xv_dense, psi_v, psi_l, layout,
                                                     return_assignments)
            else:
                out, assignment = self._message_passing_kernel(kernel, xv, psi_v, psi_l, layout)
            outs.append(kernel.update(out))
            if assignment is not None:
                assignments.append(assignment)
        y = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
        return self.up_norm(self.up(y)), assignments

    def _fused_kernel(self, kernel: LatentKernel, xv: Tensor, psi_v: Tensor, psi_l: Tensor,
                      layout: _Layout, return_assignments: bool
                      ) -> Tuple[Tensor, Optional[LatentAssignment]]:
        psi_l = _normalize(psi_l, -1)                       # over latent nodes
        pl = layout.to_dense(psi_l)                         # (B, n, d)
        if self.mode == 'asymmetric':
            pv = layout.to_dense(psi_v)                     # (B, n, d)
            inv_col_norm = inverse_norm(pv.square().sum(dim=1), _EPS)  # (B, d)
            z = (pv.transpose(1, 2) @ xv) * inv_col_norm.unsqueeze(-1)
        else:
            pv = pl
            z = pv.transpose(1, 2) @ xv                     # (B, d, C')
        z, adj = _latent_step(z)
        out = layout.to_flat(pl @ z)
        if not return_assignments:
            return out, None
        d = kernel.latent_dim
        edge_index, _ = latent_edge_index(layout.batch if layout.batch is not None
                                          else self._equal_batch(layout, x=psi_v),
                                          psi_v.size(0), d)
        if self.mode == 'asymmetric':
            scale = inv_col_norm.reshape(-1).index_select(0, edge_index[1])
            w_v = psi_v.reshape(-1) * scale
        else:
            w_v = psi_l.reshape(-1)
        return out, LatentAssignment(edge_index, w_v, edge_index, psi_l.reshape(-1), adj)

    @staticmethod
    def _equal_batch(layout: _Layout, x: Tensor) -> Tensor:
        return torch.arange(layout.num_graphs, device=x.device).repeat_interleave(
            layout.max_nodes)

    def _message_passing_kernel(self, kernel: LatentKernel, xv: Tensor, psi_v: Tensor,
                                psi_l: Tensor, layout: _Layout
                                ) -> Tuple[Tensor, LatentAssignment]:
        n = xv.size(0)
        d = kernel.latent_dim
        num_latent = layout.num_graphs * d
        batch = layout.batch if layout.batch is not None else self._equal_batch(layout, xv)
        m = self.sparse_top_m
        ei_v, w_v = latent_edge_index(batch, n, d, affinity=psi_v, top_m=m)
        assert w_v is not None
        if self.mode == 'asymmetric':
            w_v = l2_normalize_edge_weight(w_v, ei_v[1], num_latent, _EPS)
            ei_l, w_l = latent_edge_index(batch, n, d, affinity=psi_l, top_m=m)
            assert w_l is not None
            w_l = l2_normalize_edge_weight(w_l, ei_l[0], n, _EPS)
        else:
            w_v = l2_normalize_edge_weight(w_v, ei_v[0], n, _EPS)
            ei_l, w_l = ei_v, w_v
        z = kernel.v2l(xv, ei_v, w_v, num_latent)
        z, adj = _latent_step(z.view(layout.num_graphs, d, -1))
        out = kernel.l2v(z.reshape(num_latent, -1), ei_l, w_l, n)
        return out, LatentAssignment(ei_v, w_v, ei_l, w_l, adj)

    def _check_x(self, x: Tensor, name: str, shape: str) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"'{name}' must be a torch.Tensor of shape {shape} "
                            f"(got {type(x).__name__})")
        if not x.is_floating_point():
            raise TypeError(f"'{name}' must be a floating-point tensor (got {x.dtype})")
        check_dtype(name, x, self.up.weight.dtype)

    def _check_batch_norm_size(self, num_nodes: int, name: str) -> None:
        # BatchNorm1d's own message names a reduced width, not the input.
        if self.training and self.norm == 'batch' and num_nodes == 1:
            raise ValueError(f"'{name}' holds a single node: norm='batch' needs more than one "
                             "node per batch in training (as BatchNorm2d needs more than one "
                             "pixel); call .eval() or use norm='layer'")


class LatentGNN(LatentGNNBase):
    r"""The LatentGNN operator from the `"Latent Graph Neural Networks:
    Efficient Non-local Relations Learning" <https://arxiv.org/abs/1905.11634>`_
    paper (Zhang, Yan and He, ICML 2019), on the nodes of any batch of graphs.

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
    :func:`graphs.latent_graph` (layers :class:`~graphattn.latent_propagation.VisibleToLatent`
    and :class:`~graphattn.latent_propagation.LatentToVisible`, edge weights
    :math:`\Psi`).  When that graph is complete (the default) the same sums run
    as batched matrix products (``path='fused'``): no :math:`N d` edge tensor,
    the column norm of :math:`\Psi_v` folded into :math:`\mathbf{Z}`, graphs
    of different sizes zero-padded (padding never enters a norm or softmax).
    With ``sparse_top_m = m`` each visible node keeps only its :math:`m`
    largest raw affinities (ranked before normalisation) in each direction, and
    :math:`\Psi` is normalised over the kept edges: :math:`O(N m C')`.

    Norms :math:`\mathcal{N}` (``norm``): ``'batch'`` (default) is batch norm
    over all nodes of the batch (on feature maps: ``BatchNorm2d``'s statistics;
    it couples the graphs of a batch in training mode, as it does images, and
    needs more than one node there);
    ``'layer'`` normalises each node over its channels; ``'none'``;
    ``'frozen'`` is an affine map from buffers (identity at init, no
    parameters), as in the authors' detection runs.

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
            :math:`C' = C / s`. (default: :obj:`4`)
        num_kernels (int, optional): kernels :math:`K`. (default: :obj:`1`)
        mode (str, optional): ``'asymmetric'`` (two projections and two
            :math:`\Psi`) or ``'symmetric'``. (default: :obj:`'asymmetric'`)
        graph_conv (bool, optional): add the graph convolution of step 5.
            (default: :obj:`False`)
        residual (bool, optional): return :math:`\mathbf{X} + \gamma\mathbf{Y}`
            (else :math:`\mathbf{Y}`). (default: :obj:`True`)
        norm (str or callable, optional): ``'batch'``, ``'layer'``, ``'none'``,
            ``'frozen'``, or ``f(num_features)`` returning a module on
            ``(N, C)``. (default: :obj:`'batch'`)
        sparse_top_m (int, optional): keep the top-:math:`m` latent nodes of
            each visible node (message-passing path). (default: :obj:`None`)
        path (str, optional): ``'auto'`` (fused when the bipartite graph is
            complete), ``'fused'`` or ``'message_passing'``; ``forward`` can
            override it. (default: :obj:`'auto'`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, C)`, batch vector
          :math:`(|\mathcal{V}|)` (sorted) or :obj:`None` (one graph)
        - **output:** node features :math:`(|\mathcal{V}|, C)`, and with
          ``return_assignments=True`` a list of :math:`K`
          :class:`LatentAssignment` (edge indices :math:`(2, |\mathcal{V}| d)`
          or :math:`(2, |\mathcal{V}| m)`, weights, latent adjacency
          :math:`(B, d, d)`)
    """

    def forward(self, x: Tensor, batch: Optional[Tensor] = None, *,
                batch_size: Optional[int] = None, max_num_nodes: Optional[int] = None,
                path: Optional[str] = None,
                return_assignments: bool = False
                ) -> Union[Tensor, Tuple[Tensor, List[LatentAssignment]]]:
        r"""
        Args:
            x (Tensor): node features ``(N, in_channels)``.
            batch (LongTensor, optional): sorted graph index of each node
                (PyG batch vector); :obj:`None` for one graph.
            batch_size (int, optional): number of graphs (default:
                ``batch.max() + 1``); saves a device sync.
            max_num_nodes (int, optional): size of the largest graph (padding
                of the fused path; default: computed, a device sync).  With
                ``batch_size`` and ``max_num_nodes`` given, ``torch.compile``
                traces ``forward`` without graph breaks.
            path (str, optional): overrides the constructor's ``path``.
            return_assignments (bool, optional): also return each kernel's
                bipartite weights as a :class:`LatentAssignment`.
        """
        self._check_x(x, 'x', f'(N, {self.in_channels})')
        if x.dim() != 2 or x.size(-1) != self.in_channels:
            raise ValueError(f"'x' must have shape (N, {self.in_channels}), one row of "
                             f"in_channels={self.in_channels} features per node "
                             f"(got shape {tuple(x.shape)})")
        n = x.size(0)
        self._check_batch_norm_size(n, 'x')
        if batch is not None and not torch.compiler.is_compiling():
            batch = check_batch(batch, n)
        if not torch.compiler.is_compiling():
            if batch_size is not None:
                check_positive_int('batch_size', batch_size)
            if max_num_nodes is not None:
                check_positive_int('max_num_nodes', max_num_nodes)
        if batch is None:
            num_graphs = 1
        elif batch_size is not None:
            num_graphs = int(batch_size)
            if not torch.compiler.is_compiling() and n > 0 and int(batch[-1]) >= num_graphs:
                raise ValueError(f"'batch' holds graph index {int(batch[-1])} but "
                                 f"batch_size={num_graphs}")
        else:
            num_graphs = int(batch[-1]) + 1 if n > 0 else 1
        chosen = self._choose_path(path)
        if n == 0:
            out = x.clone() if self.residual else torch.zeros_like(x)
            return (out, []) if return_assignments else out
        layout = _Layout(n, batch, num_graphs, x.device, max_num_nodes,
                         dense=chosen == 'fused')
        y, assignments = self._propagate(x, layout, chosen, return_assignments)
        out = x + self.gamma * y if self.residual else y
        return (out, assignments) if return_assignments else out

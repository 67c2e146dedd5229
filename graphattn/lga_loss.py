"""The contrastive divergence loss of LGA, and the reduction of label maps to patch labels."""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module

from graphs import grid_stencil
from graphs.validation import (check_batch, check_positive_float, check_positive_int,
                               select_nodes)

from graphs.grid import grid_edges
from ._repr import non_default_options

__all__ = ['LGALoss', 'patch_labels', 'pair_divergence', 'DIVERGENCES']

# The 8 neighbours of a pixel (no self-loop): the pairs of the loss on maps.
_NEIGHBOUR_OFFSETS = tuple(map(tuple, grid_stencil(8, 1, self_loops=False).tolist()))

#: The divergences :class:`LGALoss` accepts.
DIVERGENCES = ('sym_kl', 'js')


def _check_labels(name: str, labels: Any) -> Tensor:
    if not isinstance(labels, Tensor):
        raise TypeError(f"'{name}' must be an integer Tensor (got {type(labels).__name__})")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"'{name}' must be an integer tensor (got {labels.dtype})")
    return labels.long()


def patch_labels(label_map: Tensor, grid_size: Union[int, Sequence[int]],
                 ignore_index: int = -100) -> Tensor:
    r"""Reduce a label map to one label per feature-map node: the patch's majority class.

    The ``(H, W)`` label map is cut into ``h x w`` patches of
    ``(H // h) x (W // w)`` pixels, one per node of the ``(h, w)`` feature
    grid (patch ``(r, c)`` covers rows ``r * H // h`` to ``(r + 1) * H // h - 1``,
    likewise for columns). Each node gets the most frequent label of its patch,
    pixels equal to ``ignore_index`` not counted; ties go to the smallest
    label; a patch with only ignored pixels gets ``ignore_index``.

    Rule for sizes: ``H`` must be a multiple of ``h`` and ``W`` of ``w``
    (e.g. a 512x512 label map on a stride-8 64x64 feature grid); otherwise a
    :class:`ValueError` is raised (resize or crop the label map first, with
    nearest-neighbour interpolation, to a multiple of the grid).

    Args:
        label_map (LongTensor): ``(B, H, W)`` or ``(H, W)`` class indices.
        grid_size (int or (int, int)): The feature grid ``(h, w)``.
        ignore_index (int, optional): Label of pixels to ignore.
            (default: :obj:`-100`)

    Returns:
        LongTensor ``(B, h, w)`` (or ``(h, w)`` for a 2-D ``label_map``).
    """
    label_map = _check_labels('label_map', label_map)
    if label_map.dim() not in (2, 3):
        raise ValueError("'label_map' must have shape (B, H, W) or (H, W) "
                         f"(got shape {tuple(label_map.shape)})")
    if isinstance(grid_size, int) and not isinstance(grid_size, bool):
        grid_size = (grid_size, grid_size)
    if (not isinstance(grid_size, (tuple, list)) or len(grid_size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                       for s in grid_size)):
        raise ValueError(f"'grid_size' must be a pair of positive ints (h, w) (got {grid_size!r})")
    squeeze = label_map.dim() == 2
    if squeeze:
        label_map = label_map.unsqueeze(0)
    b, height, width = label_map.shape
    h, w = grid_size
    if height % h or width % w:
        raise ValueError(f"'label_map' of size {height}x{width} does not divide into the "
                         f"feature grid 'grid_size'={h}x{w}: H and W must be multiples of h "
                         f"and w")
    if height == 0 or width == 0:
        raise ValueError(f"'label_map' must have H, W >= 1 (got shape {tuple(label_map.shape)})")
    valid = label_map != ignore_index
    # The value check reads the data: skipped under torch.compile (no graph break).
    if not torch.compiler.is_compiling() and bool(((label_map < 0) & valid).any()):
        raise ValueError(f"'label_map' holds negative labels other than "
                         f"ignore_index={ignore_index}")
    ph, pw = height // h, width // w
    if ph == 1 and pw == 1:
        out = label_map.clone()
        return out.squeeze(0) if squeeze else out
    patches = label_map.view(b, h, ph, w, pw).permute(0, 1, 3, 2, 4).reshape(b, h, w, ph * pw)
    valid = valid.view(b, h, ph, w, pw).permute(0, 1, 3, 2, 4).reshape(b, h, w, ph * pw)
    # Majority without a class count (no data-dependent shape): sort each patch,
    # ignored pixels last; a label's count is the length of its run of equal values.
    big = torch.iinfo(torch.long).max
    ranked = torch.where(valid, patches, big).sort(dim=-1).values.contiguous()
    counts = (torch.searchsorted(ranked, ranked, right=True)
              - torch.searchsorted(ranked, ranked, right=False))
    kept = torch.arange(ph * pw, device=label_map.device) < valid.sum(dim=-1, keepdim=True)
    counts = torch.where(kept, counts, 0)
    # The first maximum in ascending order: ties go to the smallest label.
    out = ranked.gather(-1, counts.argmax(dim=-1, keepdim=True)).squeeze(-1)
    out = torch.where(valid.any(dim=-1), out, torch.full_like(out, ignore_index))
    return out.squeeze(0) if squeeze else out


def pair_divergence(logp: Tensor, logq: Tensor, divergence: str = 'sym_kl') -> Tensor:
    r"""The divergence of two batches of distributions given as log-probabilities.

    ``'sym_kl'``: :math:`\mathrm{KL}(p\Vert q) + \mathrm{KL}(q\Vert p) =
    \sum_c (p_c - q_c)(\log p_c - \log q_c)` (unbounded). ``'js'``:
    :math:`\tfrac12 \mathrm{KL}(p\Vert m) + \tfrac12 \mathrm{KL}(q\Vert m)`
    with :math:`m = (p + q)/2` (at most :math:`\ln 2`). Reduces the last dim.
    """
    if divergence == 'sym_kl':
        return ((logp.exp() - logq.exp()) * (logp - logq)).sum(dim=-1)
    if divergence == 'js':
        logm = torch.logaddexp(logp, logq) - math.log(2.0)
        return 0.5 * ((logp.exp() * (logp - logm)).sum(dim=-1)
                      + (logq.exp() * (logq - logm)).sum(dim=-1))
    raise ValueError(f"'divergence' must be one of {DIVERGENCES} (got {divergence!r})")


class LGALoss(Module):
    r"""The contrastive divergence loss on LGA's latent features, from the
    `"Latent Graph Attention for Enhanced Spatial Context"
    <https://arxiv.org/abs/2307.04149>`_ paper (Singh et al.): it "penalises
    nodes of similar patches having different distributions, and nodes of
    non-similar patches having similar distributions".

    .. math::
        \mathcal{L} = \frac{1}{|\mathcal{P}|} \sum_{(i,j) \in \mathcal{P}}
        \begin{cases}
        D(p_i, p_j) & y_i = y_j \\
        \max\big(0,\ m - D(p_i, p_j)\big) & y_i \neq y_j
        \end{cases}, \qquad p_i = \operatorname{softmax}_c(F_{out,i} / \tau),

    over the pairs :math:`\mathcal{P}`: the graph's edges without self-loops
    (both directions) and, with ``num_random_pairs = R > 0``, ``R`` random
    pairs per graph (uniform, with replacement, any distance), keeping only
    pairs whose two labels differ from ``ignore_index``. :math:`y_i` is the
    majority ground-truth class of node :math:`i`'s patch (see
    :func:`patch_labels`) on feature maps, the node's label on point clouds.
    :math:`D` is the symmetric KL divergence or the Jensen-Shannon divergence
    (:func:`pair_divergence`). The paper gives the idea, not the formula: the
    pair set, :math:`D`, the hinge with margin :math:`m` and the averaging
    are our reading.

    Args:
        margin (float, optional): The margin :math:`m` for pairs of different
            labels. For ``'js'`` it must be below :math:`\ln 2`. (default:
            :obj:`1.0` for ``'sym_kl'``, :obj:`0.5` for ``'js'``)
        divergence (str, optional): ``'sym_kl'`` or ``'js'``.
            (default: :obj:`'sym_kl'`)
        num_random_pairs (int, optional): Random long-range pairs per graph
            (drawn with the global torch RNG). (default: :obj:`0`)
        ignore_index (int, optional): Label to ignore. (default: :obj:`-100`)
        reduction (str, optional): ``'mean'`` over the kept pairs (zero when
            there are none) or ``'sum'``. (default: :obj:`'mean'`)
        temperature (float, optional): :math:`\tau`, dividing :math:`F_{out}`
            before the softmax. A post-ReLU :math:`F_{out}` with small values
            gives nearly uniform :math:`p_i`, where every divergence and its
            gradient vanish (measured in the README's LGALoss sweep); a
            :math:`\tau < 1` sharpens the distributions. The paper does not
            give one; :obj:`1.0` is the plain softmax. (default: :obj:`1.0`)

    Shapes:
        - **feature maps:** ``latent`` :math:`(B, C_l, h, w)`, ``target``
          :math:`(B, H, W)` with :math:`h \mid H`, :math:`w \mid W`
        - **nodes:** ``latent`` :math:`(N, C_l)`, ``target`` :math:`(N,)`,
          ``edge_index`` :math:`(2, |\mathcal{E}|)`, ``batch`` :math:`(N,)`
        - **output:** a scalar
    """

    def __init__(self, margin: Optional[float] = None, divergence: str = 'sym_kl',
                 num_random_pairs: int = 0, ignore_index: int = -100,
                 reduction: str = 'mean', temperature: float = 1.0) -> None:
        super().__init__()
        if divergence not in DIVERGENCES:
            raise ValueError(f"'divergence' must be one of {DIVERGENCES} (got {divergence!r})")
        if margin is None:
            margin = 1.0 if divergence == 'sym_kl' else 0.5
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin >= 0:
            raise ValueError(f"'margin' must be a number >= 0 (got {margin!r})")
        if divergence == 'js' and margin >= math.log(2.0):
            raise ValueError(f"'margin' must be below ln 2 = {math.log(2.0):.4f} with "
                             f"divergence='js' (JS never exceeds it; got {margin})")
        if isinstance(num_random_pairs, bool) or not isinstance(num_random_pairs, int) or (
                num_random_pairs < 0):
            raise ValueError(f"'num_random_pairs' must be an int >= 0 (got {num_random_pairs!r})")
        if reduction not in ('mean', 'sum'):
            raise ValueError(f"'reduction' must be 'mean' or 'sum' (got {reduction!r})")
        self.margin = float(margin)
        self.divergence = divergence
        self.num_random_pairs = num_random_pairs
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.temperature = check_positive_float('temperature', temperature)

    def pair_costs(self, logp_i: Tensor, logp_j: Tensor, y_i: Tensor, y_j: Tensor
                   ) -> Tuple[Tensor, Tensor]:
        """Per-pair costs and a 0/1 weight of the pairs kept (labels not ignored)."""
        d = pair_divergence(logp_i, logp_j, self.divergence)
        same = y_i == y_j
        cost = torch.where(same, d, torch.clamp(self.margin - d, min=0.0))
        keep = (y_i != self.ignore_index) & (y_j != self.ignore_index)
        return cost, keep.to(cost.dtype)

    def _reduce(self, cost: Tensor, keep: Tensor) -> Tensor:
        total = (cost * keep).sum()
        if self.reduction == 'sum':
            return total
        return total / keep.sum().clamp(min=1.0)

    def forward(self, latent: Tensor, target: Tensor, edge_index: Optional[Tensor] = None,
                batch: Optional[Tensor] = None, *, batch_size: Optional[int] = None) -> Tensor:
        r"""The loss.

        Args:
            latent (Tensor): :math:`F_{out}`: ``(B, C_l, h, w)`` on feature
                maps or ``(N, C_l)`` on nodes (e.g. ``return_latent=True`` of
                :class:`~graphattn.LGA2d` / :class:`~graphattn.LGA`).
            target (LongTensor): ``(B, H, W)`` label map (reduced with
                :func:`patch_labels`) with a 4-D ``latent``, else ``(N,)``.
            edge_index (Tensor, optional): Node pairs ``(2, E)`` for 2-D
                ``latent`` (default for maps: the 8-neighbour grid edges).
            batch (Tensor, optional): Graph of each node (sorted), for random
                pairs.
            batch_size (int, optional): Number of graphs in ``batch``
                (default: ``batch[-1] + 1``, a device sync); with it,
                ``torch.compile`` traces random pairs on nodes without graph
                breaks.

        Node indices in ``edge_index`` outside ``[0, N)`` raise an
        :class:`IndexError` naming ``edge_index`` (on CPU).
        """
        if not isinstance(latent, Tensor) or not latent.is_floating_point():
            raise TypeError("'latent' must be a floating-point Tensor")
        if latent.dim() == 4:
            return self._forward_map(latent, target)
        if latent.dim() == 2:
            return self._forward_nodes(latent, target, edge_index, batch, batch_size)
        raise ValueError("'latent' must have shape (B, C, h, w) or (N, C) "
                         f"(got shape {tuple(latent.shape)})")

    def _forward_map(self, latent: Tensor, target: Tensor) -> Tensor:
        b, _, h, w = latent.shape
        target = _check_labels('target', target)
        if target.dim() != 3 or target.size(0) != b:
            raise ValueError(f"'target' must have shape ({b}, H, W) for a latent map of shape "
                             f"{tuple(latent.shape)} (got shape {tuple(target.shape)})")
        y = patch_labels(target, (h, w), self.ignore_index).view(b, h * w)
        logp = F.log_softmax(latent.flatten(2).transpose(1, 2) / self.temperature,
                             dim=-1)  # (B, h*w, C)
        costs, keeps = [], []
        edge_index, _ = grid_edges(h, w, _NEIGHBOUR_OFFSETS, latent.device)
        if edge_index.size(1) > 0:
            src, dst = edge_index[0], edge_index[1]
            c, k = self.pair_costs(logp[:, src], logp[:, dst], y[:, src], y[:, dst])
            costs.append(c.reshape(-1))
            keeps.append(k.reshape(-1))
        if self.num_random_pairs > 0:
            n = h * w
            idx = torch.randint(0, n, (2, b, self.num_random_pairs), device=latent.device)
            ar = torch.arange(b, device=latent.device).view(-1, 1)
            c, k = self.pair_costs(logp[ar, idx[0]], logp[ar, idx[1]],
                                   y[ar, idx[0]], y[ar, idx[1]])
            k = k * (idx[0] != idx[1]).to(k.dtype)
            costs.append(c.reshape(-1))
            keeps.append(k.reshape(-1))
        if not costs:
            return latent.sum() * 0.0
        return self._reduce(torch.cat(costs), torch.cat(keeps))

    def _forward_nodes(self, latent: Tensor, target: Tensor, edge_index: Optional[Tensor],
                       batch: Optional[Tensor], batch_size: Optional[int]) -> Tensor:
        n = latent.size(0)
        target = _check_labels('target', target)
        if target.shape != (n,):
            raise ValueError(f"'target' must have shape ({n},), one label per node "
                             f"(got shape {tuple(target.shape)})")
        if edge_index is None and self.num_random_pairs == 0:
            raise ValueError("'edge_index' of shape (2, E) is required for node features "
                             "(or set 'num_random_pairs' > 0)")
        logp = F.log_softmax(latent / self.temperature, dim=-1)
        costs, keeps = [], []
        if edge_index is not None:
            if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or (
                    edge_index.size(0) != 2):
                raise ValueError("'edge_index' must have shape (2, E) (got "
                                 f"{getattr(edge_index, 'shape', type(edge_index).__name__)})")
            src, dst = edge_index[0], edge_index[1]
            c, k = self.pair_costs(select_nodes('edge_index', logp, src),
                                   select_nodes('edge_index', logp, dst),
                                   target.index_select(0, src), target.index_select(0, dst))
            costs.append(c)
            keeps.append(k * (src != dst).to(k.dtype))
        if self.num_random_pairs > 0 and n > 0:
            if batch is None:
                counts = torch.full((1,), n, dtype=torch.long, device=latent.device)
            else:
                if not torch.compiler.is_compiling():
                    # Pairs are drawn per graph from contiguous node ranges: sorted batch.
                    batch = check_batch(batch, n)
                    if batch_size is not None:
                        check_positive_int('batch_size', batch_size)
                        if int(batch[-1]) >= batch_size:
                            raise ValueError(f"'batch' holds graph index {int(batch[-1])} "
                                             f"but batch_size={batch_size}")
                num = int(batch[-1]) + 1 if batch_size is None else batch_size
                counts = torch.zeros(num, dtype=torch.long, device=latent.device).scatter_add_(
                    0, batch, torch.ones_like(batch))
            ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)[:-1]])
            num_graphs, r = counts.numel(), self.num_random_pairs
            u = torch.rand(2, num_graphs, r, device=latent.device)
            idx = ptr.view(1, -1, 1) + (u * counts.view(1, -1, 1)).long().clamp(
                max=(counts.view(1, -1, 1) - 1).clamp(min=0))
            nonempty = (counts > 0).view(-1, 1).expand(num_graphs, r).reshape(-1)
            i, j = idx[0].reshape(-1), idx[1].reshape(-1)
            i, j = i.clamp(max=max(n - 1, 0)), j.clamp(max=max(n - 1, 0))
            c, k = self.pair_costs(logp[i], logp[j], target[i], target[j])
            costs.append(c)
            keeps.append(k * ((i != j) & nonempty).to(k.dtype))
        if not costs:
            return latent.sum() * 0.0
        return self._reduce(torch.cat(costs), torch.cat(keeps))

    def __repr__(self) -> str:
        extra = non_default_options(ignore_index=(self.ignore_index, -100),
                                    reduction=(self.reduction, 'mean'),
                                    temperature=(self.temperature, 1.0))
        return (f'{self.__class__.__name__}(margin={self.margin}, '
                f"divergence='{self.divergence}', num_random_pairs={self.num_random_pairs}"
                f'{extra})')

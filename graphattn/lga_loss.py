"""LGA's loss on edges: same-label neighbours alike, different-label ones apart.

Three forms of one idea (see :class:`LGALoss`): a hinge on the divergence of
softmax distributions (the original reading), a hinge on a Euclidean distance
(first-order gradient where nodes start alike), and a loss on the attention
weights themselves.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module

from graphs import grid_stencil
from graphs.grid import grid_edges
from graphs.validation import check_batch, check_positive_float, select_nodes

from ._checks import check_batch_size, check_choice, check_flag, check_same_device
from ._repr import non_default_options
from .label_attention import edge_same_label_nll, grid_same_label_nll
from .node_labels import check_labels, patch_labels

__all__ = ['LGALoss', 'pair_divergence', 'pair_distance', 'DIVERGENCES', 'FORMS']

# The 8 neighbours of a pixel (no self-loop): the pairs of the loss on maps.
_NEIGHBOUR_OFFSETS = tuple(map(tuple, grid_stencil(8, 1, self_loops=False).tolist()))
# The stencil of LGA2d's default attention maps (entry t: offset t), self-loop included.
_ATTENTION_OFFSETS = tuple(map(tuple, grid_stencil(8, 1, self_loops=True).tolist()))

#: The divergences of ``form='divergence'``.
DIVERGENCES = ('sym_kl', 'js')

#: The forms :class:`LGALoss` accepts.
FORMS = ('divergence', 'contrastive', 'attention')


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


def pair_distance(a: Tensor, b: Tensor, eps: float = 1e-6) -> Tensor:
    r"""The smoothed Euclidean distance :math:`\sqrt{\lVert a - b \rVert^2 +
    \epsilon^2} - \epsilon` over the last dim.

    Not squared: its gradient has norm :math:`\lVert a - b\rVert /
    \sqrt{\lVert a - b\rVert^2 + \epsilon^2} \approx 1` as soon as
    :math:`\lVert a - b \rVert \gg \epsilon`, however close the two points
    (the squared distance's gradient, :math:`2 \lVert a - b \rVert`, vanishes
    with it). The :math:`\epsilon` keeps the value and gradient finite (0) at
    :math:`a = b`, where :math:`\lVert a - b \rVert` has no derivative.
    """
    return torch.sqrt((a - b).pow(2).sum(dim=-1) + eps * eps) - eps


class LGALoss(Module):
    r"""The LGA-specific loss on the graph's edges, from the
    `"Latent Graph Attention for Enhanced Spatial Context"
    <https://arxiv.org/abs/2307.04149>`_ paper (Singh et al.): a "contrastive
    loss term that amplifies the discrimination between the foreground and
    background and, accordingly, helps to learn the suitable weights for each
    edge of the graph". The paper's available text gives this purpose (and an
    ablation titled "Effects of Divergence Loss"), not a formula: every form
    below is our reading, chosen with ``form``.

    **Pairs and labels.** :math:`y_i` is the majority ground-truth class of
    node :math:`i`'s patch on feature maps (:func:`patch_labels`), the node's
    label on graphs; nodes labelled ``ignore_index`` take no part. The pair
    forms use the pairs :math:`\mathcal{P}`: the graph's edges without
    self-loops (both directions; on maps the 8-neighbour grid) and, with
    ``num_random_pairs = R > 0``, ``R`` random pairs per graph (uniform, with
    replacement, any distance), keeping pairs of two labelled nodes.

    ``form='divergence'`` (the default, the original reading): a hinge on a
    divergence :math:`D` (:func:`pair_divergence`, symmetric KL or
    Jensen-Shannon) of per-node channel distributions,

    .. math::
        \mathcal{L} = \frac{1}{|\mathcal{P}|} \sum_{(i,j) \in \mathcal{P}}
        \begin{cases}
        D(p_i, p_j) & y_i = y_j \\
        \max\big(0,\ m - D(p_i, p_j)\big) & y_i \neq y_j
        \end{cases}, \qquad p_i = \operatorname{softmax}_c(F_{out,i} / \tau).

    Caveat, measured: :math:`D` is second order in the difference of
    :math:`p_i` and :math:`p_j`, so its gradient (pull and push) vanishes
    where nodes start alike - at initialisation. On a collage batch at
    initialisation its gradient on the LGA parameters is about ``1e-5`` of the
    cross-entropy's (``tests/test_lga_loss.py``).

    ``form='contrastive'``: the same hinge on the smoothed Euclidean distance
    :math:`d` (:func:`pair_distance`) of the latent features, not squared,

    .. math::
        \mathcal{L} = \frac{1}{|\mathcal{P}|} \sum_{(i,j) \in \mathcal{P}}
        \begin{cases}
        d_{ij} & y_i = y_j \\
        \max\big(0,\ m - d_{ij}\big) & y_i \neq y_j
        \end{cases}, \qquad
        d_{ij} = \sqrt{\lVert z_i - z_j \rVert^2 + \epsilon^2} - \epsilon,

    with :math:`z_i = F_{out,i}`, or :math:`z_i = F_{out,i} /
    \sqrt{\lVert F_{out,i}\rVert^2 + \epsilon^2}` with ``l2_normalize=True``.
    This is the contrastive loss of Hadsell et al. (CVPR 2006) without its
    squares: :math:`\lVert\partial d_{ij} / \partial z_i\rVert \approx 1` for
    any :math:`\lVert z_i - z_j\rVert \gg \epsilon`, so both terms pull and
    push at full strength however alike nodes start. That strength is a risk on
    a residual stack's latent (the 0.3 default), which carries the encoder's own
    features: on the collage ablation, weight 0.1 cost 7.3 mIoU on average
    (46.7 against 53.9 without the loss, 3 seeds; ``docs/lga.md``). Choose its
    weight on a validation split.

    ``form='attention'``: supervises the attention weights :math:`\alpha`
    themselves (what the LGA modules return with
    ``return_attention_weights=True``): each labelled node should put its
    attention on neighbours of its own label,

    .. math::
        \mathcal{L} = \frac{1}{|\mathcal{K}|}
        \sum_{(l, k, i) \in \mathcal{K}} -\log
        \frac{\sum_{j \in \mathcal{N}(i) \setminus \{i\},\ y_j = y_i}
              \alpha^{(l,k)}_{ij}}
             {\sum_{j \in \mathcal{N}(i) \setminus \{i\},\ y_j \neq \text{ignore}}
              \alpha^{(l,k)}_{ij}},

    over layers :math:`l`, heads :math:`k` and the labelled nodes :math:`i`
    with at least one labelled neighbour of their label, the neighbourhood
    :math:`\mathcal{N}(i)` *without* :math:`i` itself: a node always has its
    own label, so counting the self-loop lets all attention collapse onto the
    node (loss 0, no context; measured within 60 training steps on the
    collages). With softmax weights the loss is the cross-entropy of "the
    neighbour I attend to has my label" under the attention distribution
    over the other labelled neighbours; its gradient on the attention logit
    :math:`s_{ij}` is :math:`\alpha_{ij}\,([y_j \neq \text{ignore}] / V_i -
    [y_j = y_i] / S_i)` (:math:`S_i, V_i` the numerator and denominator):
    first order, pushing different-label neighbours down and same-label ones
    up, zero for the self-loop and where every labelled neighbour shares the
    label (nothing to learn there). Ignored and out-of-image neighbours are
    left out of both sums. With sigmoid weights (``normalize='sigmoid'``), which need not sum
    to 1, the loss is the share of the attention mass on same-label
    neighbours: it is invariant to scaling all of a node's weights, so it
    shapes the weights' ratios, not their size. Masses are clamped at the
    dtype's smallest normal number (an underflowed weight gives a large
    finite loss, not ``inf``).

    Every form masks with :func:`torch.where`, so a NaN at an ignored node
    reaches neither the loss nor its gradient.

    Args:
        margin (float, optional): The margin :math:`m` of the pair forms. For
            ``'js'`` it must be below :math:`\ln 2`. (default: :obj:`1.0`
            for ``'sym_kl'``, :obj:`0.5` for ``'js'``, :obj:`1.0` for
            ``'contrastive'``, in units of :math:`z`)
        divergence (str, optional): :math:`D` of ``form='divergence'``:
            ``'sym_kl'`` or ``'js'``. (default: :obj:`'sym_kl'`)
        num_random_pairs (int, optional): Random long-range pairs per graph
            (drawn with the global torch RNG), pair forms only.
            (default: :obj:`0`)
        ignore_index (int, optional): Label to ignore. (default: :obj:`-100`)
        reduction (str, optional): ``'mean'`` over the kept pairs (attention:
            the kept layer-head-node triples; zero when there are none) or
            ``'sum'``. (default: :obj:`'mean'`)
        temperature (float, optional): :math:`\tau` of ``form='divergence'``,
            dividing :math:`F_{out}` before the softmax. (default: :obj:`1.0`)
        form (str, optional): ``'divergence'``, ``'contrastive'`` or
            ``'attention'``. (default: :obj:`'divergence'`)
        l2_normalize (bool, optional): ``form='contrastive'`` on unit-norm
            features, so that :math:`d \le 2` and the margin does not depend
            on the scale of :math:`F_{out}` (the gradient grows as
            :math:`1 / \lVert F_{out,i} \rVert` for small features).
            (default: :obj:`False`)
        eps (float, optional): :math:`\epsilon` of ``form='contrastive'``:
            below this distance the gradient shrinks linearly to 0; keep it
            well under the typical neighbour distance. (default: :obj:`1e-6`)

    Options of one form given to another raise a :class:`ValueError`.

    Shapes:
        - **pair forms, feature maps:** ``input`` :math:`F_{out}`
          :math:`(B, C_l, h, w)`, ``target`` :math:`(B, H, W)` with
          :math:`h \mid H`, :math:`w \mid W`
        - **pair forms, nodes:** ``input`` :math:`(N, C_l)`, ``target``
          :math:`(N,)`, ``edge_index`` :math:`(2, |\mathcal{E}|)`, ``batch``
          :math:`(N,)`
        - **attention form, feature maps:** ``input`` a list of
          :math:`(B, S, h, w)` or :math:`(B, \text{heads}, S, h, w)` maps
          (or one such tensor), entry :math:`t` the weight of the neighbour at
          offset ``offsets[t]``; ``target`` :math:`(B, H, W)`
        - **attention form, graphs:** ``input`` a list of ``(edge_index,
          alpha)``, ``edge_index`` :math:`(2, E)` of edges :math:`j \to i`
          (row 0 the neighbour), ``alpha`` :math:`(E,)` or
          :math:`(E, \text{heads})`; ``target`` :math:`(N,)`
        - **output:** a scalar
    """

    def __init__(self, margin: Optional[float] = None, divergence: str = 'sym_kl',
                 num_random_pairs: int = 0, ignore_index: int = -100,
                 reduction: str = 'mean', temperature: float = 1.0, *,
                 form: str = 'divergence', l2_normalize: bool = False,
                 eps: float = 1e-6) -> None:
        super().__init__()
        check_choice('form', form, FORMS)
        check_choice('divergence', divergence, DIVERGENCES)
        check_choice('reduction', reduction, ('mean', 'sum'))
        check_flag('l2_normalize', l2_normalize)
        self.temperature = check_positive_float('temperature', temperature)
        self.eps = check_positive_float('eps', eps)
        if isinstance(num_random_pairs, bool) or not isinstance(num_random_pairs, int) or (
                num_random_pairs < 0):
            raise ValueError(f"'num_random_pairs' must be an int >= 0 (got {num_random_pairs!r})")
        self._check_form_options(form, margin, divergence, num_random_pairs, temperature,
                                 l2_normalize, eps)
        if margin is None:
            margin = 0.5 if (form, divergence) == ('divergence', 'js') else 1.0
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin >= 0:
            raise ValueError(f"'margin' must be a number >= 0 (got {margin!r})")
        if form == 'divergence' and divergence == 'js' and margin >= math.log(2.0):
            raise ValueError(f"'margin' must be below ln 2 = {math.log(2.0):.4f} with "
                             f"divergence='js' (JS never exceeds it; got {margin})")
        self.form = form
        self.margin = float(margin)
        self.divergence = divergence
        self.num_random_pairs = num_random_pairs
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.l2_normalize = l2_normalize

    @staticmethod
    def _check_form_options(form: str, margin: Optional[float], divergence: str,
                            num_random_pairs: int, temperature: float, l2_normalize: bool,
                            eps: float) -> None:
        given = {'divergence': divergence != 'sym_kl', 'temperature': temperature != 1.0,
                 'margin': margin is not None, 'num_random_pairs': num_random_pairs != 0,
                 'l2_normalize': l2_normalize, 'eps': eps != 1e-6}
        used = _FORM_OPTIONS[form]
        for name, set_ in given.items():
            if set_ and name not in used:
                owners = ' or '.join(f'form={f!r}' for f in FORMS if name in _FORM_OPTIONS[f])
                raise ValueError(f"'{name}' does not apply to form={form!r} (an option of "
                                 f"{owners})")

    # ---------------------------------------------------------------- pair forms

    def embed(self, z: Tensor) -> Tensor:
        """What the pair form compares, per node (channels last): the log-softmax
        of ``z / tau`` (divergence) or ``z``, optionally unit-norm (contrastive)."""
        if self.form == 'divergence':
            return F.log_softmax(z / self.temperature, dim=-1)
        if self.l2_normalize:
            return z * torch.rsqrt(z.pow(2).sum(dim=-1, keepdim=True) + self.eps * self.eps)
        return z

    def pair_costs(self, e_i: Tensor, e_j: Tensor, y_i: Tensor, y_j: Tensor
                   ) -> Tuple[Tensor, Tensor]:
        """Per-pair costs of embedded nodes (:meth:`embed`) and the mask of the pairs
        kept (both labels not ignored)."""
        if self.form == 'divergence':
            d = pair_divergence(e_i, e_j, self.divergence)
        else:
            d = pair_distance(e_i, e_j, self.eps)
        same = y_i == y_j
        cost = torch.where(same, d, torch.clamp(self.margin - d, min=0.0))
        keep = (y_i != self.ignore_index) & (y_j != self.ignore_index)
        return cost, keep

    def _reduce(self, cost: Tensor, keep: Tensor) -> Tensor:
        total = torch.where(keep, cost, 0.0).sum()
        if self.reduction == 'sum':
            return total
        return total / keep.sum().clamp(min=1).to(cost.dtype)

    def _embed_labelled(self, z: Tensor, y: Tensor) -> Tensor:
        # Ignored nodes are zeroed before any arithmetic: a NaN there must not leak
        # into the loss or (through 0 * NaN in the backward pass) into the gradient.
        z = torch.where((y != self.ignore_index).unsqueeze(-1), z, 0.0)
        return self.embed(z)

    # ----------------------------------------------------------------- forward

    def forward(self, input: Any, target: Tensor, edge_index: Optional[Tensor] = None,
                batch: Optional[Tensor] = None, *, batch_size: Optional[int] = None,
                offsets: Optional[Sequence[Tuple[int, int]]] = None) -> Tensor:
        r"""The loss.

        Args:
            input (Tensor or list): Pair forms: :math:`F_{out}`,
                ``(B, C_l, h, w)`` on feature maps or ``(N, C_l)`` on nodes
                (``return_latent=True`` of :class:`~graphattn.LGA2d` /
                :class:`~graphattn.LGA`). ``form='attention'``: the list the
                same modules return with ``return_attention_weights=True``
                (maps, or ``(edge_index, alpha)`` pairs; see Shapes).
            target (LongTensor): ``(B, H, W)`` label map (reduced with
                :func:`patch_labels`) on feature maps, else ``(N,)``.
            edge_index (Tensor, optional): Node pairs ``(2, E)`` for a 2-D
                ``input`` of the pair forms (default for maps: the
                8-neighbour grid edges).
            batch (Tensor, optional): Graph of each node (sorted), for random
                pairs.
            batch_size (int, optional): Number of graphs in ``batch``
                (default: ``batch[-1] + 1``, a device sync); with it,
                ``torch.compile`` traces random pairs on nodes without graph
                breaks.
            offsets (sequence of (int, int), optional): ``form='attention'``
                on maps: the offset ``(dx, dy)`` of each map entry, e.g.
                ``block.offsets`` of an :class:`~graphattn.LGA2d`.
                (default: the 3x3 stencil with self-loop,
                ``graphs.grid_stencil(8, 1, True)``)

        Node indices in ``edge_index`` outside ``[0, N)`` raise an
        :class:`IndexError` naming ``edge_index`` (on CPU).
        """
        if self.form == 'attention':
            if edge_index is not None or batch is not None:
                raise ValueError("form='attention' reads the edges from 'input' (the list "
                                 "of (edge_index, alpha)); do not pass 'edge_index' or "
                                 "'batch'")
            return self._forward_attention(input, target, offsets)
        if offsets is not None:
            raise ValueError(f"'offsets' applies to form='attention' only (form={self.form!r})")
        if not isinstance(input, Tensor) or not input.is_floating_point():
            raise TypeError("'input' must be a floating-point Tensor, the latent features "
                            "F_out (B, C, h, w) or (N, C)")
        check_same_device('input', input, target=target, edge_index=edge_index, batch=batch)
        if input.dim() == 4:
            return self._forward_map(input, target)
        if input.dim() == 2:
            return self._forward_nodes(input, target, edge_index, batch, batch_size)
        raise ValueError("'input' must have shape (B, C, h, w) or (N, C) "
                         f"(got shape {tuple(input.shape)})")

    def _map_target(self, target: Any, b: int, what: str) -> Tensor:
        target = check_labels('target', target)
        if target.dim() != 3 or target.size(0) != b:
            raise ValueError(f"'target' must have shape ({b}, H, W) for {what} "
                             f"(got shape {tuple(target.shape)})")
        return target

    def _forward_map(self, latent: Tensor, target: Tensor) -> Tensor:
        b, _, h, w = latent.shape
        target = self._map_target(target, b, f'a latent map of shape {tuple(latent.shape)}')
        y = patch_labels(target, (h, w), self.ignore_index).view(b, h * w)
        e = self._embed_labelled(latent.flatten(2).transpose(1, 2), y)  # (B, h*w, C)
        costs: List[Tensor] = []
        keeps: List[Tensor] = []
        edge_index, _ = grid_edges(h, w, _NEIGHBOUR_OFFSETS, latent.device)
        if edge_index.size(1) > 0:
            src, dst = edge_index[0], edge_index[1]
            c, k = self.pair_costs(e[:, src], e[:, dst], y[:, src], y[:, dst])
            costs.append(c.reshape(-1))
            keeps.append(k.reshape(-1))
        if self.num_random_pairs > 0:
            n = h * w
            idx = torch.randint(0, n, (2, b, self.num_random_pairs), device=latent.device)
            ar = torch.arange(b, device=latent.device).view(-1, 1)
            c, k = self.pair_costs(e[ar, idx[0]], e[ar, idx[1]], y[ar, idx[0]], y[ar, idx[1]])
            costs.append(c.reshape(-1))
            keeps.append((k & (idx[0] != idx[1])).reshape(-1))
        if not costs:
            return latent.sum() * 0.0
        return self._reduce(torch.cat(costs), torch.cat(keeps))

    def _node_target(self, target: Any, n: int) -> Tensor:
        target = check_labels('target', target)
        if target.shape != (n,):
            raise ValueError(f"'target' must have shape ({n},), one label per node "
                             f"(got shape {tuple(target.shape)})")
        return target

    def _forward_nodes(self, latent: Tensor, target: Tensor, edge_index: Optional[Tensor],
                       batch: Optional[Tensor], batch_size: Optional[int]) -> Tensor:
        n = latent.size(0)
        target = self._node_target(target, n)
        if edge_index is None and self.num_random_pairs == 0:
            raise ValueError("'edge_index' of shape (2, E) is required for node features "
                             "(or set 'num_random_pairs' > 0)")
        e = self._embed_labelled(latent, target)
        costs: List[Tensor] = []
        keeps: List[Tensor] = []
        if edge_index is not None:
            if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or (
                    edge_index.size(0) != 2):
                raise ValueError("'edge_index' must have shape (2, E) (got "
                                 f"{getattr(edge_index, 'shape', type(edge_index).__name__)})")
            src, dst = edge_index[0], edge_index[1]
            c, k = self.pair_costs(select_nodes('edge_index', e, src),
                                   select_nodes('edge_index', e, dst),
                                   target.index_select(0, src), target.index_select(0, dst))
            costs.append(c)
            keeps.append(k & (src != dst))
        if self.num_random_pairs > 0 and n > 0:
            c, k = self._random_pair_costs(e, target, batch, batch_size)
            costs.append(c)
            keeps.append(k)
        if not costs:
            return latent.sum() * 0.0
        return self._reduce(torch.cat(costs), torch.cat(keeps))

    def _random_pair_costs(self, e: Tensor, target: Tensor, batch: Optional[Tensor],
                           batch_size: Optional[int]) -> Tuple[Tensor, Tensor]:
        n = e.size(0)
        if batch is None:
            counts = torch.full((1,), n, dtype=torch.long, device=e.device)
        else:
            if not torch.compiler.is_compiling():
                # Pairs are drawn per graph from contiguous node ranges: sorted batch.
                batch = check_batch(batch, n)
            num = check_batch_size(batch, batch_size)
            counts = torch.zeros(num, dtype=torch.long, device=e.device).scatter_add_(
                0, batch, torch.ones_like(batch))
        ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)[:-1]])
        num_graphs, r = counts.numel(), self.num_random_pairs
        u = torch.rand(2, num_graphs, r, device=e.device)
        idx = ptr.view(1, -1, 1) + (u * counts.view(1, -1, 1)).long().clamp(
            max=(counts.view(1, -1, 1) - 1).clamp(min=0))
        nonempty = (counts > 0).view(-1, 1).expand(num_graphs, r).reshape(-1)
        i, j = idx[0].reshape(-1), idx[1].reshape(-1)
        i, j = i.clamp(max=max(n - 1, 0)), j.clamp(max=max(n - 1, 0))
        c, k = self.pair_costs(e[i], e[j], target[i], target[j])
        return c, k & (i != j) & nonempty

    # ----------------------------------------------------------- attention form

    def _forward_attention(self, attention: Any, target: Any,
                           offsets: Optional[Sequence[Tuple[int, int]]]) -> Tensor:
        layers = [attention] if isinstance(attention, Tensor) else attention
        if not isinstance(layers, (list, tuple)) or len(layers) == 0:
            raise TypeError("form='attention' needs 'input' to be the attention weights of "
                            "return_attention_weights=True: a non-empty list of maps "
                            "(B, [heads,] S, h, w) or of (edge_index, alpha) pairs (got "
                            f"{type(attention).__name__})")
        offsets = _check_offsets(offsets)
        total: Optional[Tensor] = None
        count: Optional[Tensor] = None
        labels: Dict[Tuple[int, int], Tensor] = {}  # node labels per grid size
        for l, layer in enumerate(layers):
            if isinstance(layer, Tensor):
                nll, keep = self._map_layer_nll(layer, target, offsets, labels, l)
            elif isinstance(layer, (tuple, list)) and len(layer) == 2:
                nll, keep = self._edge_layer_nll(layer[0], layer[1], target, l)
            else:
                raise TypeError(f"'input[{l}]' must be an attention map (B, [heads,] S, h, w) "
                                f"or an (edge_index, alpha) pair (got {type(layer).__name__})")
            kept = keep.sum() * nll.size(1)
            total = nll.sum() if total is None else total + nll.sum()
            count = kept if count is None else count + kept
        if self.reduction == 'sum':
            return total
        return total / count.clamp(min=1).to(total.dtype)

    def _map_layer_nll(self, alpha: Tensor, target: Any, offsets: Tuple[Tuple[int, int], ...],
                       labels: Dict[Tuple[int, int], Tensor], l: int) -> Tuple[Tensor, Tensor]:
        name = f'input[{l}]'
        if not alpha.is_floating_point() or alpha.dim() not in (4, 5):
            raise ValueError(f"'{name}' must be a floating attention map of shape "
                             f"(B, S, h, w) or (B, heads, S, h, w) (got shape "
                             f"{tuple(alpha.shape)}, dtype {alpha.dtype})")
        check_same_device(name, alpha, target=target)
        if alpha.dim() == 4:
            alpha = alpha.unsqueeze(1)
        b, _, s, h, w = alpha.shape
        if s != len(offsets):
            raise ValueError(f"'{name}' has {s} neighbour entries but 'offsets' has "
                             f"{len(offsets)}: pass offsets=block.offsets of the LGA2d "
                             f"that made the maps")
        if (h, w) not in labels:
            target = self._map_target(target, b, f'attention maps of shape '
                                                 f'{tuple(alpha.shape)}')
            labels[(h, w)] = patch_labels(target, (h, w), self.ignore_index)
        return grid_same_label_nll(alpha, labels[(h, w)], offsets, self.ignore_index)

    def _edge_layer_nll(self, edge_index: Any, alpha: Any, target: Any,
                        l: int) -> Tuple[Tensor, Tensor]:
        name = f'input[{l}]'
        if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or (
                edge_index.size(0) != 2) or edge_index.is_floating_point():
            raise ValueError(f"'{name}' must be an (edge_index, alpha) pair with an integer "
                             f"edge_index of shape (2, E) (got "
                             f"{getattr(edge_index, 'shape', type(edge_index).__name__)})")
        e = edge_index.size(1)
        if (not isinstance(alpha, Tensor) or not alpha.is_floating_point()
                or alpha.dim() not in (1, 2) or alpha.size(0) != e):
            raise ValueError(f"'{name}' must be an (edge_index, alpha) pair with a floating "
                             f"alpha of shape ({e},) or ({e}, heads) (got "
                             f"{getattr(alpha, 'shape', type(alpha).__name__)})")
        if not isinstance(target, Tensor) or target.dim() != 1:
            raise ValueError("'target' must have shape (N,), one label per node, for "
                             "attention on graphs (got "
                             f"{getattr(target, 'shape', type(target).__name__)})")
        check_same_device(name, alpha, edge_index=edge_index, target=target)
        target = self._node_target(target, target.size(0))
        alpha = alpha.unsqueeze(1) if alpha.dim() == 1 else alpha
        return edge_same_label_nll(edge_index.long(), alpha, target, self.ignore_index, name)

    def __repr__(self) -> str:
        common = non_default_options(ignore_index=(self.ignore_index, -100),
                                     reduction=(self.reduction, 'mean'))
        name = self.__class__.__name__
        if self.form == 'attention':
            return f"{name}(form='attention'{common})"
        if self.form == 'contrastive':
            extra = non_default_options(l2_normalize=(self.l2_normalize, False),
                                        eps=(self.eps, 1e-6))
            return (f"{name}(form='contrastive', margin={self.margin}, "
                    f"num_random_pairs={self.num_random_pairs}{common}{extra})")
        extra = non_default_options(temperature=(self.temperature, 1.0))
        return (f"{name}(margin={self.margin}, divergence='{self.divergence}', "
                f"num_random_pairs={self.num_random_pairs}{common}{extra})")


_FORM_OPTIONS = {'divergence': ('divergence', 'temperature', 'margin', 'num_random_pairs'),
                 'contrastive': ('margin', 'num_random_pairs', 'l2_normalize', 'eps'),
                 'attention': ()}


def _check_offsets(offsets: Any) -> Tuple[Tuple[int, int], ...]:
    if offsets is None:
        return _ATTENTION_OFFSETS
    if isinstance(offsets, Tensor):
        offsets = offsets.tolist()
    try:
        result = tuple((int(dx), int(dy)) for dx, dy in offsets)
    except (TypeError, ValueError):
        raise ValueError(f"'offsets' must be a sequence of (dx, dy) integer pairs, e.g. "
                         f"block.offsets (got {offsets!r})") from None
    if len(result) == 0:
        raise ValueError("'offsets' must not be empty")
    return result

"""LatentGNN as a drop-in block for CNN feature maps (B, C, H, W)."""
from __future__ import annotations

from typing import List, Optional, Tuple, Union

from torch import Tensor

from .latentgnn import LatentAssignment, LatentGNNBase, _Layout

__all__ = ['LatentGNN2d']


class LatentGNN2d(LatentGNNBase):
    r"""LatentGNN on image feature maps, from the `"Latent Graph Neural
    Networks: Efficient Non-local Relations Learning"
    <https://arxiv.org/abs/1905.11634>`_ paper: a drop-in block for CNN
    backbones (e.g. after a torchvision ResNet stage).

    Each image is a graph of :math:`N = HW` visible nodes (its pixels, row-major)
    with its own :math:`d` latent nodes; the computation is that of
    :class:`graphattn.LatentGNN` (see there for the math), run on the
    ``(B * H * W, C)`` pixel nodes with the fused batched-matrix path (all graphs
    have the same size, so no padding) or, with ``path='message_passing'`` or
    ``sparse_top_m``, over the bipartite graph of :func:`graphs.latent_graph`.
    ``1x1`` convolutions are linear maps on nodes and ``norm='batch'`` has
    ``BatchNorm2d``'s statistics, so this equals the authors' ``LatentGNNV1``;
    their checkpoints load with :meth:`load_official_state_dict`.  The state
    dict is the same as :class:`graphattn.LatentGNN`'s.

    .. math::
        \mathbf{X}' = \mathbf{X} + \gamma \, \mathrm{LatentGNN}(\mathbf{X}),
        \qquad \gamma = 0 \text{ at initialisation}

    Args:
        in_channels (int): channels :math:`C`.
        latent_dims (list of int or int): latent nodes :math:`d_k` per kernel.
        channel_stride (int, optional): :math:`C' = C / s`. (default: :obj:`4`)
        num_kernels (int, optional): kernels :math:`K`. (default: :obj:`1`)
        mode (str, optional): ``'asymmetric'`` or ``'symmetric'``.
            (default: :obj:`'asymmetric'`)
        graph_conv (bool, optional): graph convolution after step 5.
            (default: :obj:`False`)
        residual (bool, optional): :math:`\mathbf{X} + \gamma\mathbf{Y}` (else
            :math:`\mathbf{Y}`). (default: :obj:`True`)
        norm (str or callable, optional): ``'batch'`` (= ``BatchNorm2d``),
            ``'layer'`` (per pixel over channels), ``'none'``, ``'frozen'``
            (buffers only, as in the authors' detection runs).
            (default: :obj:`'batch'`)
        sparse_top_m (int, optional): top-:math:`m` sparse bipartite graph.
            (default: :obj:`None`)
        path (str, optional): ``'auto'``, ``'fused'`` or ``'message_passing'``.
            (default: :obj:`'auto'`)

    Shapes:
        - **input:** :math:`(B, C, H, W)`
        - **output:** :math:`(B, C, H, W)`
    """

    def forward(self, x: Tensor, *, path: Optional[str] = None,
                return_assignments: bool = False
                ) -> Union[Tensor, Tuple[Tensor, List[LatentAssignment]]]:
        r"""
        Args:
            x (Tensor): feature map ``(B, in_channels, H, W)``.
            path (str, optional): overrides the constructor's ``path``.
            return_assignments (bool, optional): also return each kernel's
                bipartite weights (pixel node ``b * H * W + h * W + w``).
        """
        self._check_x(x, 'x', f'(B, {self.in_channels}, H, W)')
        if x.dim() != 4 or x.size(1) != self.in_channels:
            raise ValueError(f"'x' must have shape (B, {self.in_channels}, H, W) "
                             f"(got shape {tuple(x.shape)})")
        b, c, h, w = x.shape
        chosen = self._choose_path(path)
        n = b * h * w
        self._check_batch_norm_size(n, 'x')
        if n == 0:
            out = x.clone() if self.residual else x.new_zeros(x.shape)
            return (out, []) if return_assignments else out
        nodes = x.permute(0, 2, 3, 1).reshape(n, c)
        layout = _Layout(n, None, b, x.device)
        y, assignments = self._propagate(nodes, layout, chosen, return_assignments)
        y = y.view(b, h, w, c).permute(0, 3, 1, 2)
        out = x + self.gamma * y if self.residual else y.contiguous()
        return (out, assignments) if return_assignments else out

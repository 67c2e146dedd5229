"""LatentGNN as a drop-in block for CNN feature maps (B, C, H, W)."""
from __future__ import annotations

from typing import Optional

from torch import Tensor

from ._checks import check_features
from .dense_layout import DenseLayout
from .latentgnn_base import LatentGNNBase, Output
from .norms import check_batch_norm_nodes

__all__ = ['LatentGNN2d']


class LatentGNN2d(LatentGNNBase):
    r"""LatentGNN on image feature maps, from the `"Latent Graph Neural
    Networks: Efficient Non-local Relations Learning"
    <https://arxiv.org/abs/1905.11634>`_ paper: a drop-in block for CNN
    backbones (e.g. after a torchvision ResNet stage).

    Each image is a graph of :math:`N = HW` visible nodes (its pixels, row-major)
    with its own :math:`d` latent nodes; the computation is that of
    :class:`~graphattn.latentgnn_base.LatentGNNBase` (steps 1-6 there), run on the
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
        channel_stride (int, optional): :math:`C' = C / s`; :obj:`None`: the
            authors' 4, or less so that :math:`C' \geq 8` when :math:`C < 32`
            (:func:`~graphattn.latentgnn_base.default_channel_stride`).
            (default: :obj:`None`)
        num_kernels (int, optional): kernels :math:`K`. (default: :obj:`1`)
        mode (str, optional): ``'asymmetric'`` or ``'symmetric'``.
            (default: :obj:`'asymmetric'`)
        graph_conv (bool, optional): graph convolution after step 5.
            (default: :obj:`False`)
        residual (bool, optional): :math:`\mathbf{X} + \gamma\mathbf{Y}` (else
            :math:`\mathbf{Y}`). (default: :obj:`True`)
        norm (str or callable, optional): ``'batch'`` (= ``BatchNorm2d``),
            ``'layer'`` (per pixel over channels), ``'none'``, ``'frozen'``
            (buffers only, as in the authors' detection runs); :obj:`None`:
            ``'batch'``, the authors' choice for batches of images (unlike
            :class:`~graphattn.LatentGNN`, whose default is ``'layer'``).
            (default: :obj:`None`)
        sparse_top_m (int, optional): top-:math:`m` sparse bipartite graph.
            (default: :obj:`None`)
        path (str, optional): ``'auto'``, ``'fused'`` or ``'message_passing'``.
            (default: :obj:`'auto'`)

    Shapes:
        - **input:** :math:`(B, C, H, W)`
        - **output:** :math:`(B, C, H, W)`, and with ``return_assignments=True``
          a list of :math:`K` :class:`~graphattn.latent_kernels.LatentAssignment`
          (over the :math:`BHW` pixel nodes)
    """

    def forward(self, x: Tensor, *, path: Optional[str] = None,
                return_assignments: bool = False) -> Output:
        r"""
        Args:
            x (Tensor): feature map ``(B, in_channels, H, W)``.
            path (str, optional): overrides the constructor's ``path``.
            return_assignments (bool, optional): also return each kernel's
                bipartite weights (pixel node ``b * H * W + h * W + w``).

        Returns:
            ``out`` ``(B, in_channels, H, W)``, or ``(out, assignments)`` with
            ``return_assignments=True`` (a list of :math:`K`
            :class:`~graphattn.latent_kernels.LatentAssignment`).
        """
        check_features('x', x, self.in_channels, (f'(B, {self.in_channels}, H, W)',), (4,),
                       self.up.weight.dtype, channel_dim=1)
        b, c, h, w = x.shape
        chosen = self.resolve_path(path)
        n = b * h * w
        check_batch_norm_nodes('x', n, self.norm, self.training)
        if n == 0:
            return self.pack(self.output(x, None), [], return_assignments)
        nodes = x.permute(0, 2, 3, 1).reshape(n, c)
        layout = DenseLayout(n, None, b, x.device)
        y, assignments = self.node_forward(nodes, layout, chosen, return_assignments)
        y = y.view(b, h, w, c).permute(0, 3, 1, 2)
        return self.pack(self.output(x, y), assignments, return_assignments)

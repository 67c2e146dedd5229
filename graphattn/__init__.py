"""graphattn: Latent Graph Attention (LGA) and LatentGNN as PyTorch Geometric layers.

Layers, losses and 2-D wrappers; graphs are built by :mod:`graphs`.
"""
from .latent_kernels import LatentAssignment
from .latentgnn import LatentGNN
from .latentgnn_official import latentgnn_num_parameters
from .latentgnn2d import LatentGNN2d
from .lga import LGA
from .lga2d import LGA2d
from .lga_conv import LGAConv
from .lga_loss import LGALoss
from .node_labels import patch_labels

__version__ = '0.3.0'

__all__ = ['LatentGNN', 'LatentGNN2d', 'LatentAssignment', 'latentgnn_num_parameters',
           'LGAConv', 'LGA', 'LGA2d', 'LGALoss', 'patch_labels']

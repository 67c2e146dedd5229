"""graphattn: Latent Graph Attention (LGA) and LatentGNN as PyTorch Geometric layers.

Layers, losses and 2-D wrappers; graphs are built by :mod:`graphs`.
"""
from .latentgnn import LatentGNN
from .latentgnn2d import LatentGNN2d
from .lga import LGA
from .lga2d import LGA2d
from .lga_conv import LGAConv
from .lga_loss import LGALoss, patch_labels

__version__ = '0.1.0'

__all__ = ['LatentGNN', 'LatentGNN2d', 'LGAConv', 'LGA', 'LGA2d', 'LGALoss', 'patch_labels']

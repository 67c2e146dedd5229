"""graphattn: Latent Graph Attention (LGA) and LatentGNN as PyTorch Geometric layers."""
__version__ = '0.1.0'
from .latentgnn import LatentGNN
from .latentgnn2d import LatentGNN2d
from .lga_conv import LGAConv
from .lga import LGA
from .lga2d import LGA2d
from .lga_loss import LGALoss, patch_labels

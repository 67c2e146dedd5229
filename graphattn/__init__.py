"""graphattn: Latent Graph Attention (LGA) and LatentGNN as PyTorch Geometric layers."""
__version__ = '0.1.0'

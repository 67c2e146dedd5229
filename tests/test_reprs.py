"""Reprs name the layer's sizes and every hyperparameter that differs from its default."""
import pytest

from graphattn import LGA, LGA2d, LGAConv, LGALoss


@pytest.mark.parametrize('module, expected', [
    (LGAConv(16, 32, 9), 'LGAConv(16, 32, edge_dim=9)'),
    (LGAConv(16, 32, 3, edge_encoder='mlp', normalize='sigmoid', groups=4, chunk_size=64),
     "LGAConv(16, 32, edge_dim=3, edge_encoder='mlp', normalize='sigmoid', groups=4, "
     "chunk_size=64)"),
    (LGAConv(16, 32, 3, edge_encoder='mlp', att_channels=8),
     "LGAConv(16, 32, edge_dim=3, att_channels=8, edge_encoder='mlp')"),
    (LGA(16), 'LGA(16, latent_channels=16, num_layers=3, edge_dim=9)'),
    (LGA(16, 8, 2, 3, edge_encoder='mlp', fuse=True),
     "LGA(16, latent_channels=8, num_layers=2, edge_dim=3, edge_encoder='mlp', fuse=True)"),
    (LGA2d(64, num_layers=4), 'LGA2d(64, latent_channels=64, num_layers=4)'),
    (LGA2d(64, 32, connectivity=4, dilation=2, path='fused'),
     "LGA2d(64, latent_channels=32, num_layers=3, connectivity=4, dilation=2, path='fused')"),
    (LGA2d(64, num_layers=4, residual=False, norm='none', recompute=True),
     "LGA2d(64, latent_channels=64, num_layers=4, residual=False, norm='none', recompute=True)"),
    (LGALoss(), "LGALoss(margin=1.0, divergence='sym_kl', num_random_pairs=0)"),
    (LGALoss(ignore_index=255, reduction='sum'),
     "LGALoss(margin=1.0, divergence='sym_kl', num_random_pairs=0, ignore_index=255, "
     "reduction='sum')"),
])
def test_repr(module, expected):
    assert repr(module) == expected

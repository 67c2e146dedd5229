"""Smoke test of an installed graphattn wheel: run from a folder outside the checkout.

Imports the package, checks the installed metadata (version, SPDX licence, LICENSE file),
and runs one forward pass of every public module and a graph builder.
"""
import importlib.metadata as metadata
import os
import sys

import torch

import graphattn
import graphs
from graphattn import LGA, LGA2d, LatentGNN, LatentGNN2d, LGAConv, LGALoss

torch.set_num_threads(1)
torch.manual_seed(0)

site = os.path.dirname(os.path.dirname(graphattn.__file__))
assert 'site-packages' in site, f'graphattn was imported from {site}, not from the wheel'
assert os.path.dirname(os.path.dirname(graphs.__file__)) == site

meta = metadata.metadata('graphattn')
assert meta['Version'] == graphattn.__version__, (meta['Version'], graphattn.__version__)
assert meta['License-Expression'] == 'MIT', meta['License-Expression']
assert 'LICENSE' in (meta.get_all('License-File') or []), meta.get_all('License-File')
assert not [c for c in meta.get_all('Classifier') or [] if c.startswith('License ::')]
files = [str(f) for f in metadata.files('graphattn')]
assert any(f.endswith('licenses/LICENSE') for f in files), 'LICENSE is not in the wheel'
assert not any(f.startswith(('tests/', 'examples/', 'docs/', 'benchmarks/')) for f in files)
requires = metadata.requires('graphattn')
assert 'torch>=2.6' in requires, requires

fmap = torch.randn(2, 8, 6, 6)
data = graphs.point_cloud_to_data(torch.rand(50, 3), torch.randn(50, 8), k=6, loop=True)
grid = graphs.grid_graph(6, 6)
batch = graphs.feature_map_to_batch(fmap)
assert torch.equal(graphs.batch_to_feature_map(batch), fmap)

outputs = {
    'LGAConv': LGAConv(8, 16, edge_dim=3, edge_encoder='mlp')(
        data.x, data.edge_index, data.edge_attr),
    'LGA': LGA(8, 16, num_layers=2, edge_dim=3, edge_encoder='mlp')(
        data.x, data.edge_index, data.edge_attr),
    'LGA (grid graph)': LGA(8, num_layers=2)(batch.x, batch.edge_index, batch.edge_attr),
    'LGA2d': LGA2d(8, num_layers=2, fuse=True)(fmap),
    'LatentGNN': LatentGNN(8, latent_dims=[4])(data.x),
    'LatentGNN2d': LatentGNN2d(8, latent_dims=[4], channel_stride=2)(fmap),
}
out, latent = LGA2d(8, num_layers=2, fuse=True)(fmap, return_latent=True)
outputs['LGALoss'] = LGALoss()(latent, torch.randint(0, 3, (2, 12, 12)))
for name, value in outputs.items():
    assert torch.isfinite(value).all(), name
    print(f'{name}: {tuple(value.shape)}')
print(f'graph builders: grid {grid.num_edges} edges, kNN {data.num_edges} edges')
print(f'smoke test passed: graphattn {graphattn.__version__} from {site} '
      f'(torch {torch.__version__}, python {sys.version.split()[0]})')

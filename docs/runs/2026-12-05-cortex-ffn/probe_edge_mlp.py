"""Probe: does EdgeConv's message, an MLP of (h_i, h_j - h_i) on each edge, close the cortex gap
when LGA's attention weights sum it? Each LGA layer outputs act(sum_j alpha_ij MLP([h_i, h_j - h_i]))
(MLP: 2C -> C -> C with a ReLU; alpha the layer's own attention; its value map unused). A probe,
no library change; demo full budget, paired with the base. Usage: probe_edge_mlp.py center"""
import sys, torch
from torch import nn
torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from experiment import Budget, run, table
import segment_cortex as sc
from graphattn import LGA
from models import PointSegNet

score = sys.argv[1]
row = f'lga-edge-mlp-{score}'


class WithEdgeMLP(nn.Module):
    """An LGAConv whose message is alpha_ij * MLP([h_i, h_j - h_i]) (EdgeConv's message, with
    LGA's attention weights for the sum), the layer's own value map unused."""

    def __init__(self, conv, channels):
        super().__init__()
        self.conv = conv
        self.mlp = nn.Sequential(nn.Linear(2 * channels, channels), nn.ReLU(),
                                 nn.Linear(channels, channels))

    def __getattr__(self, name):                     # prepare, edge_encoder, ...
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.conv, name)

    def reset_parameters(self):
        self.conv.reset_parameters()
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                m.reset_parameters()

    def forward(self, z, graph, return_attention_weights=False):
        _, (edge_index, alpha) = self.conv(z, graph, return_attention_weights=True)
        assert graph.form == 'edges' and not return_attention_weights
        src, dst = torch.as_tensor(edge_index)
        messages = alpha.mean(-1, keepdim=True) * self.mlp(torch.cat([z[dst], z[src] - z[dst]], -1))
        out = torch.zeros_like(z).index_add_(0, dst, messages)
        return self.conv.act(out) if self.conv.act is not None else out


def block(width):
    lga = LGA.for_points(width, num_layers=4, fuse=True, score=score)
    lga.convs = nn.ModuleList([WithEdgeMLP(c, lga.latent_channels) for c in lga.convs])
    return lga


class Probe(sc.CortexTask):
    name = f'probe-cortex-{row}'

    def __init__(self):
        super().__init__()
        self.rows = {**self.rows, row: f"base + LGA score='{score}' + MLP messages per edge"}

    def build(self, r):
        if r != row:
            return super().build(r)
        return PointSegNet(block, num_classes=sc.NUM_CLASSES)


task = Probe()
model = task.build(row)
print('params:', sum(p.numel() for p in model.parameters()))
results, _, _ = run(task, [row], Budget(300, 8, (0, 1, 2)), out='/work/main/outputs/probe')
print(table(task, results))

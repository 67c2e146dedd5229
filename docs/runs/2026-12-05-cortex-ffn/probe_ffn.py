"""Probe: does a per-node MLP after each LGA layer close the cortex gap to deeper EdgeConv?

EdgeConv's message is a 2-layer MLP of (x_i, x_j - x_i) per edge, maximised; an LGA layer is an
attention-weighted sum of linear values with one ReLU. This wraps each LGA layer as
``z + FFN(z)`` (FFN: C -> 2C -> C with a ReLU; z the layer's update, before the stack's residual
sum), a transformer-style feed-forward, as a probe (no library change). Demo full budget, paired
with the base (the block is drawn last). Usage: probe_ffn.py center|neighbor"""
import sys, torch
from torch import nn
torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from experiment import Budget, run, table
import segment_cortex as sc
from graphattn import LGA
from models import PointSegNet

score = sys.argv[1]
row = f'lga-ffn-{score}'


class WithFFN(nn.Module):
    """An LGAConv followed by a residual feed-forward on its output."""

    def __init__(self, conv, channels):
        super().__init__()
        self.conv = conv
        self.ffn = nn.Sequential(nn.Linear(channels, 2 * channels), nn.ReLU(),
                                 nn.Linear(2 * channels, channels))

    def __getattr__(self, name):                     # prepare, edge_encoder, ...
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.conv, name)

    def reset_parameters(self):
        self.conv.reset_parameters()
        for m in self.ffn:
            if isinstance(m, nn.Linear):
                m.reset_parameters()

    def forward(self, z, graph, return_attention_weights=False):
        out = self.conv(z, graph, return_attention_weights=return_attention_weights)
        if return_attention_weights:
            out, att = out
            return out + self.ffn(out), att
        return out + self.ffn(out)


def block(width):
    lga = LGA.for_points(width, num_layers=4, fuse=True, score=score)
    lga.convs = nn.ModuleList([WithFFN(c, lga.latent_channels) for c in lga.convs])
    return lga


class Probe(sc.CortexTask):
    name = f'probe-cortex-{row}'

    def __init__(self):
        super().__init__()
        self.rows = {**self.rows, row: f"base + LGA score='{score}' + FFN per layer"}

    def build(self, r):
        if r != row:
            return super().build(r)
        return PointSegNet(block, num_classes=sc.NUM_CLASSES)


task = Probe()
model = task.build(row)
print('params:', sum(p.numel() for p in model.parameters()))
results, _, _ = run(task, [row], Budget(300, 8, (0, 1, 2)), out='/work/main/outputs/probe')
print(table(task, results))

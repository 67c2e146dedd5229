"""Probe: do messages of differences close the cortex gap to deeper EdgeConv?

An LGA message is alpha_ij * W h_j and the weights of a node sum to 1, so each layer is a
weighted average; EdgeConv's maximum over MLPs of x_j - x_i can respond to a change across the
neighbourhood. This wraps each LGA layer to output act(sum_j alpha_ij * W (h_j - h_i)), its
update minus the centre's own value (same parameters), as a probe (no library change). Demo
full budget, paired with the base (the block is drawn last). Usage: probe_difference.py
center|neighbor"""
import sys, torch
from torch import nn
torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from experiment import Budget, run, table
import segment_cortex as sc
from graphattn import LGA
from models import PointSegNet

score = sys.argv[1]
row = f'lga-difference-{score}'


class WithDifference(nn.Module):
    """An LGAConv whose message is alpha_ij * W (h_j - h_i): its update minus the centre's own
    value (the weights sum to 1), the activation applied after the difference."""

    def __init__(self, conv, channels):
        super().__init__()
        self.conv = conv
        self.after = conv.act
        conv.act = None

    def __getattr__(self, name):                     # prepare, edge_encoder, ...
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.conv, name)

    def reset_parameters(self):
        self.conv.reset_parameters()

    def forward(self, z, graph, return_attention_weights=False):
        out = self.conv(z, graph, return_attention_weights=return_attention_weights)
        out, att = out if return_attention_weights else (out, None)
        assert self.conv.heads == 1 and out.shape == z.shape
        out = out - self.conv.lin_value(z)
        if self.after is not None:
            out = self.after(out)
        return (out, att) if return_attention_weights else out


def block(width):
    lga = LGA.for_points(width, num_layers=4, fuse=True, score=score)
    lga.convs = nn.ModuleList([WithDifference(c, lga.latent_channels) for c in lga.convs])
    return lga


class Probe(sc.CortexTask):
    name = f'probe-cortex-{row}'

    def __init__(self):
        super().__init__()
        self.rows = {**self.rows, row: f"base + LGA score='{score}' + difference messages"}

    def build(self, r):
        if r != row:
            return super().build(r)
        return PointSegNet(block, num_classes=sc.NUM_CLASSES)


task = Probe()
model = task.build(row)
print('params:', sum(p.numel() for p in model.parameters()))
results, _, _ = run(task, [row], Budget(300, 8, (0, 1, 2)), out='/work/main/outputs/probe')
print(table(task, results))

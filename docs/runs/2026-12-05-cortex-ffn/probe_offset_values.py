"""Probe: do values that carry the offset close the cortex gap to deeper EdgeConv?

An LGA message is alpha_ij * W h_j: the offset p_j - p_i enters only the score. PointTransformerConv's
message is alpha_ij * (W h_j + delta(p_j - p_i)), delta an MLP of the offset; EdgeConv's is an MLP
of (x_i, x_j - x_i). This wraps each LGA layer to add sum_j alpha_ij * delta(p_j - p_i) (delta:
3 -> C -> C with a ReLU, per layer) to its update, using the layer's own attention weights, as a
probe (no library change; message passing on the demo's edge lists). Demo full budget, paired with
the base (the block is drawn last). Usage: probe_offset_values.py center|neighbor"""
import sys, torch
from torch import nn
torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from experiment import Budget, run, table
import segment_cortex as sc
from graphattn import LGA
from models import PointSegNet

score = sys.argv[1]
row = f'lga-offset-values-{score}'


class WithOffsetValues(nn.Module):
    """An LGAConv whose update also sums alpha_ij * delta(e_ij) over each node's edges."""

    def __init__(self, conv, channels, dim=3):
        super().__init__()
        self.conv = conv
        self.delta = nn.Sequential(nn.Linear(dim, channels), nn.ReLU(),
                                   nn.Linear(channels, channels))

    def __getattr__(self, name):                     # prepare, edge_encoder, ...
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.conv, name)

    def reset_parameters(self):
        self.conv.reset_parameters()
        for m in self.delta:
            if isinstance(m, nn.Linear):
                m.reset_parameters()

    def forward(self, z, graph, return_attention_weights=False):
        out, (edge_index, alpha) = self.conv(z, graph, return_attention_weights=True)
        assert graph.form == 'edges' and graph.edge_attr.size(0) == alpha.size(0)
        centre = torch.as_tensor(edge_index)[1]
        messages = alpha.mean(-1, keepdim=True) * self.delta(graph.edge_attr.to(z.dtype))
        out = out + torch.zeros_like(out).index_add_(0, centre, messages)
        return (out, (edge_index, alpha)) if return_attention_weights else out


def block(width):
    lga = LGA.for_points(width, num_layers=4, fuse=True, score=score)
    lga.convs = nn.ModuleList([WithOffsetValues(c, lga.latent_channels) for c in lga.convs])
    return lga


class Probe(sc.CortexTask):
    name = f'probe-cortex-{row}'

    def __init__(self):
        super().__init__()
        self.rows = {**self.rows, row: f"base + LGA score='{score}' + offset values"}

    def build(self, r):
        if r != row:
            return super().build(r)
        return PointSegNet(block, num_classes=sc.NUM_CLASSES)


task = Probe()
model = task.build(row)
print('params:', sum(p.numel() for p in model.parameters()))
results, _, _ = run(task, [row], Budget(300, 8, (0, 1, 2)), out='/work/main/outputs/probe')
print(table(task, results))

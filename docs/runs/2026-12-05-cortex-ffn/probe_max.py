"""Probe: does a maximum over the neighbourhood, as in EdgeConv, close the cortex gap?

Each LGA layer is replaced by act(max_j W (h_j - h_i)) over its edges: LGA's value map (the same
parameters; the attention's go unused), maximised instead of averaged by attention. EdgeConv
maximises an MLP of (x_i, x_j - x_i) per edge. A probe, no library change; demo full budget,
paired with the base. Usage: probe_max.py center"""
import sys, torch
from torch import nn
torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from experiment import Budget, run, table
import segment_cortex as sc
from graphattn import LGA
from models import PointSegNet
from torch_geometric.utils import scatter

score = sys.argv[1]
row = f'lga-max-{score}'


class WithMax(nn.Module):
    """An LGAConv's value map, maximised over each node's neighbourhood instead of averaged by
    the attention: act(max_j W (h_j - h_i)). The attention's parameters go unused."""

    def __init__(self, conv, channels):
        super().__init__()
        self.conv = conv

    def __getattr__(self, name):                     # prepare, edge_encoder, ...
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.conv, name)

    def reset_parameters(self):
        self.conv.reset_parameters()

    def forward(self, z, graph, return_attention_weights=False):
        assert graph.form == 'edges' and not return_attention_weights
        value = self.conv.lin_value(z)
        src, dst = torch.as_tensor(graph.edge_index)
        out = scatter(value[src], dst, dim=0, dim_size=z.size(0), reduce='max') - value
        return self.conv.act(out) if self.conv.act is not None else out


def block(width):
    lga = LGA.for_points(width, num_layers=4, fuse=True, score=score)
    lga.convs = nn.ModuleList([WithMax(c, lga.latent_channels) for c in lga.convs])
    return lga


class Probe(sc.CortexTask):
    name = f'probe-cortex-{row}'

    def __init__(self):
        super().__init__()
        self.rows = {**self.rows, row: f"base + LGA score='{score}' + max of values"}

    def build(self, r):
        if r != row:
            return super().build(r)
        return PointSegNet(block, num_classes=sc.NUM_CLASSES)


task = Probe()
model = task.build(row)
print('params:', sum(p.numel() for p in model.parameters()))
results, _, _ = run(task, [row], Budget(300, 8, (0, 1, 2)), out='/work/main/outputs/probe')
print(table(task, results))

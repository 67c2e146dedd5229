"""Probe: rivals of the dehazing depth gain. The dehazing base with N more 3x3 conv blocks at
1/4 resolution in place of the block (drawn last, so paired with the base), against LGA at 4
and 8 layers (ablate_lga.py part d's budget, 3 seeds). Usage: probe_dehaze_deeper.py ROW...
with ROW one of deeper1 deeper2 (or part d's own rows: none, 'lga x4', 'lga x8')."""
import sys, torch
from torch import nn
torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from ablate_lga import DEHAZE_BATCH, DehazeDepthTask
from experiment import Budget, run, table
from models import conv_block
import dehaze

class Probe(DehazeDepthTask):
    name = 'probe-dehaze-deeper'
    def __init__(self):
        super().__init__(2000, 200)
        self.rows = {**self.rows, 'deeper1': 'dehaze: base + 1 conv block at 1/4',
                     'deeper2': 'dehaze: base + 2 conv blocks at 1/4'}
    def build(self, row):
        if not row.startswith('deeper'):
            return super().build(row)
        model = super().build('none')
        c = model.enc3[-1][0].out_channels
        model.context = nn.Sequential(*[conv_block(c, c) for _ in range(int(row[-1]))])
        return model

task = Probe()
budget = Budget(300, DEHAZE_BATCH, (0, 1, 2), warmup=dehaze.WARMUP)
results, _, _ = run(task, sys.argv[1:], budget, out='/work/main/outputs/probe')
print(table(task, results))

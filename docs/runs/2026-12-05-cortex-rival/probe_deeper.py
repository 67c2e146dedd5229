"""Probe: the cortex base with N extra EdgeConv layers (N more hops), paired with the base
(demo full budget). Usage: probe_deeper.py N (run here with 2 and 4; the 5-layer rival is
the script's own row: segment_cortex.py --models deeper)."""
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from experiment import Budget, run, table
import segment_cortex as sc
from models import PointSegNet

n = int(sys.argv[1])
row = f'deeper{n}'

class Probe(sc.CortexTask):
    name = f'probe-cortex-{row}'
    def __init__(self):
        super().__init__()
        self.rows = {**self.rows, row: f'base + {n} EdgeConv'}
    def build(self, r):
        if r != row:
            return super().build(r)
        return PointSegNet(None, num_classes=sc.NUM_CLASSES, extra_convs=n)

task = Probe()
results, _, _ = run(task, [row], Budget(300, 8, (0, 1, 2)), out='/work/main/outputs/probe')
print(table(task, results))

"""Probe: cortex LGA with residual=True and another norm, paired with the base (demo full budget).
Usage: probe_cortex.py lga-nonorm (norm='none') | lga-batchnorm (norm='batch')."""
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from experiment import Budget, run, table
import segment_cortex as sc
from graphattn import LGA
from models import PointSegNet

NORMS = {'lga-nonorm': 'none', 'lga-batchnorm': 'batch'}
row = sys.argv[1]

class Probe(sc.CortexTask):
    name = 'probe-cortex' + ('-batch' if NORMS[row] == 'batch' else '')
    def __init__(self):
        super().__init__()
        self.rows = {**self.rows, row: f'base + LGA, norm {NORMS[row]}'}
    def build(self, r):
        if r != row:
            return super().build(r)
        return PointSegNet(lambda w: LGA.for_points(w, num_layers=4, fuse=True, norm=NORMS[row]),
                           num_classes=sc.NUM_CLASSES)

task = Probe()
results, _, _ = run(task, [row], Budget(300, 8, (0, 1, 2)), out='/work/main/outputs/probe')
print(table(task, results))

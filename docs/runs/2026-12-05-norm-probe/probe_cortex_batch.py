"""Probe: cortex LGA with residual=True, norm='batch', paired with the base (demo full budget)."""
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from experiment import Budget, run, table
import segment_cortex as sc
from graphattn import LGA
from models import PointSegNet

class Probe(sc.CortexTask):
    name = 'probe-cortex-batch'
    def __init__(self):
        super().__init__()
        self.rows = {**self.rows, 'lga-batchnorm': 'base + LGA, norm batch'}
    def build(self, row):
        if row != 'lga-batchnorm':
            return super().build(row)
        return PointSegNet(lambda w: LGA.for_points(w, num_layers=4, fuse=True, norm='batch'),
                           num_classes=sc.NUM_CLASSES)

task = Probe()
results, _, _ = run(task, ['lga-batchnorm'], Budget(300, 8, (0, 1, 2)), out='/work/main/outputs/probe')
print(table(task, results))

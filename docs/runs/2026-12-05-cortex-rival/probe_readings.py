"""Probe: LGA's other score readings on the cortex (demo full budget, paired with the base).
Usage: probe_readings.py neighbor|pair"""
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from experiment import Budget, run, table
import segment_cortex as sc
from graphattn import LGA
from models import PointSegNet

score = sys.argv[1]
row = f'lga-{score}'

class Probe(sc.CortexTask):
    name = f'probe-cortex-{row}'
    def __init__(self):
        super().__init__()
        self.rows = {**self.rows, row: f"base + LGA score='{score}'"}
    def build(self, r):
        if r != row:
            return super().build(r)
        return PointSegNet(lambda w: LGA.for_points(w, num_layers=4, fuse=True, score=score),
                           num_classes=sc.NUM_CLASSES)

task = Probe()
results, _, _ = run(task, [row], Budget(300, 8, (0, 1, 2)), out='/work/main/outputs/probe')
print(table(task, results))

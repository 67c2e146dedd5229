"""Probe: LGA's depth on the cortex (the demo uses 4 layers; more EdgeConv layers beat it).
Demo full budget, paired with the base (the block is drawn last).
Usage: probe_depth.py LAYERS center|neighbor"""
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from experiment import Budget, run, table
import segment_cortex as sc
from graphattn import LGA
from models import PointSegNet

layers, score = int(sys.argv[1]), sys.argv[2]
row = f'lga{layers}-{score}'


class Probe(sc.CortexTask):
    name = f'probe-cortex-{row}'

    def __init__(self):
        super().__init__()
        self.rows = {**self.rows, row: f"base + LGA, {layers} layers, score='{score}'"}

    def build(self, r):
        if r != row:
            return super().build(r)
        return PointSegNet(lambda w: LGA.for_points(w, num_layers=layers, fuse=True, score=score),
                           num_classes=sc.NUM_CLASSES)


task = Probe()
results, _, _ = run(task, [row], Budget(300, 8, (0, 1, 2)), out='/work/main/outputs/probe-depth')
print(table(task, results))

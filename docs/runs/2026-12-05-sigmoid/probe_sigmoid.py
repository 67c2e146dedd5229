"""Probe: LGA's normalize='sigmoid' (each weight in (0, 1) on its own, not an average) against the
default 'softmax', never ablated in training before. Paired with each task's base (the block is
drawn last), the budgets of the rows it compares with.
Usage: probe_sigmoid.py cortex | dehaze"""
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from experiment import Budget, run, table
from graphattn import LGA, LGA2d

task_name = sys.argv[1]
if task_name == 'cortex':                      # the demo's full cortex budget
    import segment_cortex as sc
    from models import PointSegNet

    class Probe(sc.CortexTask):
        name = 'probe-cortex-sigmoid'

        def __init__(self):
            super().__init__()
            self.rows = {**self.rows, 'lga-sigmoid': "base + LGA normalize='sigmoid'"}

        def build(self, r):
            if r != 'lga-sigmoid':
                return super().build(r)
            return PointSegNet(lambda w: LGA.for_points(w, num_layers=4, fuse=True,
                                                        normalize='sigmoid'),
                               num_classes=sc.NUM_CLASSES)
    task, rows, budget = Probe(), ['lga-sigmoid'], Budget(300, 8, (0, 1, 2))
else:                                          # ablation d's dehazing budget, 8 layers
    from ablate_lga import DEHAZE_BATCH, DehazeDepthTask
    import dehaze

    class Probe(DehazeDepthTask):
        name = 'probe-dehaze-sigmoid'

        def __init__(self):
            super().__init__(2000, 200)

        def build(self, row):
            model = super().build(row)
            if self.depths[row]:
                model.context = LGA2d(model.context.in_channels, num_layers=self.depths[row],
                                      fuse=True, normalize='sigmoid')
            return model
    task, rows = Probe(), ['lga x8']
    budget = Budget(300, DEHAZE_BATCH, (0, 1, 2), warmup=dehaze.WARMUP)
results, _, _ = run(task, rows, budget, out='/work/main/outputs/probe-sigmoid')
print(table(task, results))

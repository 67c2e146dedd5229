"""Probe: LGA with score='neighbor' on the image tasks, paired with the base: the collages
(demo full budget, 4 layers as in the demo) and glass (depth 3, interior mIoU).
Usage: probe_neighbor_images.py collages|glass"""
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from experiment import Budget, run, table
from graphattn import LGA2d

if sys.argv[1] == 'collages':
    from segment_collages import CollageTask

    class Probe(CollageTask):
        name = 'probe-collages-neighbor'
        rows = {**CollageTask.rows, 'lga-neighbor': "base + LGA score='neighbor'"}
        def build(self, row):
            if row != 'lga-neighbor':
                return super().build(row)
            model = super().build('none')
            model.context = LGA2d(model.enc3[-1][0].out_channels, fuse=True, num_layers=4,
                                  score='neighbor')
            return model
    task, budget = Probe(4000, 1000), Budget(900, 32, (0, 1, 2))
else:
    import segment_glass as sg

    class Probe(sg.GlassTask):
        rows = {**sg.GlassTask.rows, 'lga3-neighbor': "base + LGA, depth 3, score='neighbor'"}
        def build(self, row):
            if row != 'lga3-neighbor':
                return super().build(row)
            model = sg.GlassNet('base')
            model.context = LGA2d(32, num_layers=3, fuse=True, score='neighbor')
            return model
    task, budget = Probe(2000, 300, 'probe-glass-neighbor', background=False), \
        Budget(600, 32, (0, 1, 2))

row = 'lga-neighbor' if sys.argv[1] == 'collages' else 'lga3-neighbor'
results, _, _ = run(task, [row], budget, out='/work/main/outputs/probe')
print(table(task, results))

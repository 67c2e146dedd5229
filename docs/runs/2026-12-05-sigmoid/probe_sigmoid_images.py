"""Probe: LGA with normalize='sigmoid' on the image tasks, paired with the base: the collages
(demo full budget, 4 layers as in the demo) and glass (depth 3, interior mIoU).
Usage: probe_sigmoid_images.py collages|glass"""
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from experiment import Budget, run, table
from graphattn import LGA2d

if sys.argv[1] == 'collages':
    from segment_collages import CollageTask

    class Probe(CollageTask):
        name = 'probe-collages-sigmoid'
        rows = {**CollageTask.rows, 'lga-sigmoid': "base + LGA normalize='sigmoid'"}
        def build(self, row):
            if row != 'lga-sigmoid':
                return super().build(row)
            model = super().build('none')
            model.context = LGA2d(model.enc3[-1][0].out_channels, fuse=True, num_layers=4,
                                  normalize='sigmoid')
            return model
    task, budget = Probe(4000, 1000), Budget(900, 32, (0, 1, 2))
else:
    import segment_glass as sg

    class Probe(sg.GlassTask):
        rows = {**sg.GlassTask.rows, 'lga3-sigmoid': "base + LGA, depth 3, normalize='sigmoid'"}
        def build(self, row):
            if row != 'lga3-sigmoid':
                return super().build(row)
            model = sg.GlassNet('base')
            model.context = LGA2d(32, num_layers=3, fuse=True, normalize='sigmoid')
            return model
    task, budget = Probe(2000, 300, 'probe-glass-sigmoid', background=False), \
        Budget(600, 32, (0, 1, 2))

row = 'lga-sigmoid' if sys.argv[1] == 'collages' else 'lga3-sigmoid'
results, _, _ = run(task, [row], budget, out='/work/main/outputs/probe-sigmoid')
print(table(task, results))

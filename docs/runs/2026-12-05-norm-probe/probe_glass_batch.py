"""Probe: LGA with residual=True, norm='batch' on glass (depth 3 and 8), paired with the base."""
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from experiment import Budget, run, table
import segment_glass as sg
from graphattn import LGA2d

class Probe(sg.GlassTask):
    rows = {**sg.GlassTask.rows, 'lga3-batchnorm': 'base + LGA, depth 3, norm batch',
            'lga8-batchnorm': 'base + LGA, depth 8, norm batch'}
    def build(self, row):
        if not row.endswith('-batchnorm'):
            return super().build(row)
        model = sg.GlassNet('base')
        model.context = LGA2d(32, num_layers=int(row[3]), fuse=True, norm='batch')
        return model

task = Probe(2000, 300, 'probe-glass-batch', background=False)
results, _, _ = run(task, sys.argv[1:], Budget(600, 32, (0, 1, 2)), out='/work/main/outputs/probe')
print(table(task, results))

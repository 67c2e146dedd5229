"""Probe: LGA with residual=True, norm='none' on glass (depth 3 and 8), paired with the base."""
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from experiment import Budget, run, table
import segment_glass as sg
from graphattn import LGA2d

class Probe(sg.GlassTask):
    rows = {**sg.GlassTask.rows, 'lga3-nonorm': 'base + LGA, depth 3, norm none',
            'lga8-nonorm': 'base + LGA, depth 8, norm none'}
    def build(self, row):
        if not row.endswith('-nonorm'):
            return super().build(row)
        model = sg.GlassNet('base')
        model.context = LGA2d(32, num_layers=int(row[3]), fuse=True, norm='none')
        return model

task = Probe(2000, 300, 'probe-glass', background=False)
results, _, _ = run(task, sys.argv[1:], Budget(600, 32, (0, 1, 2)), out='/work/main/outputs/probe')
print(table(task, results))

"""Probe: LGA with residual=True and another norm on glass (depth 3 and 8), paired with the base.
Usage: probe_glass.py lga3-nonorm lga8-nonorm (norm='none') | lga3-batchnorm (norm='batch')."""
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from experiment import Budget, run, table
import segment_glass as sg
from graphattn import LGA2d

NORMS = {'nonorm': 'none', 'batchnorm': 'batch'}
rows = sys.argv[1:]

class Probe(sg.GlassTask):
    rows = {**sg.GlassTask.rows, **{
        r: f'base + LGA, depth {r[3]}, norm {NORMS[r.split("-")[1]]}' for r in rows}}
    def build(self, row):
        if row not in rows:
            return super().build(row)
        model = sg.GlassNet('base')
        model.context = LGA2d(32, num_layers=int(row[3]), fuse=True,
                              norm=NORMS[row.split('-')[1]])
        return model

name = 'probe-glass' + ('-batch' if any(r.endswith('batchnorm') for r in rows) else '')
task = Probe(2000, 300, name, background=False)
results, _, _ = run(task, rows, Budget(600, 32, (0, 1, 2)), out='/work/main/outputs/probe')
print(table(task, results))

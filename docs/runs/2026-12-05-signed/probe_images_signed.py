"""Probe: LGA with signed weights, alpha = tanh(score) per edge, on the collages (demo full
budget, 4 layers as in the demo) and on glass (depth 3 at 600 steps, the budget of the
normalize='sigmoid' ablation; interior mIoU), paired with the base (the block drawn last).
No library option does this: tanh_weights.py swaps the normaliser in this process only, and the
probe asks for normalize='sigmoid'.
Usage: probe_images_signed.py collages|glass"""
import sys

import torch

torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
sys.path.insert(0, '/work/main/docs/runs/2026-12-05-signed')
from experiment import Budget, run, table  # noqa: E402

from graphattn import LGA2d  # noqa: E402
from tanh_weights import use_tanh_weights  # noqa: E402

use_tanh_weights()

if sys.argv[1] == 'collages':
    from segment_collages import CollageTask

    class Probe(CollageTask):
        name = 'probe-collages-tanh'
        rows = {**CollageTask.rows, 'lga-tanh': 'probe: base + LGA, weights tanh(score)'}

        def build(self, row):
            if row != 'lga-tanh':
                return super().build(row)
            model = super().build('none')
            model.context = LGA2d(model.enc3[-1][0].out_channels, fuse=True, num_layers=4,
                                  normalize='sigmoid')
            return model
    task, budget, row = Probe(4000, 1000), Budget(900, 32, (0, 1, 2)), 'lga-tanh'
else:
    import segment_glass as sg

    class Probe(sg.GlassTask):
        rows = {**sg.GlassTask.rows,
                'lga3-tanh': 'probe: base + LGA, depth 3, weights tanh(score)'}

        def build(self, row):
            if row != 'lga3-tanh':
                return super().build(row)
            model = sg.GlassNet('base')
            model.context = LGA2d(32, num_layers=3, fuse=True, normalize='sigmoid')
            return model
    task = Probe(2000, 300, 'probe-glass-tanh', background=False)
    budget, row = Budget(600, 32, (0, 1, 2)), 'lga3-tanh'

results, _, _ = run(task, [row], budget, out='/work/main/docs/runs/2026-12-05-signed')
print(table(task, results))

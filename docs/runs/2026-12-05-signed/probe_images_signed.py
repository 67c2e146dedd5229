"""Probe: LGA with signed weights, alpha = tanh(score) per edge, on the collages (demo full
budget, 4 layers as in the demo) and on glass (depth 3 at 600 steps, the budget of the
normalize='sigmoid' ablation; interior mIoU), paired with the base (the block drawn last).
No library option does this: the probe swaps the normaliser that LGA2d's grid kernel imports,
in this process only, and asks for normalize='sigmoid'.
Usage: probe_images_signed.py collages|glass"""
import sys

import torch

torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from experiment import Budget, run, table  # noqa: E402

import graphattn.grid_attention as grid_attention  # noqa: E402
import graphattn.lga_conv as lga_conv  # noqa: E402
from graphattn import LGA2d  # noqa: E402

_softmax_or_sigmoid = grid_attention.normalize_dense


def signed(scores, valid, normalize):
    if normalize == 'softmax':
        return _softmax_or_sigmoid(scores, valid, normalize)
    return torch.where(valid, torch.tanh(scores), scores.new_zeros(()))


grid_attention.normalize_dense = lga_conv.normalize_dense = signed

# The swap is live: some weights of a fresh layer are negative.
_, att = LGA2d(8, num_layers=1, normalize='sigmoid')(torch.randn(1, 8, 5, 5),
                                                      return_attention_weights=True)
values = att[0][1] if isinstance(att[0], tuple) else att[0]
assert bool((values < 0).any()), 'the tanh swap did not take'

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

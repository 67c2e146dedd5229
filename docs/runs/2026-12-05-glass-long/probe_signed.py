"""Probe: LGA on glass with signed weights, alpha = tanh(score) per edge, at 1,500 steps.

The depthwise stack of LGA's reach beats LGA on glass, and forced to average (each filter a
softmax) it falls below LGA: the reading is that LGA's weights, never negative, cannot take a
difference. This tests that reading on LGA itself: each layer's weights become tanh(score), in
(-1, 1), per edge (as normalize='sigmoid' is per edge), with out-of-map neighbours weighing zero.
No library option does this, so the probe swaps the normaliser that LGA2d's grid kernel and
LGAConv import, in this process only, and asks for normalize='sigmoid'. Paired with the base
(the block is drawn after the base's weights). Usage: probe_signed.py lga4-tanh lga8-tanh
"""
import sys

import torch

torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from experiment import Budget, run, table  # noqa: E402
import segment_glass as sg  # noqa: E402

import graphattn.grid_attention as grid_attention  # noqa: E402
import graphattn.lga_conv as lga_conv  # noqa: E402
from graphattn import LGA2d  # noqa: E402

_softmax_or_sigmoid = grid_attention.normalize_dense


def signed(scores, valid, normalize):
    if normalize == 'softmax':
        return _softmax_or_sigmoid(scores, valid, normalize)
    return torch.where(valid, torch.tanh(scores), scores.new_zeros(()))


grid_attention.normalize_dense = lga_conv.normalize_dense = signed

rows = sys.argv[1:]


class Probe(sg.GlassTask):
    rows = {**sg.GlassTask.rows,
            **{r: f'probe: LGA, depth {r[3:].split("-")[0]}, weights tanh(score)' for r in rows}}

    def build(self, row):
        if row not in rows:
            return super().build(row)
        model = sg.GlassNet('base')
        model.context = LGA2d(32, num_layers=int(row[3:].split('-')[0]), fuse=True,
                              normalize='sigmoid')
        return model


# The swap is live: some weights of a fresh layer are negative.
_, att = LGA2d(8, num_layers=1, normalize='sigmoid')(torch.randn(1, 8, 5, 5),
                                                      return_attention_weights=True)
values = att[0][1] if isinstance(att[0], tuple) else att[0]
assert bool((values < 0).any()), 'the tanh swap did not take'

task = Probe(2000, 300, 'probe-signed-' + '-'.join(rows), background=False)
results, _, _ = run(task, rows, Budget(1500, 32, (0, 1, 2)),
                    out='/work/main/docs/runs/2026-12-05-glass-long')
print(table(task, results))

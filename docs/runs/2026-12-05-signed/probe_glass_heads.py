"""Probe: LGA with 8 heads on glass at 1,500 steps, depth 8, with softmax or signed weights.

The depthwise 3x3 stack that beats LGA on glass has one free weight per channel and offset;
LGA has one weight per edge and head, shared by the head's channels. This asks whether more
heads (8 heads of 4 channels: one weight per edge for every 4 channels; the `heads` default was
ablated only on the collages, which need no context) close the gap, alone ('lga8-h8') and with
signed weights, tanh(score) per edge ('lga8-h8-tanh': the normaliser swap of tanh_weights.py, in
this process only). Same budget and pairing as ../2026-12-05-glass-long/ (the block is drawn
after the base's weights). Usage: probe_glass_heads.py lga<d>-h8 | lga<d>-h8-tanh (d = 4, 8)"""
import sys

import torch

torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
sys.path.insert(0, '/work/main/docs/runs/2026-12-05-signed')
from experiment import Budget, run, table  # noqa: E402
import segment_glass as sg  # noqa: E402

from graphattn import LGA2d  # noqa: E402
from tanh_weights import use_tanh_weights  # noqa: E402

row = sys.argv[1]
depth = int(row[len('lga'):].split('-')[0])
signed = row.endswith('-tanh')
if signed:
    use_tanh_weights()


class Probe(sg.GlassTask):
    rows = {**sg.GlassTask.rows,
            row: f'probe: LGA, depth {depth}, 8 heads' + (', weights tanh(score)' if signed else '')}

    def build(self, r):
        if r != row:
            return super().build(r)
        model = sg.GlassNet('base')
        model.context = LGA2d(32, num_layers=depth, fuse=True, heads=8,
                              normalize='sigmoid' if signed else 'softmax')
        return model


task = Probe(2000, 300, f'probe-glass-{row}', background=False)
results, _, _ = run(task, [row], Budget(1500, 32, (0, 1, 2)),
                    out='/work/main/docs/runs/2026-12-05-signed')
print(table(task, results))

"""Probe: LGA with signed weights, alpha = tanh(score) per edge, on the demo's cortex task.

The cortex is the point-cloud task where LGA's context pays (base 54.4, LGA 62.9 mIoU at the
demo's full budget) and where a rival of its reach without attention, 4 more EdgeConv layers,
beats it (66.9; docs/runs/2026-12-05-cortex-rival/). This asks whether signed weights close that
gap: LGA.for_points(num_layers=4) of the given score reading with each edge's weight tanh(score)
(padded neighbours weigh zero), at the demo's full budget, 3 seeds, paired with the base (the
block is drawn last). No library option does this: tanh_weights.py swaps the per-edge
normalisers (the edge path's, which the cortex network takes, and the table path's) in this
process only, and the probe asks for normalize='sigmoid'.
Usage: probe_cortex_signed.py center|neighbor"""
import sys

import torch

torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
sys.path.insert(0, '/work/main/docs/runs/2026-12-05-signed')
from experiment import Budget, run, table  # noqa: E402
import segment_cortex as sc  # noqa: E402
from models import PointSegNet  # noqa: E402

from graphattn import LGA  # noqa: E402
from tanh_weights import use_tanh_weights  # noqa: E402

use_tanh_weights()
score = sys.argv[1]
row = f'lga-{score}-tanh'


class Probe(sc.CortexTask):
    name = f'probe-cortex-{row}'

    def __init__(self):
        super().__init__()
        self.rows = {**self.rows, row: f"probe: base + LGA score='{score}', weights tanh(score)"}

    def build(self, r):
        if r != row:
            return super().build(r)
        return PointSegNet(lambda w: LGA.for_points(w, num_layers=4, fuse=True, score=score,
                                                    normalize='sigmoid'),
                           num_classes=sc.NUM_CLASSES)


task = Probe()
results, _, _ = run(task, [row], Budget(300, 8, (0, 1, 2)),
                    out='/work/main/docs/runs/2026-12-05-signed')
print(table(task, results))

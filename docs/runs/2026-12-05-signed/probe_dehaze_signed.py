"""Probe: LGA with signed weights, alpha = tanh(score) per edge, on dehazing.

On glass, a probe with these weights (docs/runs/2026-12-05-glass-long/probe_signed.py) closed
about half of LGA's gap to the depthwise stack of its reach at depth 8 and none at depth 4. This
asks the same of the second task where LGA's depth pays and the depthwise stack beats it
(docs/runs/2026-12-05-dehaze-dwconv/): the dehazing base with an LGA2d of 4 or 8 layers whose
per-edge normaliser is tanh (out-of-map neighbours weigh zero), at ablate_lga.py part d's budget,
3 seeds, the block drawn last (paired with the base and with part d's LGA rows). No library
option does this: tanh_weights.py swaps the normaliser in this process only, and the probe asks
for normalize='sigmoid'.
Usage: probe_dehaze_signed.py ROW... with ROW tanh4, tanh8 or part d's own 'none'."""
import sys

import torch

torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
sys.path.insert(0, '/work/main/docs/runs/2026-12-05-signed')
from ablate_lga import DEHAZE_BATCH, DehazeDepthTask  # noqa: E402
from experiment import Budget, run, table  # noqa: E402
import dehaze  # noqa: E402

from graphattn import LGA2d  # noqa: E402
from tanh_weights import use_tanh_weights  # noqa: E402

use_tanh_weights()


class Probe(DehazeDepthTask):
    name = 'probe-dehaze-signed-' + '-'.join(a.replace(' ', '') for a in sys.argv[1:])

    def __init__(self):
        super().__init__(2000, 200)
        self.rows = {**self.rows, **{f'tanh{d}': f'dehaze: probe: LGA, {d} layers, weights '
                                     f'tanh(score)' for d in (4, 8)}}

    def build(self, row):
        if not row.startswith('tanh'):
            return super().build(row)
        model = super().build('lga x4')   # part d's LGA row, its block replaced: drawn last
        model.context = LGA2d(model.context.in_channels, num_layers=int(row[len('tanh'):]),
                              fuse=True, normalize='sigmoid')
        return model


task = Probe()
budget = Budget(300, DEHAZE_BATCH, (0, 1, 2), warmup=dehaze.WARMUP)
results, _, _ = run(task, sys.argv[1:], budget, out='/work/main/docs/runs/2026-12-05-signed')
print(table(task, results))

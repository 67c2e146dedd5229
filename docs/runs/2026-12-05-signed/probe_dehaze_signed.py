"""Probe: LGA with signed weights, alpha = tanh(score) per edge, on dehazing.

On glass, a probe with these weights (docs/runs/2026-12-05-glass-long/probe_signed.py) closed
about half of LGA's gap to the depthwise stack of its reach at depth 8 and none at depth 4. This
asks the same of the second task where LGA's depth pays and the depthwise stack beats it
(docs/runs/2026-12-05-dehaze-dwconv/): the dehazing base with an LGA2d of 4 or 8 layers whose
per-edge normaliser is tanh (out-of-map neighbours weigh zero), at ablate_lga.py part d's budget,
3 seeds, the block drawn last (paired with the base and with part d's LGA rows). No library
option does this: the probe swaps the normaliser that LGA2d's grid kernel imports, in this
process only, and asks for normalize='sigmoid'.
Usage: probe_dehaze_signed.py ROW... with ROW tanh4, tanh8 or part d's own 'none'."""
import sys

import torch

torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from ablate_lga import DEHAZE_BATCH, DehazeDepthTask  # noqa: E402
from experiment import Budget, run, table  # noqa: E402
import dehaze  # noqa: E402

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

"""Probe: the reach-matched rival on dehazing. The dehazing base with the depthwise 3x3 stack of
examples/segment_glass.py (LGA2d's stack with a fixed depthwise filter in place of its attention:
the same reach and about its parameters) as its block at 1/4 resolution, drawn last (paired with
the base), at ablate_lga.py part d's budget, 3 seeds; against LGA at 4 and 8 layers there.
Usage: probe_dehaze_dwconv.py ROW... with ROW dwconv4, dwconv8 or part d's own 'none'."""
import sys
import torch
torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from ablate_lga import DEHAZE_BATCH, DehazeDepthTask  # noqa: E402
from experiment import Budget, run, table  # noqa: E402
from segment_glass import DepthwiseStack  # noqa: E402
import dehaze  # noqa: E402


class Probe(DehazeDepthTask):
    name = 'probe-dehaze-dwconv-' + '-'.join(a.replace(' ', '') for a in sys.argv[1:])

    def __init__(self):
        super().__init__(2000, 200)
        self.rows = {**self.rows, **{f'dwconv{d}': f'dehaze: depthwise 3x3 stack, {d} layers '
                                     f'(LGA-{d} without attention)' for d in (4, 8)}}

    def build(self, row):
        if not row.startswith('dwconv'):
            return super().build(row)
        model = super().build('none')
        c = model.enc3[-1][0].out_channels
        model.context = DepthwiseStack(c, int(row[len('dwconv'):]))
        return model


task = Probe()
budget = Budget(300, DEHAZE_BATCH, (0, 1, 2), warmup=dehaze.WARMUP)
results, _, _ = run(task, sys.argv[1:], budget, out='/work/main/docs/runs/2026-12-05-dehaze-dwconv')
print(table(task, results))

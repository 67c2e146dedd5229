"""Probe: LGA with 8 heads (of 4 channels on the cortex; of C/8 on dehazing) instead of one, on
the other tasks where LGA's context pays: the demo's cortex views (LGA.for_points, 4 layers,
the demo's full budget) and dehazing (8 layers, ablate_lga.py part d's budget). 3 seeds, the
block drawn after the base's weights, so each row pairs with that task's one-head LGA row.
With 'tanh', each edge's weight is tanh(score) (tanh_weights.py, this process only).
Usage: probe_heads.py cortex|dehaze [tanh]"""
import sys

import torch

torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
sys.path.insert(0, '/work/main/docs/runs/2026-12-05-signed')
from experiment import Budget, run, table  # noqa: E402

from graphattn import LGA, LGA2d  # noqa: E402
from tanh_weights import use_tanh_weights  # noqa: E402

HEADS = 8
SIGNED = sys.argv[2:] == ['tanh']
if SIGNED:
    use_tanh_weights()
NORMALIZE = 'sigmoid' if SIGNED else 'softmax'      # tanh replaces the sigmoid
SUFFIX, LABEL = ('-tanh', ', weights tanh(score)') if SIGNED else ('', '')

if sys.argv[1] == 'cortex':
    import segment_cortex as sc
    from models import PointSegNet

    class Probe(sc.CortexTask):
        name = 'probe-cortex-lga-h8' + SUFFIX

        def __init__(self):
            super().__init__()
            self.rows = {**self.rows, 'lga-h8': f'probe: base + LGA, {HEADS} heads{LABEL}'}

        def build(self, r):
            if r != 'lga-h8':
                return super().build(r)
            return PointSegNet(lambda w: LGA.for_points(w, num_layers=4, fuse=True, heads=HEADS,
                                                        normalize=NORMALIZE),
                               num_classes=sc.NUM_CLASSES)
    task, row, budget = Probe(), 'lga-h8', Budget(300, 8, (0, 1, 2))
else:
    import dehaze
    from ablate_lga import DEHAZE_BATCH, DehazeDepthTask

    class Probe(DehazeDepthTask):
        name = 'probe-dehaze-lga8-h8' + SUFFIX

        def __init__(self):
            super().__init__(2000, 200)
            self.rows = {**self.rows,
                         'lga8-h8': f'dehaze: probe: LGA, 8 layers, {HEADS} heads{LABEL}'}

        def build(self, r):
            if r != 'lga8-h8':
                return super().build(r)
            model = super().build('lga x8')   # part d's LGA-8 row, its block replaced last
            model.context = LGA2d(model.context.in_channels, num_layers=8, fuse=True,
                                  heads=HEADS, normalize=NORMALIZE)
            return model
    task, row = Probe(), 'lga8-h8'
    budget = Budget(300, DEHAZE_BATCH, (0, 1, 2), warmup=dehaze.WARMUP)

results, _, _ = run(task, [row], budget, out='/work/main/docs/runs/2026-12-05-signed')
print(table(task, results))

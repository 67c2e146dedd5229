"""Probe: which part of the LGA block costs the collage network ~1 mIoU at the full budget?
Rows: LGA2d variants in the demo's SegNet (block drawn last), the demo's full budget, 3 seeds."""
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from experiment import Budget, run, table
from segment_collages import CollageTask
from graphattn import LGA2d

VARIANTS = {'lga1': dict(num_layers=1), 'lga8': dict(num_layers=8),
            'lga4-nonorm': dict(num_layers=4, norm='none'),
            'lga4-0.2': dict(num_layers=4, residual=False, norm='none', output_init='default'),
            'lga4-batch': dict(num_layers=4, norm='batch')}

class Probe(CollageTask):
    name = 'probe-' + '-'.join(sys.argv[1:])
    rows = {**CollageTask.rows, **{k: f'base + LGA {k}' for k in VARIANTS}}
    def build(self, row):
        if row not in VARIANTS:
            return super().build(row)
        model = super().build('none')
        model.context = LGA2d(model.enc3[-1][0].out_channels, fuse=True, **VARIANTS[row])
        return model

results, _, _ = run(Probe(4000, 1000), sys.argv[1:], Budget(900, 32, (0, 1, 2)),
                    out='/work/main/outputs/probe')
print(table(Probe(4000, 1000), results))

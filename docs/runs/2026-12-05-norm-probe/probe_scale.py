"""Probe: a learned scale on each LGA layer's residual update (x + gamma * conv(norm(x))),
with the default LayerNorm, on the collages and the cortex, paired with the base (demo budgets).
ReZero: one scalar per layer, initialised at 0; LayerScale: one per channel, initialised at 0.1.
The scale is a forward hook on each LGAConv (no library change). Usage: probe_scale.py collages|cortex rezero|layerscale"""
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from experiment import Budget, run, table
from graphattn import LGA, LGA2d

task_name, form = sys.argv[1], sys.argv[2]
OUT = '/work/main/outputs/probe'


def scaled(block):
    """Each layer's update times a learned gamma (the residual sum is the stack's)."""
    for conv in block.convs:
        c = conv.out_channels * (conv.heads if conv.concat else 1)
        init = torch.zeros(1) if form == 'rezero' else torch.full((c,), 0.1)
        conv.gamma = torch.nn.Parameter(init)
        conv.register_forward_hook(lambda m, args, out: out * m.gamma)
    return block


if task_name == 'collages':
    from segment_collages import CollageTask

    class Probe(CollageTask):
        name = f'probe-collages-{form}'
        rows = {**CollageTask.rows, form: f'base + LGA, {form}'}
        def build(self, row):
            if row != form:
                return super().build(row)
            model = super().build('none')
            model.context = scaled(LGA2d(model.enc3[-1][0].out_channels, fuse=True, num_layers=4))
            return model
    task = Probe(4000, 1000)
    budget = Budget(900, 32, (0, 1, 2))
else:
    import segment_cortex as sc
    from models import PointSegNet

    class Probe(sc.CortexTask):
        name = f'probe-cortex-{form}'
        def __init__(self):
            super().__init__()
            self.rows = {**self.rows, form: f'base + LGA, {form}'}
        def build(self, row):
            if row != form:
                return super().build(row)
            return PointSegNet(lambda w: scaled(LGA.for_points(w, num_layers=4, fuse=True)),
                               num_classes=sc.NUM_CLASSES)
    task = Probe()
    budget = Budget(300, 8, (0, 1, 2))

results, _, _ = run(task, [form], budget, out=OUT)
print(table(task, results))

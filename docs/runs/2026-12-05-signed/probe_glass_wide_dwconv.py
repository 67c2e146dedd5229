"""Probe: the depthwise stack at depth 8 with LGA-8-with-8-heads' parameters, on glass at 1,500
steps (the rival of the same reach and size for probe_glass_heads.py's rows).

LGA2d(32, num_layers=8, heads=8) has 31,104 parameters, the depthwise stack of the same reach
(`DepthwiseStack` in examples/segment_glass.py) 14,656. Here each layer's pointwise map becomes
a two-layer MLP through 48 channels (C -> 48 -> C, a ReLU between: an inverted bottleneck, as in
MobileNetV2 or ConvNeXt), which brings the block to 31,424 parameters (+1.0%); the depthwise
filters, the norms, the residual updates and the [I | 0] fusion are the stack's. Same budget and
pairing as ../2026-12-05-glass-long/ (the block drawn after the base's weights). At depth 4 the
same MLP gives 17,280 parameters against 8-head LGA-4's 17,120 (+0.9%).
Usage: probe_glass_wide_dwconv.py [depth, default 8]"""
import sys

import torch
from torch import nn

torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from experiment import Budget, run, table  # noqa: E402
import segment_glass as sg  # noqa: E402

DEPTH = int(sys.argv[1]) if len(sys.argv) > 1 else 8
ROW, HIDDEN = f'dwconv{DEPTH}-wide', 48
PARAMS = {4: 17_280, 8: 31_424}


class WideDepthwiseStack(sg.DepthwiseStack):
    def __init__(self, channels: int, num_layers: int, hidden: int):
        super().__init__(channels, num_layers)
        self.pointwise = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(),
                          nn.Conv2d(hidden, channels, 1))
            for _ in range(num_layers))


class Probe(sg.GlassTask):
    rows = {**sg.GlassTask.rows,
            ROW: f'probe: the depthwise stack, depth {DEPTH}, pointwise MLP through {HIDDEN} '
                 f'channels (LGA-{DEPTH}-with-8-heads\' size)'}

    def build(self, r):
        if r != ROW:
            return super().build(r)
        model = sg.GlassNet('base')
        model.context = WideDepthwiseStack(32, DEPTH, HIDDEN)
        return model


block = WideDepthwiseStack(32, DEPTH, HIDDEN)
assert sum(p.numel() for p in block.parameters()) == PARAMS[DEPTH]
x = torch.randn(2, 32, 6, 6)
assert torch.allclose(block(x), x, atol=1e-6)   # identity start

task = Probe(2000, 300, f'probe-glass-{ROW}', background=False)
results, _, _ = run(task, [ROW], Budget(1500, 32, (0, 1, 2)),
                    out='/work/main/docs/runs/2026-12-05-signed')
print(table(task, results))

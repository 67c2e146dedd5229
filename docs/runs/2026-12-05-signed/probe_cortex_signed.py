"""Probe: LGA with signed weights, alpha = tanh(score) per edge, on the demo's cortex task.

The cortex is the point-cloud task where LGA's context pays (base 54.4, LGA 62.9 mIoU at the
demo's full budget) and where a rival of its reach without attention, 4 more EdgeConv layers,
beats it (66.9; docs/runs/2026-12-05-cortex-rival/). This asks whether signed weights close that
gap: LGA.for_points(num_layers=4) of the given score reading with each edge's weight tanh(score)
(padded neighbours weigh zero), at the demo's full budget, 3 seeds, paired with the base (the
block is drawn last). No library option does this: the probe swaps the two per-edge normalisers
that LGAConv imports (the edge path's, which the cortex network takes, and the table path's), in
this process only, and asks for normalize='sigmoid'.
Usage: probe_cortex_signed.py center|neighbor"""
import sys

import torch

torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from experiment import Budget, run, table  # noqa: E402
import segment_cortex as sc  # noqa: E402
from models import PointSegNet  # noqa: E402

import graphattn.lga_conv as lga_conv  # noqa: E402
from graphattn import LGA  # noqa: E402
from graphs import knn_graph  # noqa: E402

_dense = lga_conv.normalize_dense
_edges = lga_conv.normalize_edges


def signed_dense(scores, valid, normalize):
    if normalize == 'softmax':
        return _dense(scores, valid, normalize)
    return torch.where(valid, torch.tanh(scores), scores.new_zeros(()))


def signed_edges(scores, index, ptr, num_nodes, normalize):
    if normalize == 'softmax':
        return _edges(scores, index, ptr, num_nodes, normalize)
    return torch.tanh(scores)


lga_conv.normalize_dense = signed_dense
lga_conv.normalize_edges = signed_edges

score = sys.argv[1]
row = f'lga-{score}-tanh'

# The swap is live on the path the network takes (kNN edges with offsets as edge_attr): some
# weights of a fresh layer are negative.
_layer = LGA.for_points(8, num_layers=1, score=score, normalize="sigmoid")
_pos = torch.randn(40, 3)
_edge_index = knn_graph(_pos, 6, loop=True)
_offsets = _pos[_edge_index[0]] - _pos[_edge_index[1]]
_, _att = _layer(torch.randn(40, 8), _edge_index, _offsets, return_attention_weights=True)
_values = _att[0][1] if isinstance(_att[0], tuple) else _att[0]
assert bool((_values < 0).any()), 'the tanh swap did not take'


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

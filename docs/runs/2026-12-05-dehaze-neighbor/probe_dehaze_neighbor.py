"""Probe: score='neighbor' (the candidate default) on dehazing, ablation d's budget (300 steps,
3 seeds, each row drawn from the base's weights at its seed, so paired with ablation d's rows).
Usage: probe_dehaze_neighbor.py ROW... with ROW one of none, 'lga x4', 'lga x8'."""
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, '/work/main/examples')
from ablate_lga import DEHAZE_BATCH, DehazeDepthTask
from experiment import Budget, run, table
import dehaze


class Probe(DehazeDepthTask):
    name = 'probe-dehaze-neighbor'

    def __init__(self):
        super().__init__(2000, 200, score='neighbor')


task = Probe()
budget = Budget(300, DEHAZE_BATCH, (0, 1, 2), warmup=dehaze.WARMUP)
results, _, _ = run(task, sys.argv[1:], budget, out='/work/main/outputs/probe-neighbor')
print(table(task, results))

"""The LGA ablation script runs end to end at tiny size and writes numbers, not strings."""
import json
import os
import subprocess
import sys

from conftest import require_data

import datasets

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'examples')


def test_ablation_script_tiny_run(tmp_path):
    require_data(datasets.load_fashion_mnist, 'test')
    done = subprocess.run([sys.executable, 'ablate_lga.py', '--tiny', '--out', str(tmp_path),
                           '--plot'], cwd=EXAMPLES, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / 'ablations.json').read_text())
    rows = {r['model']: r for r in result['rows']}
    for name in ('base (no block)', 'LGA, score=center', 'LGA, score=neighbor',
                 'LGA, score=pair', 'LGA, score=center, 8 layers'):
        assert isinstance(rows[name]['miou_mean'], float), name
    forms = [r['loss_form'] for r in result['rows'] if r['part'] == 'c']
    assert forms == ['divergence', 'contrastive', 'attention']
    assert (tmp_path / 'lga_depth.png').stat().st_size > 0

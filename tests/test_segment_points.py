"""examples/segment_points.py: the point-cloud tutorial runs end to end (--tiny), and its
models are what the table's rows say they are."""
import json
import os
import subprocess
import sys
import warnings

import pytest
import torch
from conftest import require_data

import datasets
import graphs
from graphattn import LGA, LatentGNN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, 'examples')


def test_tiny_run_writes_the_table(tmp_path):
    require_data(datasets.load_cortex, 'left')
    out = tmp_path / 'points.json'
    # this checkout's packages first (an installed graphattn may be another version)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get('PYTHONPATH', '')]),
               OMP_NUM_THREADS='1')
    done = subprocess.run([sys.executable, 'segment_points.py', '--tiny', '--out', str(out)],
                          cwd=EXAMPLES, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())['rows']
    names = [row['model'] for row in rows]
    assert names[0] == 'majority class' and len(names) == 6
    assert any('LatentGNN norm=' in name for name in names)
    for row in rows:   # mIoU and the four per-class IoUs
        assert set(row) == {'model', 'mIoU (%)', 'paralimbic', 'heteromodal', 'unimodal',
                            'idiotypic'}
    assert '| majority class | 8.9 |' in done.stdout   # the heteromodal share of the test labels


@pytest.fixture
def segment_points():
    import segment_points   # conftest puts examples/ on the path
    return segment_points


def _crops(n=2, points=64):
    g = torch.Generator().manual_seed(0)
    pos = [torch.randn(points, 3, generator=g) for _ in range(n)]
    return graphs.collate_clouds(pos, y=[torch.randint(4, (points,)) for _ in pos], k=8)


@pytest.mark.parametrize('row', ['position', 'base', 'lga', 'latentgnn', 'latentgnn-batch',
                                 'lga-neighbor', 'lga-pair'])
def test_every_row_segments_a_batch_of_crops(segment_points, row):
    torch.manual_seed(0)
    model = segment_points.Segmenter(row, width=8)
    batch = _crops()
    with warnings.catch_warnings():
        warnings.simplefilter('error')   # e.g. LGA's warning on nodes without self-loops
        logits = model(batch)
    assert logits.shape == (128, 4)
    logits.sum().backward()
    if row.startswith('lga'):
        assert isinstance(model.context, LGA)
        assert model.context.score == (row.split('-')[1] if '-' in row else 'center')
    if row.startswith('latentgnn'):
        assert isinstance(model.context, LatentGNN)
        assert model.context.norm == ('batch' if row == 'latentgnn-batch' else 'layer')


def test_crops_are_predicted_independently(segment_points):
    """A crop's prediction does not depend on the other crops of its batch (eval mode),
    so predict_by_crops's batching is free to choose."""
    torch.manual_seed(0)
    model = segment_points.Segmenter('latentgnn', width=8).eval()
    batch = _crops(3)
    with torch.no_grad():
        together = model(batch)
        alone = torch.cat([model(graphs.collate_clouds([data.pos], k=8))
                           for data in batch.to_data_list()])
    torch.testing.assert_close(together, alone)

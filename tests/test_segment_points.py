"""examples/segment_points.py: the point-cloud tutorial runs end to end (--tiny), and its
models are what the table's rows say they are."""
import json
import math
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
    saved = json.loads(out.read_text())
    assert saved['config']['points'] == 512 and saved['config']['seeds'] == [0]
    rows = saved['rows']
    names = [row['model'] for row in rows]
    assert names[0] == 'majority class' and len(names) == 6
    assert any('LatentGNN norm=' in name for name in names)
    for row in rows:   # mIoU and the four per-class IoUs, one number per seed
        for key in ('miou', 'paralimbic', 'heteromodal', 'unimodal', 'idiotypic'):
            assert len(row[key]) == 1 and (math.isnan(row[key][0]) or 0 <= row[key][0] <= 100)
    table = (tmp_path / 'points.md').read_text()   # the table beside the JSON
    assert table.splitlines()[0] == ('| model | mIoU (%) | paralimbic | heteromodal | '
                                     'unimodal | idiotypic |')
    assert '| majority class | 8.9 |' in done.stdout   # the heteromodal share of the test labels
    assert '| majority class | 8.9 |' in table


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
    model = segment_points.make_model(row, width=8)
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
    model = segment_points.make_model('latentgnn', width=8).eval()
    batch = _crops(3)
    with torch.no_grad():
        together = model(batch)
        alone = torch.cat([model(graphs.collate_clouds([data.pos], k=8))
                           for data in batch.to_data_list()])
    torch.testing.assert_close(together, alone)


def _toy_cloud(n, seed):
    g = torch.Generator().manual_seed(seed)
    return datasets.Cortex(pos=torch.randn(n, 3, generator=g) * 40,
                           faces=torch.zeros(0, 3, dtype=torch.long),
                           labels=torch.randint(-1, 4, (n,), generator=g), hemisphere='toy')


@pytest.mark.parametrize('rotation', ['up', 'full', 'none'])
def test_crops_are_posed_by_graphs_random_pose(segment_points, rotation):
    """A crop is centred, divided by the 50 mm radius, then turned: about the up axis
    (heights kept), any way, or not at all; distances shrink by the radius only."""
    task = segment_points.PointsTask(rotation=rotation)
    pos = torch.randn(40, 3, generator=torch.Generator().manual_seed(1)).double() * 30 + 7
    posed = task.pose(pos, torch.Generator().manual_seed(2))
    centred = (pos - pos.mean(0)) / 50.0
    torch.testing.assert_close(torch.cdist(posed, posed), torch.cdist(centred, centred))
    if rotation == 'none':
        assert torch.equal(posed, centred)
    else:
        assert not torch.allclose(posed, centred)
        assert torch.allclose(posed[:, 2], centred[:, 2]) == (rotation == 'up')
    with pytest.raises(ValueError, match="unknown rotation 'sideways'"):
        segment_points.PointsTask(rotation='sideways')


def test_run_scores_every_row_and_repeats_at_a_seed(segment_points, tmp_path):
    """Through experiment.run on toy clouds: the majority row, then each trained row's
    mIoU and per-class IoU per seed, the same at the same seed."""
    import experiment
    task = segment_points.PointsTask(points=48, k=4, width=8, name='toy_points')
    rows = ['position', 'base', 'lga', 'latentgnn']
    budget = experiment.Budget(2, 2, seeds=(0, 0), warmup=0.3)
    results, _, _ = experiment.run(task, rows, budget, str(tmp_path),
                                   data=(_toy_cloud(200, 1), _toy_cloud(150, 2)),
                                   say=lambda *a, **k: None)
    assert [r['key'] for r in results] == ['majority', *rows]
    for row in results[1:]:
        for key in ('miou', *segment_points.CLASSES):
            a, b = row[key]
            assert a == b or (math.isnan(a) and math.isnan(b)), (row['key'], key)
        # mIoU is the mean over the classes present (NaN: absent from targets and predictions)
        ious = [row[c][0] for c in segment_points.CLASSES if not math.isnan(row[c][0])]
        assert row['miou'][0] == pytest.approx(sum(ious) / len(ious))
    assert (tmp_path / 'toy_points.json').exists() and (tmp_path / 'toy_points.md').exists()
    table = experiment.table(task, results)
    assert table.splitlines()[2].startswith('| majority class | ')

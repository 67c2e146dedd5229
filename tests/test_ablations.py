"""The LGA ablations (examples/ablate_lga.py): each row's model and loss, determinism through
experiment.run, a tiny end-to-end run, and the merge of the committed older result files."""
import glob
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import require_data

import datasets
import experiment
from ablate_lga import AblationTask, DehazeDepthTask, Variant, lga_loss_on, lga_outputs
from graphattn import LGA2d, LGALoss
from models import SegNet

ROOT = os.path.dirname(os.path.dirname(__file__))
EXAMPLES = os.path.join(ROOT, 'examples')


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_collages(n, size=32, seed=0):
    """Stand-ins for collages (images, labels): the tests here need shapes, not Fashion-MNIST."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g), torch.randint(0, 11, (n, size, size),
                                                                     generator=g)


def test_a_variant_is_the_old_scripts_model():
    """SegNet('lga') with its block replaced right after the seed: the old script's draw."""
    task = AblationTask()
    key = task.add(Variant(dict(score='pair', heads=4), num_layers=2))
    torch.manual_seed(3)
    model = task.build(key)
    torch.manual_seed(3)
    old = SegNet('lga')
    old.context = LGA2d(64, num_layers=2, fuse=True, score='pair', heads=4)
    assert isinstance(model.context, LGA2d) and len(model.context.convs) == 2
    assert model.state_dict().keys() == old.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                  old.state_dict().values()))
    # None keeps SegNet's own block: the base, or the demo's LGA (part w)
    assert task.build(task.add(Variant())).context_name == 'none'
    demo = task.build(task.add(Variant(context='lga', loss_form='divergence', weight=0.3)))
    assert demo.context_name == 'lga'


def test_equal_variants_share_a_key_and_different_ones_do_not():
    assert Variant(dict(score='center')).key == Variant(dict(score='center'), num_layers=4).key
    keys = {Variant().key, Variant(dict(score='center')).key,
            Variant(dict(score='center'), num_layers=8).key,
            Variant(dict(score='center'), loss_form='divergence', weight=0.1).key,
            Variant(dict(score='center'), loss_form='divergence', weight=1.0).key,
            Variant(dict(score='center'), loss_form='attention', weight=1.0).key,
            Variant(context='lga', loss_form='divergence', weight=1.0).key}
    assert len(keys) == 7


@pytest.mark.parametrize('form', ['divergence', 'contrastive', 'attention'])
def test_the_loss_is_cross_entropy_plus_weight_times_lga_loss(form, one_thread):
    task = AblationTask(temperature=1.0)
    images, labels = random_collages(2)
    plain = task.add(Variant(dict(score='center')))
    weighted = task.add(Variant(dict(score='center'), loss_form=form, weight=0.7))
    dropped = task.add(Variant(dict(score='center'), loss_form=form, weight=0.0))
    torch.manual_seed(0)
    model = task.build(weighted).eval()
    with torch.no_grad():
        logits, extra = lga_outputs(model, images, form)
        assert torch.allclose(logits, model(images))           # the same network either way
        by_hand = F.cross_entropy(logits, labels) + 0.7 * LGALoss(form=form)(extra, labels)
        assert float(task.loss(model, weighted, images, labels)) == pytest.approx(
            float(by_hand), rel=1e-6)
        # no form, or weight 0: the plain cross-entropy (the term dropped, not multiplied)
        ce = float(F.cross_entropy(model(images), labels))
        assert float(task.loss(model, plain, images, labels)) == pytest.approx(ce, rel=1e-6)
        assert float(task.loss(model, dropped, images, labels)) == pytest.approx(ce, rel=1e-6)
        assert float(by_hand) != pytest.approx(ce, rel=1e-6)


def test_test_lga_loss_is_the_mean_over_batches(one_thread):
    images, labels = random_collages(5)
    task = AblationTask(temperature=0.5)
    torch.manual_seed(0)
    model = task.build(task.add(Variant(context='lga', loss_form='divergence', weight=1.0)))
    criterion = LGALoss(temperature=0.5)
    model.eval()
    with torch.no_grad():
        parts = [float(criterion(model(images[i:i + 2], return_latent=True)[1],
                                 labels[i:i + 2])) for i in (0, 2, 4)]
    assert lga_loss_on(model, (images, labels), criterion, 'divergence', batch_size=2) == \
        pytest.approx(sum(parts) / 3, rel=1e-6)


def test_rows_run_deterministically_through_experiment(one_thread):
    """Every row's scores at two seeds; the same run twice gives the same numbers."""
    task = AblationTask(temperature=0.5)
    keys = [task.add(v) for v in (Variant(), Variant(dict(score='neighbor'), num_layers=2),
                                  Variant(dict(score='center'), loss_form='attention',
                                          weight=1.0),
                                  Variant(context='lga', loss_form='divergence', weight=0.3))]
    data = (random_collages(8), random_collages(4, seed=1))
    budget = experiment.Budget(2, 2, (0, 1))
    first, second = (experiment.run(task, keys, budget, data=data, say=lambda *a, **k: None)[0]
                     for _ in range(2))
    assert [r['key'] for r in first] == ['majority'] + keys
    for a, b in zip(first, second):
        assert len(a['miou']) == (1 if a['key'] == 'majority' else 2)
        for metric in ('miou', 'pixel_acc', 'test_lga_loss'):
            assert a.get(metric) == b.get(metric), (a['key'], metric)
    assert all('test_lga_loss' in r for r in first[3:])
    assert 'test_lga_loss' not in first[1]
    assert first[1]['miou'][0] != first[1]['miou'][1]      # the seeds differ


def test_dehaze_depth_rows_replace_the_block(one_thread):
    task = DehazeDepthTask(2, 1, score='neighbor')
    assert list(task.depths) == ['none', 'lga x1', 'lga x2', 'lga x4', 'lga x8']
    assert task.display('none') == 'dehaze: base (no block)'
    assert task.build('none').context_name == 'none'
    block = task.build('lga x2').context
    assert isinstance(block, LGA2d) and len(block.convs) == 2


def test_ablation_script_tiny_run(tmp_path):
    require_data(datasets.load_fashion_mnist, 'test')
    done = subprocess.run([sys.executable, 'ablate_lga.py', '--tiny', '--weights', '0.1', '1',
                           '--out', str(tmp_path), '--plot'],
                          cwd=EXAMPLES, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / 'ablations.json').read_text())
    assert result['task'] == 'ablations' and result['config']['parts'] == 'abcd'
    rows = {r['model']: r for r in result['rows']}
    for name in ('trivial: all background', 'base (no block)', 'LGA, score=center',
                 'LGA, score=neighbor', 'LGA, score=pair', 'LGA, score=center, 8 layers'):
        assert isinstance(rows[name]['miou'][0], float), name
    # part (b)'s 4 layers is part (a)'s model: trained once, the same numbers
    assert rows['LGA, score=center, 4 layers']['miou'] == rows['LGA, score=center']['miou']
    part_c = [r for r in result['rows'] if r['part'] == 'c']
    assert [r['loss_form'] for r in part_c] == ['divergence', 'contrastive', 'attention']
    for r in part_c:   # the weight with the best validation mIoU (the first on a tie)
        validation = {float(w): v for w, v in r['validation_miou'].items()}
        assert sorted(validation) == [0.1, 1.0]
        assert r['weight'] == max(validation, key=validation.get)
    dehazing = [r for r in result['rows'] if r['part'] == 'd']
    assert [r['num_layers'] for r in dehazing] == [None, 0, 1, 2, 4, 8]
    assert all(isinstance(r['psnr'][0], float) for r in dehazing)
    assert (tmp_path / 'lga_depth.png').stat().st_size > 0
    assert '| c | LGA + LGALoss(attention)' in (tmp_path / 'ablations.md').read_text()


def test_replot_reads_the_committed_older_files(tmp_path):
    """docs/runs/ablations/ predates experiment.py: every score under 'miou', PSNR too."""
    files = sorted(glob.glob(os.path.join(ROOT, 'docs', 'runs', 'ablations', 'part*.json')))
    assert len(files) == 3
    done = subprocess.run([sys.executable, 'ablate_lga.py', '--replot', *files,
                           '--out', str(tmp_path)],
                          cwd=EXAMPLES, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert '| a | base (no block) | 54.20 ± 2.25 % mIoU |' in done.stdout    # docs/lga.md
    assert '| d | dehaze: base (no block) | 19.45 ± 0.04 dB PSNR |' in done.stdout
    merged = json.loads((tmp_path / 'ablations_merged.json').read_text())
    assert len(merged['rows']) == len({r['model'] for r in merged['rows']})
    assert (tmp_path / 'lga_depth.png').stat().st_size > 0

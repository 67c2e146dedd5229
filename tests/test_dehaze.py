"""The dehazing tutorial: haze model, determinism, train/test split by photo, a tiny run."""
import json
import math

import numpy as np
import pytest
import torch
from conftest import require_data

import datasets
from datasets import DEHAZE_TEST_PHOTOS, DEHAZE_TRAIN_PHOTOS, HazyCrops, add_haze


@pytest.fixture(scope='module')
def splits():
    require_data(datasets.load_photo, 'rocket')
    return HazyCrops('train', 60, size=32), HazyCrops('test', 60, size=32)


def test_full_transmission_gives_the_clean_image():
    clean = torch.rand(2, 3, 5, 7)
    depth = torch.rand(2, 5, 7)
    hazy, t = add_haze(clean, depth, 0.85, 0.0)          # beta = 0: t = 1 everywhere
    assert torch.equal(t, torch.ones_like(depth))
    assert torch.equal(hazy, clean)
    hazy, t = add_haze(clean, torch.zeros(2, 5, 7), 0.85, 1.7)   # depth 0: t = 1 too
    assert torch.equal(hazy, clean)


def test_zero_transmission_gives_the_airlight():
    hazy, t = add_haze(torch.rand(3, 4, 4), torch.ones(4, 4), 0.75, 200.0)
    assert float(t.max()) < 1e-80 or float(t.max()) == 0.0
    assert torch.allclose(hazy, torch.full_like(hazy, 0.75), atol=1e-7)


def test_hand_computed_pixel():
    # J = (0.2, 0.5, 0.8), d = 0.5, A = 0.9, beta = 1.5: t = exp(-0.75) = 0.4723665527...
    # I = J t + A (1 - t), computed by hand (math.exp) outside the code under test.
    clean = torch.zeros(3, 4, 5, dtype=torch.float64)
    clean[:, 1, 2] = torch.tensor([0.2, 0.5, 0.8], dtype=torch.float64)
    depth = torch.zeros(4, 5, dtype=torch.float64)
    depth[1, 2] = 0.5
    hazy, t = add_haze(clean, depth, 0.9, 1.5)
    assert float(t[1, 2]) == pytest.approx(0.4723665527410147, abs=1e-12)
    expected = [0.5693434130812898, 0.7110533789035942, 0.8527633447258987]
    assert hazy[:, 1, 2].tolist() == pytest.approx(expected, abs=1e-12)
    # a zero-depth pixel is untouched, even where the clean image is black
    assert hazy[:, 0, 0].tolist() == [0.0, 0.0, 0.0]


def test_samples_follow_the_scattering_model(splits):
    train, _ = splits
    for index in range(0, 60, 7):
        s = train.sample(index)
        # recompute the haze in numpy from the sample's own parameters
        t = np.exp(-s.beta * s.depth.double().numpy())
        expected = s.clean.double().numpy() * t + s.airlight * (1 - t)
        assert np.allclose(s.hazy.double().numpy(), expected, atol=1e-6)
        assert torch.allclose(s.transmission.double(), torch.from_numpy(t), atol=1e-6)
        assert 0.7 <= s.airlight <= 1.0 and 0.8 <= s.beta <= 2.0
        assert float(s.depth.min()) == pytest.approx(0.1, abs=1e-6)
        assert float(s.depth.max()) == pytest.approx(1.0, abs=1e-6)
        # haze only brightens towards A: between the clean pixel and the airlight
        lo = torch.minimum(s.clean, torch.tensor(s.airlight)) - 1e-6
        hi = torch.maximum(s.clean, torch.tensor(s.airlight)) + 1e-6
        assert bool(((s.hazy >= lo) & (s.hazy <= hi)).all())


def test_synthetic_depth_is_far_at_the_top_on_average():
    g = torch.Generator().manual_seed(0)
    depths = torch.stack([datasets.synthetic_depth(48, g) for _ in range(40)])
    top, bottom = depths[:, :4].mean(), depths[:, -4:].mean()
    assert float(top) > float(bottom) + 0.2


def test_crops_are_pixels_of_the_named_photo(splits):
    for ds in splits:
        for index in (0, 11, 59):
            s = ds.sample(index)
            row, col, size = s.box
            photo = datasets.load_photo(s.photo)
            assert torch.equal(s.clean, photo[:, row:row + size, col:col + size])


def test_no_photo_is_in_both_splits(splits):
    train, test = splits
    assert not set(DEHAZE_TRAIN_PHOTOS) & set(DEHAZE_TEST_PHOTOS)
    train_used = {train.sample(i).photo for i in range(len(train))}
    test_used = {test.sample(i).photo for i in range(len(test))}
    assert train_used <= set(DEHAZE_TRAIN_PHOTOS) and test_used <= set(DEHAZE_TEST_PHOTOS)
    assert len(train_used) >= 5 and len(test_used) == len(DEHAZE_TEST_PHOTOS)
    # and the photos themselves differ (not one image under two names)
    sizes = {name: tuple(datasets.load_photo(name).shape) for name in datasets.DEHAZE_PHOTOS}
    for a in DEHAZE_TRAIN_PHOTOS:
        for b in DEHAZE_TEST_PHOTOS:
            pa, pb = datasets.load_photo(a), datasets.load_photo(b)
            if sizes[a] == sizes[b]:
                assert not torch.equal(pa, pb), (a, b)


def test_samples_are_a_function_of_seed_split_index(splits):
    train, _ = splits
    again = HazyCrops('train', 60, size=32)
    other_seed = HazyCrops('train', 60, size=32, seed=1)
    for index in (0, 5, 42):
        a, b, c = train.sample(index), again.sample(index), other_seed.sample(index)
        assert torch.equal(a.hazy, b.hazy) and torch.equal(a.depth, b.depth)
        assert (a.photo, a.box, a.airlight, a.beta) == (b.photo, b.box, b.airlight, b.beta)
        assert not torch.equal(a.hazy, c.hazy)
    assert not torch.equal(train.sample(0).depth, train.sample(1).depth)
    with pytest.raises(IndexError):
        train.sample(60)


def test_tiny_end_to_end_run(splits, tmp_path):
    import dehaze
    threads = torch.get_num_threads()
    try:  # one thread: on a busy 2-core machine, 2 threads spin against each other
        dehaze.main(['--tiny', '--no-progress', '--models', 'none', 'lga', '--threads', '1',
                     '--out', str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    result = json.loads((tmp_path / 'dehaze.json').read_text())
    assert (tmp_path / 'dehaze_examples.png').stat().st_size > 0
    assert '| hazy input (no model) |' in (tmp_path / 'dehaze.md').read_text()
    rows = {r['key']: r for r in result['rows']}
    assert [r['model'] for r in result['rows']] == [dehaze.LABELS[k] for k in ('hazy', 'none',
                                                                              'lga')]
    # the old loop's schedule: OneCycleLR's default warm-up (30%), not the collages' 15%
    assert result['config']['warmup'] == 0.3 and result['config']['steps'] == 3
    assert rows['lga']['params'] > rows['none']['params'] > 0 == rows['hazy']['params']
    for key in ('none', 'lga'):
        assert rows[key]['seeds'] == [0]
        assert all(math.isfinite(v) for v in rows[key]['psnr'] + rows[key]['ssim'])
    # the hazy baseline's PSNR, recomputed by hand from the same test crops
    test = HazyCrops('test', dehaze.SETTINGS['tiny']['test_size'], size=64)
    psnr = [10 * math.log10(1.0 / float(((h.double() - c.double()) ** 2).mean()))
            for h, c in (test[i] for i in range(len(test)))]
    assert rows['hazy']['psnr'][0] == pytest.approx(sum(psnr) / len(psnr), abs=1e-4)


def test_task_runs_deterministically_through_experiment(splits):
    """Every row's scores at two seeds; the same run twice gives the same numbers, and the
    loss is the L1 distance of the prediction to the clean crop."""
    import dehaze
    import experiment
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        task = dehaze.DehazeTask(6, 3, progress=False)
        data = task.make_data()
        budget = experiment.Budget(2, 2, (0, 1), warmup=dehaze.WARMUP)
        runs = [experiment.run(task, ['none', 'lga'], budget, data=data,
                               say=lambda *a, **k: None)[0] for _ in range(2)]
        model = task.build('none')
        hazy, clean = task.sample(data[0], 2, torch.Generator().manual_seed(0))
        with torch.no_grad():
            loss = task.loss(model, 'none', hazy, clean)
            assert float(loss) == pytest.approx(float((model(hazy) - clean).abs().mean()))
    finally:
        torch.set_num_threads(threads)
    first, second = runs
    assert [r['key'] for r in first] == ['hazy', 'none', 'lga']
    for a, b in zip(first, second):
        for metric in ('psnr', 'ssim'):
            assert len(a[metric]) == (1 if a['key'] == 'hazy' else 2)
            assert all(math.isfinite(v) for v in a[metric])
            assert a[metric] == b[metric], (a['key'], metric)
    # the seeds differ, so the scores do too
    assert first[1]['psnr'][0] != first[1]['psnr'][1]

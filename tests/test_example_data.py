"""The examples' data pipeline: collage labels, determinism, splits."""
import pytest
import torch
from conftest import require_data

import datasets


def fake_source(n=20):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 28, 28, generator=g)
    images[:, :4] = 0.0  # a blank band, so thresholding matters
    return images, torch.arange(n) % 10


@pytest.fixture(scope='module')
def textures_available():
    require_data(datasets.load_texture, 'brick')


def test_collage_labels_match_pasted_items(textures_available):
    images, classes = fake_source()
    ds = datasets.FashionCollages('train', 8, source=(images, classes), seed=3)
    for i in range(len(ds)):
        c = ds.collage(i)
        assert 3 <= len(c.items) <= 5
        expected = torch.zeros(128, 128, dtype=torch.long)
        pixels = c.image[0].clone()
        background = c.image[0] <= 0.5
        for item, (row, col, side) in zip(c.items, c.boxes):
            scale = side // 28
            patch = images[item].repeat_interleave(scale, 0).repeat_interleave(scale, 1)
            mask = patch > ds.threshold
            expected[row:row + side, col:col + side][mask] = 1 + int(classes[item])
            pixels[row:row + side, col:col + side][mask] = patch[mask]
        assert torch.equal(c.label, expected)
        assert torch.equal(pixels, c.image[0])
        # unlabelled pixels are dimmed texture, in [0, 0.5]
        assert bool(background[c.label == 0].all())


def test_collages_without_overlap_keep_items_apart(textures_available):
    images, classes = fake_source()
    ds = datasets.FashionCollages('train', 12, size=64, items=(2, 4), scales=(1,),
                                  overlap=False, source=(images, classes), seed=5)
    for i in range(len(ds)):
        c = ds.collage(i)
        assert 1 <= len(c.items) <= 4 and len(c.items) == len(c.boxes)
        for a in range(len(c.boxes)):
            for b in range(a):
                (r0, c0, s0), (r1, c1, s1) = c.boxes[a], c.boxes[b]
                assert r0 + s0 <= r1 or r1 + s1 <= r0 or c0 + s0 <= c1 or c1 + s1 <= c0
        # Each item keeps all of its labelled pixels: nothing covers it.
        for item, (row, col, side) in zip(c.items, c.boxes):
            mask = images[item] > ds.threshold
            box = c.label[row:row + side, col:col + side]
            assert bool((box[mask] == 1 + int(classes[item])).all())
            assert torch.equal(c.image[0, row:row + side, col:col + side][mask],
                               images[item][mask])


def test_collages_are_deterministic_and_split_dependent(textures_available):
    source = fake_source()
    a = datasets.FashionCollages('train', 4, source=source, seed=1)
    b = datasets.FashionCollages('train', 4, source=source, seed=1)
    t = datasets.FashionCollages('test', 4, source=source, seed=1)
    for i in range(4):
        assert torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][1], b[i][1])
    assert not torch.equal(a[0][0], t[0][0])


def test_real_fashion_mnist_splits_do_not_overlap():
    train_x, train_y = require_data(datasets.load_fashion_mnist, 'train')
    test_x, test_y = datasets.load_fashion_mnist('test')
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert torch.equal(torch.bincount(train_y), torch.full((10,), 6000))
    # No test image appears in the train split (compare exact pixel hashes).
    def keys(x):
        return set(map(bytes, (x * 255).round().to(torch.uint8).flatten(1).numpy()))
    assert not keys(train_x) & keys(test_x[:2000])
    ds = datasets.FashionCollages('test', 3, source=(test_x, test_y))
    c = ds.collage(0)
    assert all(0 <= i < 10000 for i in c.items)
    assert set(c.label.unique().tolist()) <= set(range(11))


def test_cortex_split_mirrors_the_right_hemisphere():
    left, right = require_data(datasets.cortex_split)
    raw_right = datasets.load_cortex('right')
    assert left.pos.shape == right.pos.shape == (32492, 3)
    assert torch.equal(right.pos[:, 0], -raw_right.pos[:, 0])
    assert torch.equal(right.pos[:, 1:], raw_right.pos[:, 1:])
    # Both hemispheres now lie on the same side (x < 0 for most vertices).
    assert float((left.pos[:, 0] < 0).float().mean()) > 0.95
    assert float((right.pos[:, 0] < 0).float().mean()) > 0.95
    assert set(left.labels.unique().tolist()) == {-1, 0, 1, 2, 3}
    assert not torch.equal(left.pos, right.pos)  # two different real surfaces


def test_missing_data_message_names_the_command(monkeypatch):
    monkeypatch.setattr(datasets, 'FASHION_MNIST_DIRS', ('/nonexistent',))
    with pytest.raises(datasets.MissingDataError, match='apt-get download dataset-fashion-mnist'):
        datasets.load_fashion_mnist('train')
    with pytest.raises(ValueError, match="'split'"):
        datasets.load_fashion_mnist('val')

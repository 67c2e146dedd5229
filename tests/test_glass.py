"""The glass task (examples/glass.py, examples/segment_glass.py): deterministic scenes,
labels, interior, errors; its scores, its runs through experiment.py and its result files."""
import json
import math

import pytest
import torch
from conftest import require_data
from torch import nn

import datasets
import experiment
import segment_glass
from experiment import Budget
from glass import GlassScenes, interior_mask, receptive_field, stack_scenes
from segment_glass import TASK, GlassNet, GlassTask

from graphattn import LGA2d


@pytest.fixture(scope='module')
def items():
    """A few real test items (fast: the scenes below only draw from these)."""
    x, y = require_data(datasets.load_fashion_mnist, 'test')
    return x[:50], y[:50]


def scenes(items, split='test', seed=0, **options):
    options = dict(TASK, seed=seed, source=items, **options)
    return require_data(lambda: GlassScenes(split, 6, **options))


def test_scenes_are_deterministic_per_seed(items):
    a, b = scenes(items), scenes(items)
    for i in range(3):
        sa, sb = a.scene(i), b.scene(i)
        assert torch.equal(sa.image, sb.image) and torch.equal(sa.label, sb.label)
        assert sa.boxes == sb.boxes and sa.items == sb.items
    other = scenes(items, seed=1).scene(0)
    assert not torch.equal(other.image, a.scene(0).image)


def test_train_and_test_photos_are_disjoint():
    assert not set(datasets.DEHAZE_TRAIN_PHOTOS) & set(datasets.DEHAZE_TEST_PHOTOS)


def test_labels_match_the_silhouettes(items):
    ds = scenes(items)
    images, classes = items
    for i in range(len(ds)):
        sc = ds.scene(i)
        s = TASK['size']
        assert sc.image.shape == (3, s, s) and 0 <= sc.image.min() <= sc.image.max() <= 1
        assert torch.equal(sc.label > 0, sc.instance > 0)
        assert len(sc.boxes) >= 1
        for k, (item, (row, col, side)) in enumerate(zip(sc.items, sc.boxes)):
            silhouette = ds.silhouette(item, side)
            box_instance = sc.instance[row:row + side, col:col + side]
            assert torch.equal(box_instance == k + 1, silhouette)
            assert (sc.label[sc.instance == k + 1] == 1 + int(classes[item])).all()
            # Nothing of the object outside its box.
            assert int((sc.instance == k + 1).sum()) == int(silhouette.sum())


def test_glass_interior_shows_the_background(items):
    """Deep inside an object the rendering stays close to the photo (that is the point)."""
    sc = scenes(items).scene(0)
    deep = interior_mask(sc.label, 15) & (sc.label > 0)
    assert deep.any()
    diff = (sc.image - sc.photo).abs().mean(0)[deep].mean()
    assert diff < 0.08


def brute_force_interior(label: torch.Tensor, field: int) -> torch.Tensor:
    radius = (field - 1) // 2
    h, w = label.shape
    out = torch.zeros(h, w, dtype=torch.bool)
    for r in range(h):
        for c in range(w):
            window = label[max(0, r - radius):r + radius + 1, max(0, c - radius):c + radius + 1]
            out[r, c] = bool((window == label[r, c]).all())
    return out


@pytest.mark.parametrize('field', [1, 3, 5, 9, 10])
def test_interior_mask_on_hand_made_shapes(field):
    label = torch.zeros(24, 30, dtype=torch.long)
    label[4:18, 6:20] = 3          # a square
    label[18:22, 6:10] = 5         # a small block touching it
    expected = brute_force_interior(label, field)
    assert torch.equal(interior_mask(label, field), expected)
    assert torch.equal(interior_mask(label[None].repeat(2, 1, 1), field)[1], expected)
    if field == 9:   # radius 4: the 14-px square keeps its central 6x6 pixels
        inside = interior_mask(label, field) & (label == 3)
        assert int(inside.sum()) == 6 * 6 and bool(inside[8:14, 10:16].all())


def test_receptive_field_from_the_layers_matches_the_gradient():
    """The analytic field equals the input window that reaches one output pixel."""
    torch.manual_seed(0)
    net = GlassNet('base').eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):   # positive weights: no ReLU ever cuts a path
                m.weight.abs_().add_(0.01)
    extents = []
    for pixel in (30, 31, 32, 33):   # every phase of the two 2x upsamplings
        x = torch.ones(1, 3, 64, 64, requires_grad=True)
        net(x)[0, 0, pixel, pixel].backward()
        rows, cols = torch.nonzero(x.grad[0].abs().sum(0)).unbind(1)
        extents += [int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)]
    assert max(extents) == net.receptive_field() == 19


@pytest.mark.parametrize('depth', segment_glass.RIVAL_DEPTHS)
def test_the_depthwise_rival_matches_lga_in_reach_size_and_start(depth):
    """'dwconv<d>' is LGA-<d> without attention: the base's function at initialisation (its
    weights are the base's, its block the identity), LGA's parameters within 1.5%, and one
    output pixel of the block reaches exactly the (2d+1)^2 window that d LGA layers reach."""
    torch.manual_seed(3)
    base = GlassNet('base').eval()
    torch.manual_seed(3)
    rival = segment_glass.build(f'dwconv{depth}').eval()
    x = torch.rand(2, 3, 64, 64)
    assert torch.allclose(rival(x), base(x), atol=1e-5)
    size = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    lga = segment_glass.build(f'lga{depth}')
    assert abs(size(rival) - size(lga)) / size(lga) < 0.015
    block = segment_glass.DepthwiseStack(8, depth)
    with torch.no_grad():
        block.fuse.weight.normal_()   # the identity start would hide the stack's reach
    h = torch.randn(1, 8, 2 * depth + 5, 2 * depth + 5, requires_grad=True)
    c = depth + 2
    block(h)[0, :, c, c].sum().backward()
    rows, cols = torch.nonzero(h.grad[0].abs().sum(0)).unbind(1)
    assert (int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())) == (
        c - depth, c + depth, c - depth, c + depth)


def test_the_convex_probe_is_a_softmax_filter_renormalised_inside_the_map():
    """'dwconv8-convex': each output is the softmax-weighted mean of the 3x3 window's pixels
    inside the map (a brute-force loop over pixels and taps)."""
    torch.manual_seed(0)
    layer = segment_glass.ConvexDepthwise(3)
    with torch.no_grad():
        layer.taps.normal_()
    x = torch.randn(2, 3, 4, 5)
    w = torch.softmax(layer.taps, -1).view(3, 3, 3)
    ref = torch.zeros_like(x)
    for i in range(4):
        for j in range(5):
            num = den = 0
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    if 0 <= i + di < 4 and 0 <= j + dj < 5:
                        num = num + w[:, di + 1, dj + 1] * x[:, :, i + di, j + dj]
                        den = den + w[:, di + 1, dj + 1]
            ref[:, :, i, j] = num / den
    assert torch.allclose(layer(x), ref, atol=1e-6)
    assert segment_glass.build('dwconv8-convex').context.convex


def test_receptive_field_errors():
    with pytest.raises(ValueError, match='cannot compute the receptive field of LGA2d'):
        receptive_field([nn.Conv2d(3, 8, 3), LGA2d(8, num_layers=2)])
    with pytest.raises(ValueError, match='cannot compute'):
        GlassNet('lga2').receptive_field()
    with pytest.raises(ValueError, match='square'):
        receptive_field([nn.Conv2d(3, 8, (3, 5))])
    with pytest.raises(ValueError, match="'receptive_field' must be >= 1"):
        interior_mask(torch.zeros(4, 4, dtype=torch.long), 0)


def test_impossible_sizes_are_refused(items):
    with pytest.raises(ValueError, match='must fit in the canvas'):
        GlassScenes('test', 2, size=64, sides=(42, 80), source=items)
    with pytest.raises(ValueError, match='smallest photo'):
        require_data(lambda: GlassScenes('test', 2, size=200, sides=(42, 89),
                                         zoom=(1.0, 2.0), source=items))
    with pytest.raises(ValueError, match="'objects'"):
        GlassScenes('test', 2, objects=(0, 2), source=items)
    with pytest.raises(ValueError, match="'sides'"):
        GlassScenes('test', 2, sides=(60, 50), source=items)
    with pytest.raises(ValueError, match="'split'"):
        GlassScenes('val', 2, source=items)
    with pytest.raises(IndexError):
        scenes(items).scene(6)


@pytest.fixture(scope='module')
def data(items):
    """A few train and test scenes (the same items on the train and the test photos)."""
    make = lambda split, n: stack_scenes(require_data(   # noqa: E731
        lambda: GlassScenes(split, n, source=items, **TASK)))
    return make('train', 6), make('test', 4)


def test_scores_of_perfect_and_background_predictions(data):
    _, test = data
    field = GlassTask().field
    perfect = segment_glass._scores(test['labels'].clone(), test, field)
    assert perfect['miou'] == pytest.approx(100) and perfect['interior_miou'] == pytest.approx(100)
    objects = sum(perfect['objects_by_size'].values())
    assert objects == int((test['sides'] > 0).sum()) > 0
    for b, n in perfect['objects_by_size'].items():
        assert perfect['object_acc_by_size'][b] == (pytest.approx(100) if n else None)
    # Background everywhere: every object's pixels are all wrong, and the background class is
    # the only one with an IoU (the mIoU averages the classes present).
    none = segment_glass.evaluate(None, test, field)
    assert all(v == 0 for b, v in none['object_acc_by_size'].items()
               if none['objects_by_size'][b])
    background = float((test['labels'] == 0).float().mean()) * 100
    assert none['pixel_acc'] == pytest.approx(background)


def test_objects_fall_in_the_bin_of_their_side(data):
    _, test = data
    scores = segment_glass._scores(test['labels'], test, GlassTask().field)
    sides = test['sides'][test['sides'] > 0].tolist()
    expected = {str(b): 0 for b in segment_glass.SIZE_BINS}
    for side in sides:
        expected[str(max(b for b in segment_glass.SIZE_BINS if b <= side))] += 1
    assert scores['objects_by_size'] == expected


def _run(task, data, rows, seeds=(0, 1), out=None):
    return experiment.run(task, rows, Budget(3, 2, seeds), out=out, data=data,
                          say=lambda *a, **k: None)[0]


SCORES = ('miou', 'pixel_acc', 'interior_miou', 'interior_pixel_acc', 'object_acc_by_size',
          'interior_object_acc_by_size', 'objects_by_size')


def test_a_run_gives_every_row_the_same_scores_twice(data, one_thread):
    rows = ['colour', 'base', 'lga1', 'lga1-0.2']
    first, second = (_run(GlassTask(), data, rows) for _ in range(2))
    assert [r['key'] for r in first] == ['background', *rows]
    for a, b in zip(first, second):
        for key in SCORES:
            assert json.dumps(a[key]) == json.dumps(b[key]), (a['key'], key)
    trained = {r['key']: r for r in first[1:]}
    assert all(r['seeds'] == [0, 1] and len(r['miou']) == 2 for r in trained.values())
    # The rows are different models: the block (and the colour net) change the scores.
    assert len({json.dumps(r['object_acc_by_size']) for r in trained.values()}) > 1
    # The trivial row is the all-background predictor's scores, untrained.
    assert first[0]['miou'] == [segment_glass.evaluate(None, data[1], GlassTask().field)['miou']]
    assert first[0]['params'] == 0 and first[0]['wall_s'] == []


def test_background_is_scored_never_trained(data):
    assert [r['key'] for r in _run(GlassTask(background=False), data, ['base'], (0,))] == \
        ['base']
    with pytest.raises(ValueError, match='trivial'):
        segment_glass.build('background')


def test_result_files_old_and_new_load_and_tabulate(data, tmp_path, one_thread):
    """A new result file keeps its 'lga<d>' rows (the default stack); a file without
    'lga_rows' in its config ran the 0.2 stack under that name, and is renamed."""
    results = _run(GlassTask(name='small'), data, ['base', 'lga1'], (0,), str(tmp_path))
    new = tmp_path / 'small.json'
    saved = json.loads(new.read_text())
    assert saved['task'] == 'small' and saved['config']['receptive_field'] == 19
    assert saved['config']['steps'] == 3 and saved['rows'][2]['cpu_s_per_step'] > 0
    old = tmp_path / 'old.json'
    legacy = dict(saved, config={k: v for k, v in saved['config'].items() if k != 'lga_rows'})
    old.write_text(json.dumps(legacy))
    assert list(segment_glass.load_rows([str(new)])) == ['background', 'base', 'lga1']
    renamed = segment_glass.load_rows([str(old)])
    assert list(renamed) == ['background', 'base', 'lga1-0.2']
    assert renamed['lga1-0.2']['model'] == 'base + LGA 0.2 stack, depth 1'
    # A later file's row replaces an earlier one with the same key.
    both = segment_glass.load_rows([str(old), str(new)])
    assert set(both) == {'background', 'base', 'lga1', 'lga1-0.2'}
    # The table: the glass columns, 's / run' the mean wall time of the runs.
    header = (tmp_path / 'small.md').read_text().splitlines()[0]
    assert header == ('| model | mIoU (%) | interior mIoU (%) | obj. acc 36+ px | obj. acc 46+ px '
                      '| obj. acc 56+ px | params | MMACs / image | s / run |')
    row = GlassTask().columns(results[1])
    assert row['s / run'] == f"{results[1]['wall_s'][0]:.0f}"
    assert row['mIoU (%)'] == f"{results[1]['miou'][0]:.1f}"
    merged = segment_glass.merged_tables([str(new), str(old)])
    text = open(merged).read()
    assert '| base + LGA, depth 1 |' in text and '| base + LGA 0.2 stack, depth 1 |' in text


def _subset(test, keep):
    return {k: v[keep] for k, v in test.items()}


def test_an_empty_size_bin_is_reported_as_empty_never_a_crash_or_a_zero(data, tmp_path,
                                                                          one_thread):
    """A test set small enough to leave a size bin without objects (2 seeds, so the table
    takes a std): null in the JSON, 'n/a' in every table, NaN (a gap) in the figure; the bins
    with objects keep their numbers."""
    train, test = data
    bins = segment_glass.SIZE_BINS
    bin_of = lambda side: max(b for b in bins if b <= side)   # noqa: E731
    # The scenes with no object in the first bin that some scene fills.
    sides = [[bin_of(int(s)) for s in row if s > 0] for row in test['sides']]
    empty = next(b for b in bins if any(b in row for row in sides))
    keep = torch.tensor([empty not in row for row in sides])
    assert 0 < int(keep.sum()) < len(sides)
    small = _subset(test, keep)
    results = _run(GlassTask(name='tiny'), (train, small), ['base'], (0, 1), str(tmp_path))
    key = str(empty)
    for r in results:
        assert all(s[key] is None for s in r['object_acc_by_size'])
        assert all(s[key] == 0 for s in r['objects_by_size'])
        assert all(s[key] is None for s in r['interior_object_acc_by_size'])
    # Strict JSON: no NaN anywhere, the empty bin is null.
    def refuse(constant):
        raise ValueError(f'{constant} in the result file')
    saved = json.loads((tmp_path / 'tiny.json').read_text(), parse_constant=refuse)
    assert saved['rows'][1]['object_acc_by_size'][0][key] is None
    column = f'obj. acc {key}+ px'
    table = (tmp_path / 'tiny.md').read_text()
    assert table.count('n/a (0 objects)') >= 2 and 'nan' not in table
    row = GlassTask().columns(results[1])
    assert row[column] == 'n/a (0 objects)'
    # The bins with objects: the mean ± std of the seeds' numbers, as before.
    full = next(b for b in bins if str(b) != key and results[1]['objects_by_size'][0][str(b)])
    values = [s[str(full)] for s in results[1]['object_acc_by_size']]
    assert row[f'obj. acc {full}+ px'] == segment_glass.mean_std(values)
    # The merged tables and the figure read the file (and old files, where empty was NaN).
    old = tmp_path / 'old.json'
    legacy = json.loads((tmp_path / 'tiny.json').read_text())
    for r in legacy['rows']:
        for scores in r['object_acc_by_size'] + r['interior_object_acc_by_size']:
            scores.update({b: float('nan') for b, v in scores.items() if v is None})
    old.write_text(json.dumps(legacy))
    text = open(segment_glass.merged_tables([str(old)])).read()
    assert 'n/a (0 objects)' in text and 'nan' not in text
    figure = segment_glass.depth_and_size_figure([str(tmp_path / 'tiny.json')], str(tmp_path))
    assert figure.endswith(f"glass_depth_size_{saved['config']['steps']}.png")
    longer = dict(saved, config=dict(saved['config'], steps=saved['config']['steps'] + 1))
    (tmp_path / 'longer.json').write_text(json.dumps(longer))
    with pytest.raises(ValueError, match='must share a budget'):
        segment_glass.depth_and_size_figure([str(tmp_path / 'tiny.json'),
                                             str(tmp_path / 'longer.json')], str(tmp_path))
    assert segment_glass.bin_cell([1.0, None, 3.0]) == 'n/a (empty in 1 of 3 seeds)'
    assert segment_glass.bin_cell([1.0, 3.0]) == '2.0 ± 1.4'
    assert math.isnan(segment_glass.bin_mean([2.0, float('nan')]))

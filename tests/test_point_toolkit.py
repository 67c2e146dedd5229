"""The point-cloud toolkit of graphs/: crops, resampling, rotations, collation,
crop inference and per-class IoU, against brute-force references."""
import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.nn import EdgeConv

import graphs


def _cloud(n=300, seed=0):
    return torch.rand(n, 3, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- crops
def test_knn_crop_is_the_nearest_points():
    pos = _cloud()
    index = graphs.crop(pos, 7, num_points=20)
    dist = (pos - pos[7]).norm(dim=1)
    assert index.shape == (20,) and index[0] == 7
    brute = sorted(range(len(pos)), key=lambda i: (float(dist[i]), i))[:20]
    assert sorted(index.tolist()) == sorted(brute)
    assert bool((dist[index][1:] >= dist[index][:-1]).all())   # nearest first
    assert graphs.crop(pos, pos[7], num_points=20).tolist() == index.tolist()
    assert graphs.crop(pos, 0, num_points=1000).numel() == 300   # all points at most


def test_ball_crop_is_every_point_within_the_radius():
    pos = _cloud()
    center = torch.tensor([0.5, 0.5, 0.5])
    index = graphs.crop(pos, center, radius=0.3)
    brute = {i for i in range(len(pos)) if float((pos[i] - center).pow(2).sum()) < 0.09}
    assert set(index.tolist()) == brute and len(index) == len(brute) > 0


def test_crop_ties_are_in_index_order():
    pos = torch.zeros(6, 2)   # all at the same place
    assert graphs.crop(pos, 3, num_points=4).tolist() == [0, 1, 2, 3]


def test_crop_arguments():
    pos = _cloud(10)
    with pytest.raises(ValueError, match="exactly one of 'num_points'"):
        graphs.crop(pos, 0)
    with pytest.raises(ValueError, match="exactly one of 'num_points'"):
        graphs.crop(pos, 0, num_points=3, radius=0.1)
    with pytest.raises(ValueError, match="'num_points'"):
        graphs.crop(pos, 0, num_points=0)
    with pytest.raises(ValueError, match="'radius'"):
        graphs.crop(pos, 0, radius=-1.0)
    with pytest.raises(IndexError, match="'center'"):
        graphs.crop(pos, 10, num_points=3)
    with pytest.raises(ValueError, match="'center'"):
        graphs.crop(pos, torch.zeros(2), num_points=3)
    with pytest.raises(TypeError, match="'pos'"):
        graphs.crop(pos.long(), 0, num_points=3)


def test_random_crops_are_deterministic_with_a_generator():
    pos = _cloud()
    a = graphs.random_crops(pos, 5, num_points=32, generator=torch.Generator().manual_seed(1))
    b = graphs.random_crops(pos, 5, num_points=32, generator=torch.Generator().manual_seed(1))
    c = graphs.random_crops(pos, 5, num_points=32, generator=torch.Generator().manual_seed(2))
    assert len(a) == 5 and all(x.shape == (32,) for x in a)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    # every crop is the kNN crop of its first point (its centre)
    assert all(torch.equal(x, graphs.crop(pos, int(x[0]), num_points=32)) for x in a)


@pytest.mark.parametrize('coverage', [1, 3])
@pytest.mark.parametrize('size', [dict(num_points=40), dict(radius=0.25)])
def test_covering_crops_cover_every_point(coverage, size):
    pos = _cloud()
    crops = graphs.covering_crops(pos, coverage=coverage,
                                  generator=torch.Generator().manual_seed(0), **size)
    counts = torch.bincount(torch.cat(crops), minlength=len(pos))
    assert int(counts.min()) >= coverage
    # no crop is wasted: each one's centre still needed coverage when it was drawn
    seen = torch.zeros(len(pos), dtype=torch.long)
    for index in crops:
        assert seen[index[0]] < coverage
        seen[index] += 1
    again = graphs.covering_crops(pos, coverage=coverage,
                                  generator=torch.Generator().manual_seed(0), **size)
    assert all(torch.equal(x, y) for x, y in zip(crops, again))


def test_covering_crops_of_an_empty_cloud():
    assert graphs.covering_crops(torch.zeros(0, 3), num_points=4) == []


# ------------------------------------------------------------- resampling
def test_resample_down_keeps_distinct_points():
    index = torch.arange(100, 150)
    out = graphs.resample(index, 20, generator=torch.Generator().manual_seed(0))
    assert out.shape == (20,) and len(set(out.tolist())) == 20
    assert set(out.tolist()) <= set(index.tolist())


def test_resample_up_keeps_every_point():
    index = torch.tensor([5, 9, 2])
    out = graphs.resample(index, 10, generator=torch.Generator().manual_seed(0))
    assert out.shape == (10,) and set(out.tolist()) == {5, 9, 2}
    same = graphs.resample(index, 10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, same)
    assert sorted(graphs.resample(index, 3).tolist()) == [2, 5, 9]


def test_resample_arguments():
    with pytest.raises(ValueError, match="'index' is empty"):
        graphs.resample(torch.zeros(0, dtype=torch.long), 4)
    with pytest.raises(ValueError, match="'index'"):
        graphs.resample(torch.zeros(3), 4)
    with pytest.raises(ValueError, match="'size'"):
        graphs.resample(torch.arange(3), 0)


@pytest.mark.parametrize('n,size,parts', [(10, 3, 4), (9, 3, 3), (2, 5, 1), (1, 1, 1)])
def test_split_crop_holds_every_point_once(n, size, parts):
    index = torch.arange(100, 100 + n)
    out = graphs.split_crop(index, size, generator=torch.Generator().manual_seed(0))
    assert len(out) == parts
    assert sorted(torch.cat(out).tolist()) == index.tolist()
    lengths = [len(part) for part in out]
    assert max(lengths) <= size and max(lengths) - min(lengths) <= 1
    again = graphs.split_crop(index, size, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(out, again))


def test_split_crop_arguments():
    assert graphs.split_crop(torch.zeros(0, dtype=torch.long), 4) == []
    with pytest.raises(ValueError, match="'size'"):
        graphs.split_crop(torch.arange(3), 0)
    with pytest.raises(ValueError, match="'index'"):
        graphs.split_crop(torch.zeros(3), 2)


# --------------------------------------------------------------- rotations
@pytest.mark.parametrize('dim', [2, 3, 5])
def test_random_rotation_is_a_rotation(dim):
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        r = graphs.random_rotation(dim, generator=g, dtype=torch.float64)
        torch.testing.assert_close(r.t() @ r, torch.eye(dim, dtype=torch.float64))
        assert abs(float(torch.det(r)) - 1.0) < 1e-10


def test_random_rotation_is_uniform():
    """Under the Haar measure every entry has mean 0 and variance 1/D, and a
    fixed unit vector lands uniformly on the sphere (each coordinate's mean 0)."""
    g = torch.Generator().manual_seed(0)
    rs = torch.stack([graphs.random_rotation(3, generator=g, dtype=torch.float64)
                      for _ in range(4000)])
    assert float(rs.mean(0).abs().max()) < 0.03
    torch.testing.assert_close(rs.pow(2).mean(0), torch.full((3, 3), 1 / 3,
                                                             dtype=torch.float64), atol=0.02,
                               rtol=0)
    # a reflection-free QR: no sign left to chance (det +1 in every draw)
    assert bool((torch.linalg.det(rs) > 0).all())


def test_random_rotation_about_an_axis():
    g = torch.Generator().manual_seed(0)
    r = graphs.random_rotation(axis=2, generator=g)
    assert torch.equal(r[2], torch.tensor([0., 0., 1.])) and torch.equal(r[:, 2], r[2])
    torch.testing.assert_close(r.t() @ r, torch.eye(3))
    with pytest.raises(ValueError, match="'axis'"):
        graphs.random_rotation(2, axis=0)


def test_random_rotate_keeps_distances_and_is_deterministic():
    pos = _cloud(50).double()
    a = graphs.random_rotate(pos, generator=torch.Generator().manual_seed(3))
    b = graphs.random_rotate(pos, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert a.dtype == torch.float64 and not torch.allclose(a, pos)
    mode = 'donot_use_mm_for_euclid_dist'   # exact distances (no |a|^2 + |b|^2 - 2ab)
    torch.testing.assert_close(torch.cdist(a, a, compute_mode=mode),
                               torch.cdist(pos, pos, compute_mode=mode), atol=1e-12, rtol=0)
    centred = graphs.random_rotate(pos, center=True, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(centred.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-12,
                               rtol=0)
    torch.testing.assert_close(centred, (pos - pos.mean(0)) @ graphs.random_rotation(
        generator=torch.Generator().manual_seed(3), dtype=torch.float64).t())



def _brute_pose(pos, scale, rotation=None):
    """Centroid by a Python sum over the points, each point centred, scaled and multiplied
    by the rotation one coordinate at a time."""
    n, d = pos.shape
    centroid = [sum(float(pos[i, c]) for i in range(n)) / n for c in range(d)]
    posed = [[(float(pos[i, c]) - centroid[c]) / scale for c in range(d)] for i in range(n)]
    if rotation is not None:
        posed = [[sum(float(rotation[r, c]) * p[c] for c in range(d)) for r in range(d)]
                 for p in posed]
    return torch.tensor(posed, dtype=torch.float64)


@pytest.mark.parametrize('axis', [None, 2])
def test_random_pose_centres_scales_and_turns_like_a_brute_force_pose(axis):
    pos = _cloud(40).double() * 80 + 5
    posed = graphs.random_pose(pos, scale=50.0, axis=axis,
                               generator=torch.Generator().manual_seed(4))
    rotation = graphs.random_rotation(axis=axis, generator=torch.Generator().manual_seed(4),
                                      dtype=torch.float64)
    torch.testing.assert_close(posed, _brute_pose(pos, 50.0, rotation), atol=1e-12, rtol=0)
    torch.testing.assert_close(posed.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-12,
                               rtol=0)
    if axis is not None:   # a turn about the up axis keeps every height
        torch.testing.assert_close(posed[:, 2], _brute_pose(pos, 50.0)[:, 2], atol=1e-12,
                                   rtol=0)
    # the same generator state, the same pose
    assert torch.equal(posed, graphs.random_pose(pos, scale=50.0, axis=axis,
                                                 generator=torch.Generator().manual_seed(4)))


def test_random_pose_without_rotation_only_centres_and_scales_and_draws_nothing():
    pos = _cloud(30).double()
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    posed = graphs.random_pose(pos, scale=0.5, rotate=False, generator=g)
    torch.testing.assert_close(posed, _brute_pose(pos, 0.5), atol=1e-12, rtol=0)
    assert torch.equal(g.get_state(), state)
    # float32: the centroid is subtracted before the scale is divided (the order fixes the
    # rounding, and with it every number a model trained on posed crops produces)
    pos32 = _cloud(30) * 100
    assert torch.equal(graphs.random_pose(pos32, scale=50.0, rotate=False),
                       (pos32 - pos32.mean(0)) / 50.0)
    assert graphs.random_pose(torch.zeros(0, 3), scale=2.0).shape == (0, 3)
    with pytest.raises(ValueError, match="'scale'"):
        graphs.random_pose(pos, scale=0.0)

# --------------------------------------------------------------- collation
def test_collate_clouds_builds_one_knn_graph_per_cloud():
    g = torch.Generator().manual_seed(0)
    pos = [torch.rand(n, 3, generator=g) for n in (12, 20, 7)]
    x = [torch.randn(p.size(0), 4, generator=g) for p in pos]
    y = [torch.randint(3, (p.size(0),), generator=g) for p in pos]
    batch = graphs.collate_clouds(pos, x, y, k=5)
    assert isinstance(batch, Batch) and batch.num_graphs == 3
    assert torch.equal(batch.y, torch.cat(y)) and torch.equal(batch.x, torch.cat(x))
    src, dst = batch.edge_index
    assert bool((batch.batch[src] == batch.batch[dst]).all())      # no edge across clouds
    assert bool((torch.bincount(dst) == 5).all())                  # k = 5, self included
    assert bool((src[::5] == dst[::5]).all())                      # the self-loop first
    torch.testing.assert_close(batch.edge_attr, batch.pos[src] - batch.pos[dst])
    # each cloud's graph is the brute-force kNN of that cloud
    for i, data in enumerate(batch.to_data_list()):
        dist = torch.cdist(pos[i], pos[i])
        for centre in range(pos[i].size(0)):
            nbrs = data.edge_index[0, data.edge_index[1] == centre]
            kth = dist[centre].sort().values[4]
            assert bool((dist[centre, nbrs] <= kth + 1e-6).all()) and len(nbrs) == 5
        assert torch.equal(data.y, y[i])


def test_collate_clouds_arguments():
    pos = [torch.rand(5, 3)]
    with pytest.raises(ValueError, match="'pos'"):
        graphs.collate_clouds([])
    with pytest.raises(ValueError, match="'pos'"):
        graphs.collate_clouds(torch.rand(5, 3))
    with pytest.raises(ValueError, match="'x'"):
        graphs.collate_clouds(pos, [torch.rand(5, 2)] * 2)
    with pytest.raises(ValueError, match=r"'y\[0\]'"):
        graphs.collate_clouds(pos, y=[torch.zeros(4, dtype=torch.long)])


# ------------------------------------------------------------ crop inference
class _Net(torch.nn.Module):
    """A real point network: EdgeConv on the crop's kNN graph (so a point's output
    depends on its crop), then a linear head to 3 classes."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = EdgeConv(torch.nn.Linear(6, 8), aggr='max')
        self.head = torch.nn.Linear(8, 3)

    def forward(self, batch):
        return self.head(self.conv(batch.pos, batch.edge_index).relu())


def test_predict_by_crops_equals_a_brute_force_loop():
    pos = _cloud(200)
    crops = graphs.covering_crops(pos, num_points=40, coverage=2,
                                  generator=torch.Generator().manual_seed(0))
    crops[0] = graphs.resample(crops[0], 50, generator=torch.Generator().manual_seed(1))
    net = _Net().eval()

    def centre(p):
        return p - p.mean(0)
    probs = graphs.predict_by_crops(net, pos, crops, k=6, crops_per_batch=3, transform=centre)
    # brute force: each crop alone, each point's probabilities summed one by one
    total = torch.zeros(200, 3)
    count = torch.zeros(200)
    for index in crops:
        data = graphs.point_cloud_to_data(centre(pos[index]), k=6, loop=True)
        p = net(Batch.from_data_list([data])).softmax(-1)
        for row, i in enumerate(index.tolist()):
            total[i] += p[row]
            count[i] += 1
    torch.testing.assert_close(probs, total / count[:, None])
    torch.testing.assert_close(probs.sum(1), torch.ones(200))
    # the batching of crops does not change the answer
    torch.testing.assert_close(
        graphs.predict_by_crops(net, pos, crops, k=6, crops_per_batch=1, transform=centre),
        probs)


def test_predict_by_crops_passes_features():
    pos = _cloud(30)
    x = torch.randn(30, 2)
    seen = []

    def model(batch):
        seen.append(batch.x)
        return torch.stack([batch.x[:, 0], -batch.x[:, 0]], dim=1)
    crops = [torch.arange(0, 20), torch.arange(10, 30)]
    probs = graphs.predict_by_crops(model, pos, crops, x=x, k=4)
    torch.testing.assert_close(torch.cat(seen), x[torch.cat(crops)])
    torch.testing.assert_close(probs[:, 0], torch.sigmoid(2 * x[:, 0]))


def test_predict_by_crops_arguments():
    pos = _cloud(30)
    net = _Net().eval()
    with pytest.raises(ValueError, match='uncovered'):
        graphs.predict_by_crops(net, pos, [torch.arange(10)], k=4)
    with pytest.raises(ValueError, match="'crops' is empty"):
        graphs.predict_by_crops(net, pos, [], k=4)
    with pytest.raises(IndexError, match=r"'crops\[0\]'"):
        graphs.predict_by_crops(net, pos, [torch.arange(31)], k=4)
    with pytest.raises(ValueError, match="'model'"):
        graphs.predict_by_crops(lambda b: torch.zeros(3, 2), pos, [torch.arange(30)], k=4)


# --------------------------------------------------------------- IoU
def test_per_class_iou_by_hand():
    target = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, -1])
    pred = torch.tensor([0, 0, 1, 1, 2, 2, 2, 0, 1])
    # class 0: TP 2, FP 1 (a 2 predicted 0), FN 1 -> 2 / 4
    # class 1: TP 1, FP 1 (a 0), FN 1 (a 1 predicted 2) -> 1 / 3
    # class 2: TP 2, FP 1, FN 1 -> 2 / 4; class 3 absent and never predicted -> NaN
    iou = graphs.per_class_iou(pred, target, 4, ignore_index=-1)
    torch.testing.assert_close(iou[:3], torch.tensor([0.5, 1 / 3, 0.5]))
    assert torch.isnan(iou[3])
    m = graphs.confusion_matrix(pred, target, 4, ignore_index=-1)
    assert m.sum() == 8 and m[2, 0] == 1 and m[1, 2] == 1


def test_per_class_iou_against_sets():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randint(5, (500,), generator=g), torch.randint(5, (500,), generator=g)
    iou = graphs.per_class_iou(pred, target, 5)
    for c in range(5):
        p = set(torch.nonzero(pred == c).view(-1).tolist())
        t = set(torch.nonzero(target == c).view(-1).tolist())
        assert abs(float(iou[c]) - len(p & t) / len(p | t)) < 1e-6


def test_metrics_arguments():
    with pytest.raises(ValueError, match="'target' holds classes outside"):
        graphs.per_class_iou(torch.tensor([0]), torch.tensor([-1]), 2)
    with pytest.raises(TypeError, match="'pred'"):
        graphs.confusion_matrix(torch.rand(3, 2), torch.zeros(3, 2, dtype=torch.long), 2)
    with pytest.raises(ValueError, match='same shape'):
        graphs.confusion_matrix(torch.zeros(3, dtype=torch.long),
                                torch.zeros(4, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="'num_classes'"):
        graphs.confusion_matrix(torch.zeros(3, dtype=torch.long),
                                torch.zeros(3, dtype=torch.long), 0)


def test_exports():
    for name in ('crop', 'random_crops', 'covering_crops', 'resample', 'split_crop',
                 'random_rotation', 'random_rotate', 'random_pose', 'collate_clouds',
                 'predict_by_crops', 'confusion_matrix', 'per_class_iou'):
        assert name in graphs.__all__ and callable(getattr(graphs, name))
    assert len(set(graphs.__all__)) == len(graphs.__all__)   # no name listed twice

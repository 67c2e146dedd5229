"""kNN / radius builders at the edges: dtypes, magnitudes, cosine, huge k, layouts, threads.

Every reference is a brute-force float64 computation on the very points given.
"""
import math
import warnings

import pytest
import torch

import graphs

ENGINES = ['scipy', 'torch']


def edge_set(edge_index):
    return set(map(tuple, edge_index.t().tolist()))


def exact_distances(pos, cosine=False):
    """Pairwise distances by math.hypot, which neither overflows nor underflows."""
    rows = pos.double().tolist()
    if cosine:
        rows = [[v / math.hypot(*row) for v in row] for row in rows]
    return torch.tensor([[math.hypot(*(a - b for a, b in zip(p, q))) for q in rows]
                         for p in rows], dtype=torch.float64)


def brute_knn_edges(pos, k, batch=None, cosine=False):
    """{(neighbour, centre)} of the k nearest others of the same cloud."""
    d = exact_distances(pos, cosine)
    n = pos.size(0)
    batch = torch.zeros(n, dtype=torch.long) if batch is None else batch
    d[batch.view(-1, 1) != batch.view(1, -1)] = float('inf')
    d.fill_diagonal_(float('inf'))
    edges = set()
    for i in range(n):
        order = d[i].argsort().tolist()
        edges |= {(j, i) for j in order[:k] if d[i, j] < float('inf')}
    return edges


def brute_radius_edges(pos, r, batch=None):
    d = exact_distances(pos)
    n = pos.size(0)
    batch = torch.zeros(n, dtype=torch.long) if batch is None else batch
    return {(j, i) for i in range(n) for j in range(n)
            if i != j and batch[i] == batch[j] and float(d[i, j]) < r}


def radius_between_distances(d):
    """A radius halfway between the two middle distinct distances: no pair sits on it."""
    values = d[d > 0].unique()
    mid = values.numel() // 2
    return float((values[mid - 1] + values[mid]) / 2)


def clearly_separated_cloud(n, dim, seed):
    """Points on a lattice with random offsets: no two distances are nearly tied."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(10 * n, generator=g)[:n * dim].view(n, dim).double() + \
        0.1 * torch.rand(n, dim, generator=g, dtype=torch.float64)


# Item 5: integer positions are accepted, as torch-cluster's CPU kernels accept them.
@pytest.mark.parametrize('engine', ENGINES)
@pytest.mark.parametrize('dtype', [torch.int64, torch.int32, torch.int16, torch.uint8])
def test_integer_positions_are_searched_exactly(engine, dtype):
    g = torch.Generator().manual_seed(0)
    pos = torch.randint(0, 100, (40, 3), generator=g).to(dtype)
    batch = torch.tensor([0] * 15 + [1] * 25)
    e = graphs.knn_graph(pos, 4, batch, engine=engine)
    assert torch.equal(e, graphs.knn_graph(pos.double(), 4, batch, engine=engine))
    e = graphs.radius_graph(pos, 20.5, batch, max_num_neighbors=100, engine=engine)
    assert edge_set(e) == brute_radius_edges(pos, 20.5, batch)
    index, dist = graphs.nearest_neighbors(pos, 3, batch, engine=engine)
    assert dist.dtype == torch.get_default_dtype()


def test_integer_positions_beyond_float64_integers_are_refused():
    pos = torch.tensor([[2 ** 60, 0], [2 ** 60 + 1, 0], [0, 0]])
    with pytest.raises(ValueError, match=r"'x'.*2\*\*53"):
        graphs.knn_graph(pos, 1)
    with pytest.raises(TypeError, match="'x'"):
        graphs.knn_graph(torch.zeros(4, 2, dtype=torch.bool), 1)


# Item 6: half-precision positions are compared in float32 at least.
@pytest.mark.parametrize('engine', ENGINES)
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision_radius_keeps_neighbours_inside_r(engine, dtype):
    # In float16 the distance 44.553 rounds to 44.56 and r = 44.5756 to 44.56: no edge.
    pos = torch.tensor([[11., 60.], [42., 28.]], dtype=dtype)
    exact = float((pos[0].double() - pos[1].double()).norm())
    r = exact + 0.0226
    e = graphs.radius_graph(pos, r, engine=engine)
    assert edge_set(e) == {(0, 1), (1, 0)}
    assert edge_set(graphs.radius_graph(pos, exact, engine=engine)) == set()  # strict


@pytest.mark.parametrize('engine', ENGINES)
def test_float16_distances_beyond_65504_are_not_infinite(engine):
    pos = torch.tensor([[0., 0.], [60000., 60000.], [-60000., 0.]], dtype=torch.float16)
    index, dist = graphs.nearest_neighbors(pos, 2, engine=engine)
    ref = exact_distances(pos)
    assert dist.dtype == torch.float32
    assert torch.isfinite(dist).all()
    assert torch.allclose(dist.double(), ref.gather(1, index), rtol=1e-6)
    e = graphs.radius_graph(pos, 1e5, engine=engine)
    assert edge_set(e) == {(0, 1), (1, 0), (0, 2), (2, 0)}


# Item 7: cosine neighbours of tiny, huge and zero vectors.
def test_cosine_tiny_vector_is_normalised():
    x = torch.tensor([[1., 0.], [0.7, 0.7], [1e-13, 0.]])
    for engine in ENGINES:
        e = edge_set(graphs.knn_graph(x, 1, cosine=True, engine=engine))
        # Nodes 0 and 2 point the same way; node 1 is 45 degrees off both.
        assert (2, 0) in e and (0, 2) in e


@pytest.mark.parametrize('engine', ENGINES)
@pytest.mark.parametrize('dtype, scale', [(torch.float16, 60000.), (torch.float32, 1e20),
                                          (torch.float32, 1e-25), (torch.float64, 1e200)])
def test_cosine_on_extreme_norms_equals_float64_reference(engine, dtype, scale):
    directions = clearly_separated_cloud(12, 3, seed=1) - 15.0
    x = (directions / directions.abs().max() * scale).to(dtype)
    assert torch.isfinite(x).all() and bool((x != 0).any(dim=1).all())
    e = graphs.knn_graph(x, 3, cosine=True, engine=engine)
    assert edge_set(e) == brute_knn_edges(x, 3, cosine=True)


@pytest.mark.parametrize('engine', ENGINES)
def test_cosine_zero_vector_ranks_last(engine):
    x = torch.tensor([[1., 0.], [0., 0.], [-1., 0.01], [0., 0.], [0.5, 0.5]])
    e = edge_set(graphs.knn_graph(x, 2, cosine=True, engine=engine))
    # Node 0's neighbours are the two nonzero rows, however far in angle: no zero row.
    assert {j for j, i in e if i == 0} == {2, 4}
    assert {j for j, i in e if i == 2} == {0, 4}
    # Zero rows are equal vectors: each is the other's first neighbour.
    assert {j for j, i in e if i == 1} >= {3} and {j for j, i in e if i == 3} >= {1}
    # With k = all others, a zero row comes after every nonzero row for everybody.
    e = graphs.knn_graph(x, 4, cosine=True, engine=engine)
    centre = e[1]
    for i in (0, 2, 4):
        neighbours = e[0][centre == i].tolist()
        assert set(neighbours[-2:]) == {1, 3}


# Item 8: extreme magnitudes on every engine.
@pytest.mark.parametrize('engine', ENGINES)
@pytest.mark.parametrize('dtype, scale', [(torch.float32, 1e19), (torch.float32, 1e30),
                                          (torch.float32, 1e-22), (torch.float32, 1e-35),
                                          (torch.float64, 1e160), (torch.float64, 1e-170)])
def test_extreme_magnitudes_equal_brute_force(engine, dtype, scale):
    base = clearly_separated_cloud(30, 3, seed=2)
    pos = (base / base.abs().max() * scale).to(dtype)
    batch = torch.tensor([0] * 12 + [1] * 18)
    assert edge_set(graphs.knn_graph(pos, 4, batch, engine=engine)) == \
        brute_knn_edges(pos, 4, batch)
    ref = exact_distances(pos)
    r = radius_between_distances(ref)
    assert edge_set(graphs.radius_graph(pos, r, batch, max_num_neighbors=40, engine=engine)) \
        == brute_radius_edges(pos, r, batch)
    index, dist = graphs.nearest_neighbors(pos, 2, batch, engine=engine)
    expected = ref.gather(1, index.clamp(min=0))
    assert torch.allclose(dist.double(), expected.to(dist.dtype).double(), rtol=1e-5)


@pytest.mark.parametrize('engine', ENGINES)
def test_small_differences_on_large_offsets(engine):
    # Wide magnitude range in float32: tiny offsets next to huge coordinates.
    pos = torch.tensor([[1e30, 0.], [1e30, 1e-20], [1e30, 3e-20], [1e30, 7e-20]],
                       dtype=torch.float32)
    assert edge_set(graphs.knn_graph(pos, 1, engine=engine)) == brute_knn_edges(pos, 1)


@pytest.mark.parametrize('engine', ENGINES)
def test_huge_batch_indices_keep_clouds_apart(engine):
    pos = torch.tensor([[0., 0.], [1., 0.], [0.1, 0.], [1.1, 0.]])
    big = 2 ** 53
    batch = torch.tensor([big, big, big + 1, big + 1])
    e = graphs.knn_graph(pos, 1, batch, engine=engine)
    assert edge_set(e) == {(1, 0), (0, 1), (3, 2), (2, 3)}
    e = graphs.radius_graph(pos, 5.0, batch, engine=engine)
    assert edge_set(e) == {(1, 0), (0, 1), (3, 2), (2, 3)}
    batch = torch.tensor([0, 0, 2 ** 62, 2 ** 62])
    assert edge_set(graphs.knn_graph(pos, 3, batch, engine=engine)) == \
        {(1, 0), (0, 1), (3, 2), (2, 3)}


# Item 13: tables are sized by the largest cloud, not by k.
@pytest.mark.parametrize('engine', ENGINES)
def test_huge_k_is_clamped_to_the_cloud_before_allocating(engine):
    pos = clearly_separated_cloud(9, 2, seed=3)
    batch = torch.tensor([0] * 4 + [1] * 5)
    complete = {(j, i) for i in range(9) for j in range(9)
                if i != j and batch[i] == batch[j]}
    assert edge_set(graphs.knn_graph(pos, 2 ** 40, batch, engine=engine)) == complete
    assert edge_set(graphs.radius_graph(pos, 1e9, batch, max_num_neighbors=2 ** 40,
                                        engine=engine)) == complete
    loops = edge_set(graphs.knn_graph(pos, 2 ** 40, batch, loop=True, engine=engine))
    assert loops == complete | {(i, i) for i in range(9)}
    data = graphs.point_cloud_to_data(pos, k=2 ** 40, batch=batch, engine=engine)
    assert edge_set(data.edge_index) == complete


# Item 14: a transposed (3, N) cloud is flagged; ordinary shapes are not.
def test_transposed_cloud_warns():
    cloud = torch.rand(100, 3)
    for call in (lambda p: graphs.knn_graph(p, 4), lambda p: graphs.radius_graph(p, 0.3),
                 lambda p: graphs.nearest_neighbors(p, 2),
                 lambda p: graphs.point_cloud_to_data(p, k=2),
                 lambda p: graphs.knn(p, p, 2)):
        with pytest.warns(UserWarning, match=r"\(3, 100\).*pass .*\.t\(\)") as record:
            call(cloud.t())
        assert record[0].filename == __file__  # points at the caller, not at graphs/


@pytest.mark.parametrize('shape', [(100, 3), (50, 64), (4, 128), (0, 16), (3, 3), (1, 2)])
def test_no_transposition_warning_on_ordinary_shapes(shape):
    x = torch.rand(*shape)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        graphs.knn_graph(x, 2)
        graphs.knn(torch.rand(50, shape[1]), x, 2)  # few queries in many dimensions
        graphs.knn_graph(torch.rand(3, 100), 2, torch.zeros(3, dtype=torch.long))


# Issue 17 item 3: num_workers reaches the kd-tree query.
@pytest.fixture
def recorded_workers(monkeypatch):
    import scipy.spatial
    calls = []

    class RecordingTree(scipy.spatial.cKDTree):
        def query(self, *args, **kwargs):
            calls.append(kwargs.get('workers'))
            return super().query(*args, **kwargs)
    monkeypatch.setattr(scipy.spatial, 'cKDTree', RecordingTree)
    return calls


def test_num_workers_reaches_the_tree(recorded_workers):
    pos = torch.rand(30, 3)
    reference = graphs.knn_graph(pos, 3, engine='torch')
    assert torch.equal(graphs.knn_graph(pos, 3, num_workers=2, engine='scipy'), reference)
    graphs.radius_graph(pos, 0.3, num_workers=3, engine='scipy')
    graphs.nearest_neighbors(pos, 3, num_workers=-1, engine='scipy')
    graphs.knn(pos, pos[:5], 3, num_workers=4, engine='scipy')
    assert recorded_workers == [2, 3, -1, 4]


def test_num_workers_defaults_to_torch_threads(recorded_workers):
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            graphs.knn_graph(torch.rand(20, 2), 3, engine='scipy')
            graphs.point_cloud_to_data(torch.rand(20, 2), k=3, engine='scipy')
            assert recorded_workers[-2:] == [n, n]
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize('value, error', [(0, ValueError), (-2, ValueError), (1.5, TypeError),
                                          (True, TypeError)])
def test_bad_num_workers(value, error):
    with pytest.raises(error, match="'num_workers'"):
        graphs.knn_graph(torch.rand(10, 2), 2, num_workers=value)

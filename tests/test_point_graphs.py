"""kNN and radius graphs against brute force on random clouds."""
import warnings

import pytest
import torch

import graphs

ENGINES = ['scipy', 'torch']


def brute_force_knn(pos, k, batch, loop):
    """{centre: set of neighbours} from a float64 distance matrix."""
    pos = pos.double()
    result = {}
    for i in range(pos.size(0)):
        same = (batch == batch[i]).nonzero().view(-1).tolist()
        others = [j for j in same if j != i]
        dist = [(float((pos[i] - pos[j]).norm()), j) for j in others]
        dist.sort()
        take = k - 1 if loop else k
        nbrs = {j for _, j in dist[:take]}
        if loop:
            nbrs.add(i)
        result[i] = nbrs
    return result


def brute_force_radius(pos, r, batch, loop, cap):
    pos = pos.double()
    d = torch.cdist(pos, pos)
    result = {}
    for i in range(pos.size(0)):
        cand = [(float(d[i, j]), j) for j in range(pos.size(0))
                if batch[j] == batch[i] and j != i and d[i, j] < r]
        cand.sort()
        take = cap - 1 if loop else cap
        nbrs = {j for _, j in cand[:take]}
        if loop:
            nbrs.add(i)
        result[i] = nbrs
    return result


def as_neighbour_sets(edge_index, n, flow='source_to_target'):
    nb, centre = edge_index if flow == 'source_to_target' else edge_index.flip(0)
    result = {i: set() for i in range(n)}
    for j, i in zip(nb.tolist(), centre.tolist()):
        assert j not in result[i], 'duplicate edge'
        result[i].add(j)
    return result


def random_batch(sizes, dim, seed):
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(sum(sizes), dim, generator=g)
    batch = torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))
    return pos, batch


@pytest.mark.parametrize('engine', ENGINES)
@pytest.mark.parametrize('dim', [2, 3, 5])
@pytest.mark.parametrize('sizes', [[1], [40], [17, 3, 60], [8, 8]])
@pytest.mark.parametrize('loop', [False, True])
def test_knn_equals_brute_force(engine, dim, sizes, loop):
    pos, batch = random_batch(sizes, dim, seed=sum(sizes) + dim)
    k = 6
    edge_index = graphs.knn_graph(pos, k, batch, loop=loop, engine=engine)
    assert as_neighbour_sets(edge_index, pos.size(0)) == brute_force_knn(pos, k, batch, loop)


@pytest.mark.parametrize('engine', ENGINES)
def test_knn_order_and_flow(engine):
    pos, batch = random_batch([30, 20], 3, seed=1)
    e = graphs.knn_graph(pos, 4, batch, engine=engine)
    centre = e[1]
    assert torch.equal(centre, centre.sort().values)
    d = (pos[e[0]] - pos[e[1]]).norm(dim=1).view(-1, 4)
    assert bool((d[:, 1:] >= d[:, :-1]).all())  # nearest first
    e2 = graphs.knn_graph(pos, 4, batch, flow='target_to_source', engine=engine)
    assert torch.equal(e2, e.flip(0))
    assert torch.equal(batch[e[0]], batch[e[1]])  # no cross-cloud edges


def test_knn_engines_agree_on_large_cloud():
    pos, batch = random_batch([3000, 2000], 3, seed=3)
    a = graphs.knn_graph(pos, 16, batch, engine='scipy')
    b = graphs.knn_graph(pos, 16, batch, engine='torch')
    # float32 distances may order near-ties differently from scipy's float64 ones.
    assert torch.equal(a[1], b[1])
    assert as_neighbour_sets(a, 5000) == as_neighbour_sets(b, 5000)


def test_knn_torch_engine_small_blocks():
    pos, batch = random_batch([50, 1, 70], 2, seed=4)
    a = graphs.knn_graph(pos, 5, batch, engine='scipy')
    b = graphs.knn_graph(pos, 5, batch, engine='torch')
    c = graphs.nearest_neighbors(pos, 5, batch, engine='torch', max_block=7)[0]
    assert torch.equal(a, b)
    assert torch.equal(graphs.neighbors_to_edge_index(c), a)


def test_knn_k_larger_than_cloud():
    pos, batch = random_batch([3, 1, 5], 2, seed=5)
    e = graphs.knn_graph(pos, 10, batch)
    counts = torch.bincount(e[1], minlength=9).tolist()
    assert counts == [2, 2, 2, 0, 4, 4, 4, 4, 4]
    e = graphs.knn_graph(pos, 10, batch, loop=True)
    assert torch.bincount(e[1], minlength=9).tolist() == [3, 3, 3, 1, 5, 5, 5, 5, 5]


@pytest.mark.parametrize('engine', ENGINES)
def test_knn_duplicate_points(engine):
    pos = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    e = graphs.knn_graph(pos, 2, engine=engine)
    nbrs = as_neighbour_sets(e, 5)
    assert nbrs[0] == {1, 2} and nbrs[1] == {0, 2} and nbrs[2] == {0, 1}
    e = graphs.knn_graph(pos, 2, loop=True, engine=engine)
    nbrs = as_neighbour_sets(e, 5)
    assert all(i in nbrs[i] for i in range(5))  # self always kept, even among duplicates
    assert all(len(s) == 2 for s in nbrs.values())


def test_knn_cosine():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(40, 4, generator=g) * torch.rand(40, 1, generator=g) * 10
    e = graphs.knn_graph(x, 3, cosine=True)
    xn = torch.nn.functional.normalize(x.double(), dim=1)
    sim = xn @ xn.t()
    sim.fill_diagonal_(-2)
    ref = {i: set(sim[i].topk(3).indices.tolist()) for i in range(40)}
    assert as_neighbour_sets(e, 40) == ref


def test_empty_cloud_and_empty_batch_entries():
    pos = torch.rand(6, 3)
    batch = torch.tensor([0, 0, 0, 2, 2, 2])  # cloud 1 is empty
    e = graphs.knn_graph(pos, 2, batch)
    assert as_neighbour_sets(e, 6) == brute_force_knn(pos, 2, batch, False)
    assert graphs.knn_graph(torch.empty(0, 3), 4).shape == (2, 0)


@pytest.mark.parametrize('engine', ENGINES)
@pytest.mark.parametrize('loop', [False, True])
@pytest.mark.parametrize('cap', [3, 32])
def test_radius_equals_brute_force(engine, loop, cap):
    pos, batch = random_batch([25, 40, 2], 3, seed=7)
    e = graphs.radius_graph(pos, 0.35, batch, loop=loop, max_num_neighbors=cap, engine=engine)
    assert as_neighbour_sets(e, pos.size(0)) == brute_force_radius(pos, 0.35, batch, loop, cap)


def test_matches_pyg_signature():
    import inspect
    import torch_geometric.nn as pyg_nn
    for ours, theirs in [(graphs.knn_graph, pyg_nn.knn_graph),
                         (graphs.radius_graph, pyg_nn.radius_graph)]:
        ours_params = list(inspect.signature(ours).parameters)
        theirs_params = list(inspect.signature(theirs).parameters)
        assert ours_params[:len(theirs_params)] == theirs_params


@pytest.mark.parametrize('call,error,match', [
    (lambda: graphs.knn_graph(torch.rand(5, 2), 0), ValueError, "'k'"),
    (lambda: graphs.knn_graph(torch.rand(5, 2), 2.5), TypeError, "'k'"),
    (lambda: graphs.knn_graph(torch.rand(5, 2, 2), 2), ValueError, "'x' must have shape"),
    (lambda: graphs.knn_graph(torch.zeros(5, 2, dtype=torch.bool), 2), TypeError, "'x'"),
    (lambda: graphs.knn_graph(torch.tensor([[2 ** 53 + 1, 0]] * 3), 2), ValueError, '2\\*\\*53'),
    (lambda: graphs.knn_graph(torch.tensor([[0.0, float('nan')]] * 3), 2), ValueError, 'NaN'),
    (lambda: graphs.knn_graph(torch.tensor([[0.0, float('inf')]] * 3), 2), ValueError, 'infinite'),
    (lambda: graphs.knn_graph(torch.rand(5, 2), 2, torch.zeros(4, dtype=torch.long)),
     ValueError, "'batch'"),
    (lambda: graphs.knn_graph(torch.rand(5, 2), 2, torch.zeros(5)), TypeError, "'batch'"),
    (lambda: graphs.knn_graph(torch.rand(3, 2), 2, torch.tensor([1, 0, 1])), ValueError, 'sorted'),
    (lambda: graphs.knn_graph(torch.rand(3, 2), 2, torch.tensor([-1, 0, 0])), ValueError,
     'non-negative'),
    (lambda: graphs.knn_graph(torch.rand(3, 2), 2, flow='up'), ValueError, "'flow'"),
    (lambda: graphs.knn_graph(torch.rand(3, 2), 2, engine='kd'), ValueError, "'engine'"),
    (lambda: graphs.radius_graph(torch.rand(5, 2), 0.0), ValueError, "'r'"),
    (lambda: graphs.radius_graph(torch.rand(5, 2), -1.0), ValueError, "'r'"),
    (lambda: graphs.radius_graph(torch.rand(5, 2), float('nan')), ValueError, "'r'"),
    (lambda: graphs.radius_graph(torch.rand(5, 2), 1.0, max_num_neighbors=0), ValueError,
     'max_num_neighbors'),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_without_scipy_auto_searches_with_torch(monkeypatch):
    """scipy is a dependency, yet bare images (the lent GPU machines') may lack it: 'auto'
    then takes the torch engine, the same graph, and asking for scipy says what is missing."""
    from graphs import neighbors
    pos, batch = random_batch([30, 12], 3, seed=5)
    expected = graphs.knn_graph(pos, 4, batch, engine='scipy')
    monkeypatch.setattr(neighbors, '_has_scipy', lambda: False)
    assert 'scipy' not in graphs.available_engines()
    assert 'torch' in graphs.available_engines()
    assert torch.equal(graphs.knn_graph(pos, 4, batch), expected)
    with pytest.raises(ValueError, match="engine='scipy' needs scipy"):
        graphs.knn_graph(pos, 4, batch, engine='scipy')
    # A large cloud says why it is slow (brute force on the CPU); a small one does not.
    monkeypatch.setattr(neighbors, 'SLOW_CLOUD', 25)
    with pytest.warns(UserWarning, match='scipy is not installed.*brute force'):
        graphs.knn_graph(pos, 4, batch)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        graphs.knn_graph(pos[30:], 4)                       # 12 points
        graphs.knn_graph(pos, 4, batch, engine='torch')     # asked for: no warning

"""Bipartite knn / radius with PyG's signatures, and PyG's own kNN code run on them.

References are brute force: a float64 torch.cdist, masked to each cloud.
"""
import inspect

import pytest
import torch
import torch_geometric
import torch_geometric.nn as pyg_nn
import torch_geometric.transforms as T
from torch_geometric.data import Batch, Data

import graphs

ENGINES = ['scipy', 'torch']


def edge_set(edge_index):
    return set(map(tuple, edge_index.t().tolist()))


def cloud_distances(x, y, batch_x, batch_y):
    """(M, N) float64 distances from every y to every x, inf across clouds."""
    d = torch.cdist(y.double(), x.double())
    d[batch_y.view(-1, 1) != batch_x.view(1, -1)] = float('inf')
    return d


def brute_knn(x, y, k, batch_x, batch_y):
    """{(y index, x index)} of the k nearest points of x to each y of the same cloud."""
    d = cloud_distances(x, y, batch_x, batch_y)
    edges = set()
    for i in range(y.size(0)):
        order = d[i].argsort().tolist()[:k]
        edges |= {(i, j) for j in order if d[i, j] < float('inf')}
    return edges


def brute_radius(x, y, r, batch_x, batch_y, cap, skip_same_index=False):
    d = cloud_distances(x, y, batch_x, batch_y)
    edges = set()
    for i in range(y.size(0)):
        inside = [(float(d[i, j]), j) for j in range(x.size(0))
                  if d[i, j] < r and not (skip_same_index and i == j)]
        edges |= {(i, j) for _, j in sorted(inside)[:cap]}
    return edges


def random_pair(sizes_x, sizes_y, dim, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(sum(sizes_x), dim, generator=g)
    y = torch.rand(sum(sizes_y), dim, generator=g)
    batch_x = torch.arange(len(sizes_x)).repeat_interleave(torch.tensor(sizes_x))
    batch_y = torch.arange(len(sizes_y)).repeat_interleave(torch.tensor(sizes_y))
    return x, y, batch_x, batch_y


PAIRS = [([30], [12]), ([10, 25, 3], [5, 0, 9]), ([4, 0, 20], [6, 3, 2]), ([1], [7])]


# Item 1: graphs.knn / graphs.radius against brute force, in PyG's edge convention.
@pytest.mark.parametrize('engine', ENGINES)
@pytest.mark.parametrize('sizes_x, sizes_y', PAIRS)
@pytest.mark.parametrize('dim', [2, 3, 6])
def test_knn_equals_brute_force(engine, sizes_x, sizes_y, dim):
    x, y, bx, by = random_pair(sizes_x, sizes_y, dim, seed=sum(sizes_x) + dim)
    for k in (1, 4, 50):
        e = graphs.knn(x, y, k, bx, by, engine=engine)
        assert edge_set(e) == brute_knn(x, y, k, bx, by)
        # Grouped by query (row 0 = y), nearest first within a query.
        assert torch.equal(e[0], e[0].sort(stable=True).values)
        d = (y[e[0]] - x[e[1]]).norm(dim=1)
        same_query = e[0][1:] == e[0][:-1]
        assert bool((d[1:][same_query] >= d[:-1][same_query]).all())


@pytest.mark.parametrize('engine', ENGINES)
@pytest.mark.parametrize('sizes_x, sizes_y', PAIRS)
@pytest.mark.parametrize('cap', [2, 32])
def test_radius_equals_brute_force(engine, sizes_x, sizes_y, cap):
    x, y, bx, by = random_pair(sizes_x, sizes_y, 3, seed=cap + len(sizes_x))
    e = graphs.radius(x, y, 0.45, bx, by, max_num_neighbors=cap, engine=engine)
    assert edge_set(e) == brute_radius(x, y, 0.45, bx, by, cap)


@pytest.mark.parametrize('engine', ENGINES)
def test_knn_cosine_equals_brute_force(engine):
    x, y, bx, by = random_pair([20, 15], [6, 4], 5, seed=9)
    x, y = x - 0.5, y - 0.5
    xn = torch.nn.functional.normalize(x.double(), dim=1)
    yn = torch.nn.functional.normalize(y.double(), dim=1)
    e = graphs.knn(x, y, 3, bx, by, cosine=True, engine=engine)
    assert edge_set(e) == brute_knn(xn, yn, 3, bx, by)


def test_pyg_docstring_example_and_defaults():
    # torch_geometric.nn.knn's example: for each y, neighbours in x; row 0 indexes y.
    x = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
    y = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])
    batch_x, batch_y = torch.tensor([0, 0, 0, 0]), torch.tensor([0, 0])
    assert edge_set(graphs.knn(x, y, 2, batch_x, batch_y)) == {(0, 0), (0, 1), (1, 2), (1, 3)}
    assert edge_set(graphs.radius(x, y, 1.5, batch_x, batch_y)) == \
        {(0, 0), (0, 1), (1, 2), (1, 3)}
    assert edge_set(graphs.knn(x, y, 2)) == edge_set(graphs.knn(x, y, 2, batch_x, batch_y))


def test_empty_sides():
    x, y = torch.rand(5, 3), torch.rand(4, 3)
    assert graphs.knn(x, y[:0], 2).shape == (2, 0)
    assert graphs.knn(x[:0], y, 2).shape == (2, 0)
    assert graphs.radius(x[:0], y, 1.0).shape == (2, 0)
    # A query cloud with no point of x gets no neighbour.
    e = graphs.knn(x, y, 2, torch.zeros(5, dtype=torch.long), torch.tensor([0, 0, 1, 1]))
    assert set(e[0].tolist()) == {0, 1}


def test_matches_pyg_signatures():
    for ours, theirs in [(graphs.knn, pyg_nn.knn), (graphs.radius, pyg_nn.radius),
                         (graphs.knn_graph, pyg_nn.knn_graph),
                         (graphs.radius_graph, pyg_nn.radius_graph)]:
        names = list(inspect.signature(theirs).parameters)
        assert list(inspect.signature(ours).parameters)[:len(names)] == names


@pytest.mark.parametrize('call, error, match', [
    (lambda: graphs.knn(torch.rand(5, 3), torch.rand(2, 2), 1), ValueError, "'y'"),
    (lambda: graphs.knn(torch.rand(5, 3), torch.rand(2, 3), 0), ValueError, "'k'"),
    (lambda: graphs.knn(torch.rand(5, 3), [[0., 0., 0.]], 1), TypeError, "'y'"),
    (lambda: graphs.knn(torch.rand(5, 3), torch.rand(2, 3), 1, torch.zeros(4, dtype=torch.long)),
     ValueError, "'batch_x'"),
    (lambda: graphs.knn(torch.rand(5, 3), torch.rand(2, 3), 1, None, torch.tensor([1, 0])),
     ValueError, "'batch_y'"),
    (lambda: graphs.radius(torch.rand(5, 3), torch.rand(2, 3), 0.0), ValueError, "'r'"),
    (lambda: graphs.radius(torch.rand(5, 3), torch.rand(2, 3), 1.0, max_num_neighbors=0),
     ValueError, "'max_num_neighbors'"),
    (lambda: graphs.radius(torch.rand(5, 3), torch.tensor([[float('nan')] * 3]), 1.0),
     ValueError, "'y'"),
])
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


# Item 1, second half: PyG's own kNN code without pyg-lib or torch-cluster.
# PyG 2.8 searches through pyg-lib's operators behind these flags; before 2.8 it calls
# torch-cluster, and the backend refuses (tested below).
PYG_HAS_FLAGS = hasattr(torch_geometric.typing, 'WITH_KNN')
needs_no_pyg_lib = pytest.mark.skipif(
    not PYG_HAS_FLAGS or torch_geometric.typing.WITH_KNN or torch_geometric.typing.WITH_RADIUS,
    reason='pyg-lib provides knn/radius here (the backend would leave them alone), '
           'or PyG is older than 2.8 (no operators to provide)')


@pytest.mark.skipif(PYG_HAS_FLAGS, reason='PyG >= 2.8: the backend is supported')
def test_backend_before_pyg_2_8_says_what_it_needs():
    with pytest.raises(RuntimeError, match=r'torch_geometric>=2\.8.*graphs\.knn'):
        graphs.use_as_pyg_backend()


def _backend_is_off():
    return (not torch_geometric.typing.WITH_KNN and not torch_geometric.typing.WITH_RADIUS
            and not hasattr(torch.ops.pyg, 'knn') and not hasattr(torch.ops.pyg, 'radius'))


@needs_no_pyg_lib
def test_pyg_knn_needs_pyg_lib_without_the_backend():
    assert _backend_is_off()
    with pytest.raises(ImportError):
        pyg_nn.knn(torch.rand(4, 2), torch.rand(2, 2), 1)
    with pytest.raises(ImportError):
        pyg_nn.DynamicEdgeConv(torch.nn.Linear(4, 2), k=2)


@needs_no_pyg_lib
def test_pyg_functions_on_the_backend_equal_ours_and_brute_force():
    x, y, bx, by = random_pair([10, 25, 3], [5, 0, 9], 3, seed=1)
    with graphs.use_as_pyg_backend():
        e = pyg_nn.knn(x, y, 4, bx, by)
        assert torch.equal(e, graphs.knn(x, y, 4, bx, by))
        assert edge_set(e) == brute_knn(x, y, 4, bx, by)
        e = pyg_nn.radius(x, y, 0.45, bx, by, max_num_neighbors=3)
        assert edge_set(e) == brute_radius(x, y, 0.45, bx, by, 3)
        for loop in (False, True):
            for flow in ('source_to_target', 'target_to_source'):
                e = pyg_nn.knn_graph(x, 4, bx, loop=loop, flow=flow)
                assert edge_set(e) == edge_set(graphs.knn_graph(x, 4, bx, loop=loop, flow=flow))
                e = pyg_nn.radius_graph(x, 0.45, bx, loop=loop, flow=flow, max_num_neighbors=5)
                assert edge_set(e) == edge_set(graphs.radius_graph(
                    x, 0.45, bx, loop=loop, flow=flow, max_num_neighbors=5))
        e = pyg_nn.radius_graph(x, 0.45, bx, max_num_neighbors=5)
        # source_to_target: row 0 = neighbour, row 1 = centre.
        assert edge_set(e) == {(j, i) for i, j in brute_radius(x, x, 0.45, bx, bx, 5, True)}
    assert _backend_is_off()


@needs_no_pyg_lib
def test_dynamic_edge_conv_on_the_backend():
    torch.manual_seed(0)
    x = torch.randn(30, 4, requires_grad=True)
    batch = torch.tensor([0] * 12 + [1] * 18)
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    with graphs.use_as_pyg_backend():
        conv = pyg_nn.DynamicEdgeConv(mlp, k=4, aggr='max')
        out = conv(x, batch)
    # Reference: each node's 4 nearest nodes of its cloud (itself first), max over messages.
    d = cloud_distances(x.detach(), x.detach(), batch, batch)
    expected = []
    for i in range(30):
        nbrs = d[i].argsort()[:4]
        messages = mlp(torch.cat([x[i].expand(4, -1), x[nbrs] - x[i]], dim=1))
        expected.append(messages.max(dim=0).values)
    expected = torch.stack(expected)
    assert torch.allclose(out, expected, atol=1e-6)
    out.sum().backward()  # gradients flow through the messages; the search is not differentiated
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert _backend_is_off()


@needs_no_pyg_lib
def test_knn_interpolate_on_the_backend():
    g = torch.Generator().manual_seed(2)
    pos_x, pos_y = torch.rand(40, 3, generator=g), torch.rand(25, 3, generator=g)
    feats = torch.randn(40, 6, generator=g)
    batch_x = torch.tensor([0] * 15 + [1] * 25)
    batch_y = torch.tensor([0] * 10 + [1] * 15)
    with graphs.use_as_pyg_backend():
        out = pyg_nn.knn_interpolate(feats, pos_x, pos_y, batch_x, batch_y, k=3)
    d = cloud_distances(pos_x, pos_y, batch_x, batch_y)
    dist, nbrs = d.topk(3, dim=1, largest=False)
    w = 1.0 / dist.pow(2).clamp(min=1e-16)
    expected = (w.unsqueeze(-1) * feats.double()[nbrs]).sum(1) / w.sum(1, keepdim=True)
    assert torch.allclose(out.double(), expected, atol=1e-5)


@needs_no_pyg_lib
def test_graph_transforms_on_the_backend():
    g = torch.Generator().manual_seed(3)
    clouds = [Data(pos=torch.rand(n, 3, generator=g)) for n in (14, 20)]
    batch = Batch.from_data_list(clouds)
    with graphs.use_as_pyg_backend():
        knn_data = T.KNNGraph(k=3)(batch.clone())
        radius_data = T.RadiusGraph(r=0.4, max_num_neighbors=50)(batch.clone())
        single = T.KNNGraph(k=5, loop=True)(clouds[0].clone())
    b = batch.batch
    # source_to_target: (neighbour, centre) = (x index, y index) flipped.
    assert edge_set(knn_data.edge_index) == {
        (j, i) for i, j in brute_knn(batch.pos, batch.pos, 4, b, b) if i != j}
    assert edge_set(radius_data.edge_index) == {
        (j, i) for i, j in brute_radius(batch.pos, batch.pos, 0.4, b, b, 50, True)}
    zeros = torch.zeros(14, dtype=torch.long)
    assert edge_set(single.edge_index) == {
        (j, i) for i, j in brute_knn(clouds[0].pos, clouds[0].pos, 5, zeros, zeros)}


@needs_no_pyg_lib
def test_backend_is_reversible_nestable_and_explicit():
    assert _backend_is_off()
    backend = graphs.use_as_pyg_backend()  # active at once, without a with block
    assert backend.active and torch_geometric.typing.WITH_KNN and hasattr(torch.ops.pyg, 'knn')
    with graphs.use_as_pyg_backend():  # nested: the outer activation still holds after it
        pass
    assert torch_geometric.typing.WITH_RADIUS and hasattr(torch.ops.pyg, 'radius')
    backend.restore()
    backend.restore()  # a second restore does nothing
    assert not backend.active and _backend_is_off()
    with pytest.raises(RuntimeError, match='inside'):
        with graphs.use_as_pyg_backend():
            raise RuntimeError('inside')
    assert _backend_is_off()
    with pytest.raises(ImportError):
        pyg_nn.knn_graph(torch.rand(5, 2), 2)


@needs_no_pyg_lib
def test_after_the_backend_torch_compile_still_works():
    """The operators go with torch's cached packets: torch <= 2.12 kept stale
    ``torch.ops.pyg.knn`` packets when a Library was merely dropped, and the next
    compile that enumerates the operators (AOT autograd's decompositions) failed."""
    with graphs.use_as_pyg_backend():
        pyg_nn.knn_graph(torch.rand(6, 2), 2)           # caches torch.ops.pyg.knn
    assert 'knn' not in vars(torch.ops.pyg) and 'knn' not in torch.ops.pyg._dir
    from torch._decomp import core_aten_decompositions
    assert len(core_aten_decompositions().keys()) > 0   # enumerates every namespace
    x = torch.randn(4, 3, requires_grad=True)
    compiled = torch.compile(lambda t: (t.sin() * 2).sum(), backend='aot_eager', fullgraph=True)
    compiled(x).backward()
    assert torch.allclose(x.grad, 2 * x.detach().cos())


@needs_no_pyg_lib
def test_gravnet_conv_on_the_backend():
    torch.manual_seed(1)
    x = torch.randn(25, 4)
    batch = torch.tensor([0] * 10 + [1] * 15)
    with graphs.use_as_pyg_backend():
        conv = pyg_nn.GravNetConv(4, 3, space_dimensions=2, propagate_dimensions=5, k=4)
        out = conv(x, batch)
    # Reference: the 4 nearest nodes in the learned space s (itself first), messages
    # h_j * exp(-10 |s_i - s_j|^2), mean and max, then the two output maps.
    with torch.no_grad():
        s, h = conv.lin_s(x), conv.lin_h(x)
        d = cloud_distances(s, s, batch, batch)
        rows = []
        for i in range(25):
            nbrs = d[i].argsort()[:4]
            w = torch.exp(-10.0 * (s[nbrs] - s[i]).pow(2).sum(-1))
            messages = h[nbrs] * w.unsqueeze(1)
            rows.append(torch.cat([messages.mean(0), messages.max(0).values]))
        expected = conv.lin_out1(x) + conv.lin_out2(torch.stack(rows))
    assert torch.allclose(out, expected, atol=1e-6)

"""Every public function and module under hostile input.

Each case either raises an error that names the offending argument, or gives a
documented result that is checked against a reference: wrong ranks and widths,
bad batch vectors and indices, NaN/inf, empty and single-node graphs, 1x1 /
1xW / Hx1 maps, clouds smaller than k, 1e4-scaled inputs (softmax overflow),
non-contiguous and channels-last tensors, and dtypes other than the module's.
"""
import copy
import itertools

import networkx as nx
import pytest
import torch

import graphs
from graphattn import LGA, LGA2d, LGAConv, LGALoss, LatentGNN, LatentGNN2d, patch_labels

DT = torch.float64


# Thousands of tiny ops: run them on one intra-op thread (see conftest.one_thread).
pytestmark = pytest.mark.usefixtures('one_thread')
NAN, INF = float('nan'), float('inf')


def _pos(n=6, d=3):
    return torch.rand(n, d, generator=torch.Generator().manual_seed(n))


# --------------------------------------------------------------------------
# Graph builders: bad input raises an error naming the argument.

def _grid_cases():
    return [
        ('grid_graph/height=0', lambda: graphs.grid_graph(0, 3), ValueError, "'height'"),
        ('grid_graph/width float', lambda: graphs.grid_graph(2, 3.0), TypeError, "'width'"),
        ('grid_graph/height tensor', lambda: graphs.grid_graph(torch.tensor(2), 3), TypeError,
         "'height'"),
        ('grid_graph/connectivity', lambda: graphs.grid_graph(2, 2, connectivity=6), ValueError,
         "'connectivity'"),
        ('grid_stencil/dilation=0', lambda: graphs.grid_stencil(8, 0), ValueError, "'dilation'"),
        ('grid_stencil/self_loops str', lambda: graphs.grid_stencil(8, 1, 'no'), TypeError,
         "'self_loops'"),
        ('feature_map_to_batch/rank 3', lambda: graphs.feature_map_to_batch(torch.randn(3, 4, 4)),
         ValueError, "'x'"),
        ('feature_map_to_batch/int', lambda: graphs.feature_map_to_batch(
            torch.zeros(1, 2, 3, 3, dtype=torch.long)), TypeError, "'x'"),
        ('feature_map_to_batch/B=0', lambda: graphs.feature_map_to_batch(torch.zeros(0, 2, 3, 3)),
         ValueError, "'x'"),
        ('feature_map_to_batch/H=0', lambda: graphs.feature_map_to_batch(torch.zeros(1, 2, 0, 3)),
         ValueError, "'x'"),
        ('batch_to_feature_map/not a batch', lambda: graphs.batch_to_feature_map(
            torch.randn(2, 3)), TypeError, "'batch'"),
        ('batch_to_feature_map/no grid_size', lambda: graphs.batch_to_feature_map(
            graphs.point_cloud_to_data(_pos(), k=2)), ValueError, "'batch'"),
        ('batch_to_feature_map/x rows', lambda: graphs.batch_to_feature_map(
            graphs.feature_map_to_batch(torch.randn(2, 3, 4, 5)), torch.randn(39, 3)),
         ValueError, "'x'"),
        ('batch_to_feature_map/x rank 1', lambda: graphs.batch_to_feature_map(
            graphs.feature_map_to_batch(torch.randn(2, 3, 4, 5)), torch.randn(40)),
         ValueError, "'x'"),
        ('feature_map_to_nodes/rank 3', lambda: graphs.feature_map_to_nodes(torch.randn(3, 4, 4)),
         ValueError, "'x'"),
        ('nodes_to_feature_map/rank 2', lambda: graphs.nodes_to_feature_map(
            torch.randn(12, 3), 3, 4), ValueError, "'x'"),
        ('nodes_to_feature_map/node count', lambda: graphs.nodes_to_feature_map(
            torch.randn(2, 11, 3), 3, 4), ValueError, "'x'"),
        ('nodes_to_feature_map/height=0', lambda: graphs.nodes_to_feature_map(
            torch.randn(2, 0, 3), 0, 4), ValueError, "'height'"),
        ('receptive_field/height=0', lambda: graphs.receptive_field(0, 3, (0, 0), 1), ValueError,
         "'height'"),
        ('receptive_field/hops<0', lambda: graphs.receptive_field(3, 3, (0, 0), -1), ValueError,
         "'hops'"),
        ('receptive_field/pixel outside', lambda: graphs.receptive_field(3, 3, (3, 0), 1),
         ValueError, "'pixel'"),
        ('receptive_field/pixel negative', lambda: graphs.receptive_field(3, 3, (-1, 0), 1),
         ValueError, "'pixel'"),
        ('receptive_field/pixel float', lambda: graphs.receptive_field(3, 3, (1.5, 0), 1),
         TypeError, "'pixel'"),
        ('receptive_field/pixel triple', lambda: graphs.receptive_field(3, 3, (1, 0, 0), 1),
         TypeError, "'pixel'"),
        ('receptive_field/pixel tensor', lambda: graphs.receptive_field(
            3, 3, torch.tensor([1, 1]), 1), TypeError, "'pixel'"),
    ]


def _point_cases():
    pos = _pos()
    cases = []
    # The three kNN/radius entry points share their checks of positions and batch.
    builders = {
        'knn_graph': (lambda p, **kw: graphs.knn_graph(p, 2, **kw), "'x'"),
        'radius_graph': (lambda p, **kw: graphs.radius_graph(p, 0.5, **kw), "'x'"),
        'nearest_neighbors': (lambda p, **kw: graphs.nearest_neighbors(p, 2, **kw), "'pos'"),
        'point_cloud_to_data': (lambda p, **kw: graphs.point_cloud_to_data(p, k=2, **kw),
                                "'pos'"),
    }
    for name, (build, pos_name) in builders.items():
        cases += [
            (f'{name}/NaN', lambda b=build: b(torch.tensor([[0., 0.], [NAN, 1.]])), ValueError,
             pos_name),
            (f'{name}/inf', lambda b=build: b(torch.tensor([[0., 0.], [INF, 1.]])), ValueError,
             pos_name),
            (f'{name}/-inf', lambda b=build: b(torch.tensor([[0., -INF], [0., 1.]])), ValueError,
             pos_name),
            (f'{name}/bool positions', lambda b=build: b(torch.zeros(3, 2, dtype=torch.bool)),
             TypeError, pos_name),
            (f'{name}/rank 3', lambda b=build: b(torch.zeros(3, 2, 1)), ValueError, pos_name),
            (f'{name}/rank 0', lambda b=build: b(torch.tensor(1.)), ValueError, pos_name),
            (f'{name}/D=0', lambda b=build: b(torch.zeros(4, 0)), ValueError, pos_name),
            (f'{name}/list', lambda b=build: b([[0., 1.]]), TypeError, pos_name),
            (f'{name}/batch float', lambda b=build: b(pos, batch=torch.zeros(6)), TypeError,
             "'batch'"),
            (f'{name}/batch negative', lambda b=build: b(pos, batch=torch.tensor(
                [-1, 0, 0, 0, 0, 0])), ValueError, "'batch'"),
            (f'{name}/batch short', lambda b=build: b(pos, batch=torch.zeros(
                5, dtype=torch.long)), ValueError, "'batch'"),
            (f'{name}/batch 2-D', lambda b=build: b(pos, batch=torch.zeros(
                6, 1, dtype=torch.long)), ValueError, "'batch'"),
            (f'{name}/batch unsorted', lambda b=build: b(pos, batch=torch.tensor(
                [1, 1, 0, 0, 0, 0])), ValueError, "'batch'"),
            (f'{name}/loop str', lambda b=build: b(pos, loop='yes'), TypeError, "'loop'"),
        ]
    cases += [
        ('knn_graph/k=0', lambda: graphs.knn_graph(pos, 0), ValueError, "'k'"),
        ('knn_graph/k float', lambda: graphs.knn_graph(pos, 2.0), TypeError, "'k'"),
        ('knn_graph/flow', lambda: graphs.knn_graph(pos, 2, flow='up'), ValueError, "'flow'"),
        ('knn_graph/engine', lambda: graphs.knn_graph(pos, 2, engine='gpu'), ValueError,
         "'engine'"),
        ('nearest_neighbors/k=-1', lambda: graphs.nearest_neighbors(pos, -1), ValueError, "'k'"),
        ('nearest_neighbors/r=0', lambda: graphs.nearest_neighbors(pos, 2, r=0.), ValueError,
         "'r'"),
        ('radius_graph/r=0', lambda: graphs.radius_graph(pos, 0), ValueError, "'r'"),
        ('radius_graph/r NaN', lambda: graphs.radius_graph(pos, NAN), ValueError, "'r'"),
        ('radius_graph/r inf', lambda: graphs.radius_graph(pos, INF), ValueError, "'r'"),
        ('radius_graph/max_num_neighbors=0', lambda: graphs.radius_graph(
            pos, 1., max_num_neighbors=0), ValueError, "'max_num_neighbors'"),
        # The search builders accept integer positions (as torch-cluster does); a Data
        # object stores pos and float offsets, so point_cloud_to_data does not.
        ('point_cloud_to_data/int positions', lambda: graphs.point_cloud_to_data(
            torch.zeros(3, 2, dtype=torch.long), k=2), TypeError, "'pos'"),
        ('point_cloud_to_data/k and r', lambda: graphs.point_cloud_to_data(pos, k=2, r=1.),
         ValueError, "'k'"),
        ('point_cloud_to_data/x rows', lambda: graphs.point_cloud_to_data(
            pos, torch.randn(5, 2), k=2), ValueError, "'x'"),
        ('point_cloud_to_data/x rank 3', lambda: graphs.point_cloud_to_data(
            pos, torch.randn(6, 2, 1), k=2), ValueError, "'x'"),
        ('point_cloud_to_data/empty batch', lambda: graphs.point_cloud_to_data(
            torch.zeros(0, 3), k=2, batch=torch.zeros(0, dtype=torch.long)), ValueError,
         "'batch'"),
        ('latent_graph/float batch', lambda: graphs.latent_graph(torch.tensor([0., 1.]), 2),
         TypeError, "'nodes'"),
        ('latent_graph/unsorted', lambda: graphs.latent_graph(torch.tensor([1, 0]), 2),
         ValueError, "'nodes'"),
        ('latent_graph/negative count', lambda: graphs.latent_graph(-1, 2), ValueError,
         "'nodes'"),
        ('latent_graph/num_latent=0', lambda: graphs.latent_graph(3, 0), ValueError,
         "'num_latent'"),
        ('latent_graph/affinity NaN', lambda: graphs.latent_graph(
            3, 2, affinity=torch.full((3, 2), NAN)), ValueError, "'affinity'"),
        ('latent_graph/affinity shape', lambda: graphs.latent_graph(
            3, 2, affinity=torch.zeros(3, 3)), ValueError, "'affinity'"),
    ]
    return cases


def _networkx_cases():
    pos = _pos()
    data = graphs.point_cloud_to_data(pos, k=2)

    def with_edges(edge_index):
        bad = copy.copy(data)
        bad.edge_index = edge_index
        return bad
    return [
        ('to_networkx/not Data', lambda: graphs.to_networkx(torch.zeros(2)), TypeError,
         "'data'"),
        ('to_networkx/edge out of range', lambda: graphs.to_networkx(
            with_edges(torch.tensor([[0, 6], [1, 0]]))), ValueError, "edge_index"),
        ('to_networkx/negative edge', lambda: graphs.to_networkx(
            with_edges(torch.tensor([[0, -1], [1, 0]]))), ValueError, "edge_index"),
        ('to_networkx/float edge', lambda: graphs.to_networkx(
            with_edges(torch.tensor([[0., 1.], [1., 0.]]))), TypeError, "edge_index"),
        ('to_networkx/edge_index rank 1', lambda: graphs.to_networkx(
            with_edges(torch.tensor([0, 1]))), ValueError, "edge_index"),
        ('to_networkx/missing node attr', lambda: graphs.to_networkx(data, node_attrs=['x']),
         KeyError, "node_attrs"),
        ('to_networkx/missing edge attr', lambda: graphs.to_networkx(data, edge_attrs=['w']),
         KeyError, "edge_attrs"),
        ('to_networkx/edge value length', lambda: graphs.to_networkx(
            data, edge_values={'a': torch.zeros(3)}), ValueError, "edge_values"),
        ('from_networkx/not a graph', lambda: graphs.from_networkx(3), TypeError, "'G'"),
    ]


GRAPH_CASES = _grid_cases() + _point_cases() + _networkx_cases()


@pytest.mark.parametrize('call, error, match',
                         [pytest.param(c, e, m, id=i) for i, c, e, m in GRAPH_CASES])
def test_graph_builders_name_the_bad_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------------
# Graph builders: edge cases with a documented result, checked against references.

def _brute_force_knn(pos, k, batch, loop=False):
    """Edges (neighbour, centre) of the k nearest points of the same cloud."""
    edges = set()
    for i in range(pos.size(0)):
        same = [j for j in range(pos.size(0)) if batch[j] == batch[i] and (loop or j != i)]
        d = [(float((pos[j] - pos[i]).norm()) if j != i else -1.0, j) for j in same]
        edges |= {(j, i) for _, j in sorted(d)[:k]}
    return edges


def _edge_set(edge_index):
    return set(map(tuple, edge_index.t().tolist()))


@pytest.mark.parametrize('engine', ['scipy', 'torch'])
@pytest.mark.parametrize('loop', [False, True])
def test_knn_with_k_larger_than_clouds_and_empty_clouds_in_the_batch(engine, loop):
    # Clouds of 3, 0 (index 1 skipped), 1 and 4 points, k = 10: every point gets the
    # other points of its cloud (itself too with loop=True), never a point of another.
    batch = torch.tensor([0, 0, 0, 2, 3, 3, 3, 3])
    pos = _pos(8, 2)
    edge_index = graphs.knn_graph(pos, 10, batch, loop=loop, engine=engine)
    assert _edge_set(edge_index) == _brute_force_knn(pos, 10, batch, loop)
    assert edge_index.size(1) == len(_brute_force_knn(pos, 10, batch, loop))
    index, dist = graphs.nearest_neighbors(pos, 10, batch, loop=loop, engine=engine)
    assert index.shape == dist.shape == (8, 10)
    assert bool((index[3] >= 0).sum() == int(loop))  # the single-point cloud
    assert bool(torch.isinf(dist[index < 0]).all())
    data = graphs.point_cloud_to_data(pos, torch.randn(8, 2), k=10, batch=batch, loop=loop,
                                      engine=engine)
    assert data.num_graphs == 4 and data[1].num_nodes == 0 and data[1].edge_index.size(1) == 0
    assert torch.equal(data.edge_attr, data.pos[data.edge_index[0]] - data.pos[data.edge_index[1]])


def test_radius_graph_with_empty_clouds_and_single_points():
    batch = torch.tensor([0, 0, 0, 2, 3, 3])
    pos = torch.tensor([[0., 0.], [0.5, 0.], [3., 0.], [0., 0.], [0., 0.], [0.2, 0.]])
    edges = _edge_set(graphs.radius_graph(pos, 1.0, batch))
    assert edges == {(0, 1), (1, 0), (4, 5), (5, 4)}
    assert _edge_set(graphs.radius_graph(pos, 1.0, batch, loop=True)) == edges | {
        (i, i) for i in range(6)}


@pytest.mark.parametrize('n, loop, expected', [(0, False, 0), (0, True, 0), (1, False, 0),
                                               (1, True, 1)])
def test_empty_and_single_point_clouds(n, loop, expected):
    pos = _pos(n, 3)
    assert graphs.knn_graph(pos, 4, loop=loop).shape == (2, expected)
    assert graphs.radius_graph(pos, 1.0, loop=loop).shape == (2, expected)
    data = graphs.point_cloud_to_data(pos, k=4, loop=loop)
    assert data.num_nodes == n and data.edge_attr.shape == (expected, 3)
    back = graphs.from_networkx(graphs.to_networkx(data))
    assert back.num_nodes == n and back.edge_index.shape == (2, expected)


def test_one_dimensional_positions_are_read_as_d_equal_1():
    x = torch.tensor([0., 1., 3., 7.])
    index, dist = graphs.nearest_neighbors(x, 1)
    assert index.view(-1).tolist() == [1, 0, 1, 2]
    assert dist.view(-1).tolist() == [1., 1., 2., 4.]


def test_half_precision_positions_on_every_engine():
    pos = _pos(20, 3)
    expected = _edge_set(graphs.knn_graph(pos.bfloat16().float(), 19))
    for dtype, engine in itertools.product((torch.float16, torch.bfloat16), ('scipy', 'torch')):
        rounded = pos.to(dtype)
        assert _edge_set(graphs.knn_graph(rounded.float(), 19)) == _edge_set(
            graphs.knn_graph(rounded, 19, engine=engine)), (dtype, engine)
    assert len(expected) == 20 * 19


def test_non_contiguous_positions_give_the_same_graph():
    pos = _pos(30, 3)
    strided = torch.randn(3, 30).t()  # (30, 3), not contiguous
    strided.copy_(pos)
    assert not strided.is_contiguous()
    for engine in ('scipy', 'torch'):
        assert torch.equal(graphs.knn_graph(strided, 5, engine=engine),
                           graphs.knn_graph(pos, 5, engine=engine))


def _grid_reference(h, w):
    """8-connected grid with self-loops, from the definition."""
    return {(r2 * w + c2, r * w + c) for r, c, r2, c2 in itertools.product(
        range(h), range(w), range(h), range(w)) if abs(r - r2) <= 1 and abs(c - c2) <= 1}


@pytest.mark.parametrize('h, w', [(1, 1), (1, 5), (5, 1), (2, 3)])
def test_thin_and_single_pixel_grids(h, w):
    g = graphs.grid_graph(h, w)
    assert _edge_set(g.edge_index) == _grid_reference(h, w)
    assert g.edge_index.size(1) == graphs.grid_edge_count(h, w)
    fmap = torch.randn(2, 3, h, w)
    batch = graphs.feature_map_to_batch(fmap)
    assert torch.equal(graphs.batch_to_feature_map(batch), fmap)
    nodes = graphs.feature_map_to_nodes(fmap)
    assert torch.equal(graphs.nodes_to_feature_map(nodes, h, w), fmap)
    field = graphs.receptive_field(h, w, (0, 0), 1)
    assert int(field.sum()) == min(h, 2) * min(w, 2)


@pytest.mark.parametrize('h, w', [(1, 1), (1, 5), (5, 1), (2, 3), (4, 6)])
@pytest.mark.parametrize('connectivity, dilation', [(8, 1), (4, 1), (8, 2)])
def test_grid_edges_of_the_compiled_paths_equal_grid_graph(h, w, connectivity, dilation):
    # LGA2d's message-passing path and LGALoss build grid edges with static shapes.
    from graphs.grid import grid_edges
    stencil = graphs.grid_stencil(connectivity, dilation)
    edge_index, direction = grid_edges(h, w, stencil.tolist())
    g = graphs.grid_graph(h, w, connectivity=connectivity, dilation=dilation)
    ours = dict(zip(map(tuple, edge_index.t().tolist()), direction.tolist()))
    theirs = dict(zip(map(tuple, g.edge_index.t().tolist()), g.edge_attr.argmax(1).tolist()))
    assert ours == theirs and edge_index.size(1) == g.edge_index.size(1)


@pytest.mark.parametrize('layout', ['channels_last', 'strided'])
def test_non_contiguous_feature_maps_convert_exactly(layout):
    fmap = torch.randn(2, 3, 4, 5)
    x = fmap.to(memory_format=torch.channels_last) if layout == 'channels_last' else \
        torch.randn(2, 3, 4, 10)[..., ::2].copy_(fmap)
    assert not x.is_contiguous()
    assert torch.equal(graphs.batch_to_feature_map(graphs.feature_map_to_batch(x)), fmap)
    assert torch.equal(graphs.feature_map_to_nodes(x), graphs.feature_map_to_nodes(fmap))
    # A layer output in (B*H*W, C) may itself be non-contiguous.
    batch = graphs.feature_map_to_batch(fmap)
    out = torch.randn(3, 40).t()
    assert torch.equal(graphs.batch_to_feature_map(batch, out),
                       graphs.batch_to_feature_map(batch, out.contiguous()))


def test_latent_graph_keeps_latent_nodes_of_empty_graphs():
    g = graphs.latent_graph(torch.tensor([0, 0, 2]), 2)
    assert g.total_latent_nodes == 6
    assert _edge_set(g.edge_index) == {(0, 0), (0, 1), (1, 0), (1, 1), (2, 4), (2, 5)}
    G = graphs.latent_to_networkx(g)
    assert G.number_of_nodes() == 3 + 6 and nx.is_isolate(G, ('latent', 2))


# --------------------------------------------------------------------------
# Layers: bad input raises an error naming the argument.

def _grid_inputs():
    g = graphs.grid_graph(3, 3)
    return torch.randn(9, 4), g.edge_index, g.edge_attr


def _layer_cases():
    x, ei, ea = _grid_inputs()
    conv, lga = LGAConv(4, 4, 9), LGA(4, 4, num_layers=2)
    pconv = LGAConv(4, 4, 2, edge_encoder='mlp')
    lga2d = LGA2d(4, num_layers=1)
    node = LatentGNN(8, [3], channel_stride=2, norm='batch')  # the single-node case below
    grid = LatentGNN2d(8, [3], channel_stride=2)
    loss = LGALoss()
    nodes, labels = torch.randn(4, 3), torch.zeros(4, dtype=torch.long)
    cases = [
        # LGAConv and LGA on nodes.
        ('LGAConv/x rank 1', lambda: conv(x[:, 0], ei, ea), ValueError, "'x'"),
        ('LGAConv/x channels', lambda: conv(x[:, :3], ei, ea), ValueError, "'x'"),
        ('LGAConv/x int', lambda: conv(x.long(), ei, ea), TypeError, "'x'"),
        ('LGAConv/x float64', lambda: conv(x.double(), ei, ea), TypeError, "'x' has dtype"),
        ('LGAConv/edge_index float', lambda: conv(x, ei.float(), ea), TypeError, "'edge_index'"),
        ('LGAConv/edge_index rows', lambda: conv(x, ei[:1], ea), ValueError, "'edge_index'"),
        ('LGAConv/edge_index too large', lambda: conv(x, ei + 1, ea), IndexError, "edge_index"),
        ('LGAConv/edge_index negative', lambda: conv(x, ei - 1, ea), IndexError, "edge_index"),
        ('LGAConv/edge_attr width', lambda: conv(x, ei, ea[:, :3]), ValueError, "'edge_attr'"),
        ('LGAConv/edge_attr rows', lambda: conv(x, ei, ea[1:]), ValueError, "'edge_attr'"),
        ('LGAConv/no edge_attr', lambda: conv(x, ei), ValueError, "'edge_attr'"),
        ('LGAConv/pos rows', lambda: pconv(x, ei, pos=torch.randn(8, 2)), ValueError,
         "'pos'"),
        ('LGAConv/pos rank 3', lambda: pconv(x, ei, pos=torch.randn(9, 2, 1)), ValueError,
         "'pos'"),
        ('LGAConv/pos int', lambda: pconv(x, ei, pos=torch.zeros(9, 2, dtype=torch.long)),
         ValueError, "'pos'"),
        ('LGAConv/pos with float edge_index', lambda: pconv(x, ei.float(), pos=torch.randn(9, 2)),
         TypeError, "'edge_index'"),
        ('LGA/x rank 1', lambda: lga(x[:, 0], ei, ea), ValueError, "'x'"),
        ('LGA/x channels', lambda: lga(x[:, :3], ei, ea), ValueError, "'x'"),
        ('LGA/x float64', lambda: lga(x.double(), ei, ea), TypeError, "'x' has dtype"),
        ('LGA/batch float', lambda: lga(x, ei, ea, batch=torch.zeros(9)), TypeError, "'batch'"),
        ('LGA/batch length', lambda: lga(x, ei, ea, batch=torch.zeros(8, dtype=torch.long)),
         ValueError, "'batch'"),
        ('LGA/edge_index too large', lambda: lga(x, ei + 1, ea), IndexError, "edge_index"),
        ('LGA/pos edge_index too large', lambda: LGA(4, 4, 1, edge_dim=2, edge_encoder='mlp')(
            x, ei + 1, pos=torch.randn(9, 2)), IndexError, "'edge_index'"),
        # LGA2d, both paths.
        *[(f'LGA2d[{p}]/{name}', lambda p=p, t=t: lga2d(t, path=p), error, match)
          for p in ('fused', 'message_passing')
          for name, t, error, match in [
              ('rank 3', torch.randn(4, 3, 3), ValueError, "'x'"),
              ('rank 5', torch.randn(1, 4, 3, 3, 1), ValueError, "'x'"),
              ('channels', torch.randn(1, 3, 3, 3), ValueError, "'x'"),
              ('int', torch.zeros(1, 4, 3, 3, dtype=torch.long), TypeError, "'x'"),
              ('float64', torch.randn(1, 4, 3, 3, dtype=DT), TypeError, "'x' has dtype"),
              ('H=0', torch.randn(1, 4, 0, 3), ValueError, "'x'"),
              ('W=0', torch.randn(1, 4, 3, 0), ValueError, "'x'")]],
        ('LGA2d/path', lambda: lga2d(torch.randn(1, 4, 3, 3), path='slow'), ValueError, "'path'"),
        # LatentGNN on nodes.
        ('LatentGNN/x rank 3', lambda: node(torch.randn(2, 4, 8)), ValueError, "'x'"),
        ('LatentGNN/x channels', lambda: node(torch.randn(5, 7)), ValueError, "'x'"),
        ('LatentGNN/x int', lambda: node(torch.zeros(5, 8, dtype=torch.long)), TypeError, "'x'"),
        ('LatentGNN/x float64', lambda: node(torch.randn(5, 8, dtype=DT)), TypeError,
         "'x' has dtype"),
        ('LatentGNN/batch float', lambda: node(torch.randn(5, 8), torch.zeros(5)), TypeError,
         "'batch'"),
        ('LatentGNN/batch negative', lambda: node(torch.randn(5, 8), torch.tensor(
            [-1, 0, 0, 0, 0])), ValueError, "'batch'"),
        ('LatentGNN/batch length', lambda: node(torch.randn(5, 8), torch.zeros(
            4, dtype=torch.long)), ValueError, "'batch'"),
        ('LatentGNN/batch unsorted', lambda: node(torch.randn(5, 8), torch.tensor(
            [1, 0, 0, 0, 0])), ValueError, "'batch'"),
        ('LatentGNN/batch_size 0', lambda: node(torch.randn(5, 8), torch.zeros(
            5, dtype=torch.long), batch_size=0), ValueError, "'batch_size'"),
        ('LatentGNN/batch_size float', lambda: node(torch.randn(5, 8), torch.zeros(
            5, dtype=torch.long), batch_size=1.5), TypeError, "'batch_size'"),
        ('LatentGNN/batch_size too small', lambda: node(torch.randn(5, 8), torch.tensor(
            [0, 0, 1, 1, 2]), batch_size=2), ValueError, "batch_size"),
        ('LatentGNN/max_num_nodes 0', lambda: node(torch.randn(5, 8), torch.zeros(
            5, dtype=torch.long), max_num_nodes=0), ValueError, "'max_num_nodes'"),
        ('LatentGNN/max_num_nodes too small', lambda: node(torch.randn(5, 8), torch.zeros(
            5, dtype=torch.long), max_num_nodes=4), ValueError, "'max_num_nodes'"),
        ('LatentGNN/single node, batch norm, training', lambda: node.train()(torch.randn(1, 8)),
         ValueError, "'x' holds a single node"),
        ('LatentGNN/path', lambda: node(torch.randn(5, 8), path='dense'), ValueError, "'path'"),
        # LatentGNN2d.
        ('LatentGNN2d/rank 3', lambda: grid(torch.randn(8, 3, 3)), ValueError, "'x'"),
        ('LatentGNN2d/channels', lambda: grid(torch.randn(1, 7, 3, 3)), ValueError, "'x'"),
        ('LatentGNN2d/float64', lambda: grid(torch.randn(1, 8, 3, 3, dtype=DT)), TypeError,
         "'x' has dtype"),
        ('LatentGNN2d/one 1x1 map, batch norm, training', lambda: grid.train()(
            torch.randn(1, 8, 1, 1)), ValueError, "'x' holds a single node"),
        # LGALoss and patch_labels.
        ('LGALoss/latent rank 3', lambda: loss(torch.randn(2, 3, 1), labels), ValueError,
         "'input'"),
        ('LGALoss/latent int', lambda: loss(torch.zeros(4, 3, dtype=torch.long), labels),
         TypeError, "'input'"),
        ('LGALoss/target float', lambda: loss(nodes, labels.float(), torch.tensor([[0], [1]])),
         TypeError, "'target'"),
        ('LGALoss/target length', lambda: loss(nodes, labels[:3], torch.tensor([[0], [1]])),
         ValueError, "'target'"),
        ('LGALoss/map target batch', lambda: loss(torch.randn(2, 3, 2, 2), torch.zeros(
            1, 4, 4, dtype=torch.long)), ValueError, "'target'"),
        ('LGALoss/no edge_index', lambda: loss(nodes, labels), ValueError, "'edge_index'"),
        ('LGALoss/edge_index float', lambda: loss(nodes, labels, torch.tensor([[0.], [1.]])),
         TypeError, "'edge_index'"),
        ('LGALoss/edge_index too large', lambda: loss(nodes, labels, torch.tensor([[0], [4]])),
         IndexError, "'edge_index'"),
        ('LGALoss/edge_index negative', lambda: loss(nodes, labels, torch.tensor([[-1], [1]])),
         IndexError, "'edge_index'"),
        ('LGALoss/edge_index rank 1', lambda: loss(nodes, labels, torch.tensor([0, 1])),
         ValueError, "'edge_index'"),
        ('LGALoss/random pairs, batch unsorted', lambda: LGALoss(num_random_pairs=2)(
            nodes, labels, batch=torch.tensor([1, 1, 0, 0])), ValueError, "'batch'"),
        ('LGALoss/random pairs, batch float', lambda: LGALoss(num_random_pairs=2)(
            nodes, labels, batch=torch.zeros(4)), TypeError, "'batch'"),
        ('LGALoss/random pairs, batch_size too small', lambda: LGALoss(num_random_pairs=2)(
            nodes, labels, batch=torch.tensor([0, 0, 1, 1]), batch_size=1), ValueError,
         "batch_size"),
        ('patch_labels/float', lambda: patch_labels(torch.zeros(4, 4), 2), TypeError,
         "'label_map'"),
        ('patch_labels/rank 4', lambda: patch_labels(torch.zeros(1, 1, 4, 4, dtype=torch.long),
                                                     2), ValueError, "'label_map'"),
        ('patch_labels/negative label', lambda: patch_labels(
            -torch.ones(4, 4, dtype=torch.long), 2), ValueError, "'label_map'"),
        ('patch_labels/H=0', lambda: patch_labels(torch.zeros(1, 0, 4, dtype=torch.long), 1),
         ValueError, "'label_map'"),
        ('patch_labels/grid 0', lambda: patch_labels(torch.zeros(4, 4, dtype=torch.long), 0),
         ValueError, "'grid_size'"),
        ('patch_labels/grid does not divide', lambda: patch_labels(
            torch.zeros(4, 4, dtype=torch.long), 3), ValueError, "'grid_size'"),
    ]
    return cases


LAYER_CASES = _layer_cases()


@pytest.mark.parametrize('call, error, match',
                         [pytest.param(c, e, m, id=i) for i, c, e, m in LAYER_CASES])
def test_layers_name_the_bad_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------------
# Layers: documented results on awkward but valid input, checked against references.

def _active(module):
    """Eval mode, and gamma = 1 for LatentGNN so that the block is not the identity."""
    if hasattr(module, 'gamma'):
        with torch.no_grad():
            module.gamma.fill_(1.0)
    return module.eval()


def _modules_on_maps():
    torch.manual_seed(0)
    return {
        'LGA2d[fast]': (LGA2d(4, 6, num_layers=2), {'path': 'fused'}),
        'LGA2d[message_passing]': (LGA2d(4, 6, num_layers=2), {'path': 'message_passing'}),
        'LatentGNN2d[fused]': (_active(LatentGNN2d(4, [3], channel_stride=2)), {}),
        'LatentGNN2d[message_passing]': (_active(LatentGNN2d(4, [3], channel_stride=2)),
                                         {'path': 'message_passing'}),
    }


MAP_MODULES = list(_modules_on_maps())


@pytest.mark.parametrize('name', MAP_MODULES)
@pytest.mark.parametrize('h, w', [(1, 1), (1, 6), (6, 1)])
def test_single_pixel_and_thin_maps_equal_the_float64_node_reference(name, h, w):
    module, kwargs = _modules_on_maps()[name]
    x = torch.randn(2, 4, h, w)
    out = module(x, **kwargs)
    assert out.shape[2:] == (h, w) and bool(torch.isfinite(out).all())
    # Reference: the same parameters on the graph of the map, in float64, per image.
    ref64 = copy.deepcopy(module).double()
    for b in range(2):
        nodes = graphs.feature_map_to_nodes(x[b:b + 1].double())[0]
        if isinstance(module, LGA2d):
            g = graphs.grid_graph(h, w)
            y = LGA.forward(ref64, nodes, g.edge_index, g.edge_attr.double())
        else:
            y = LatentGNN.forward(ref64, nodes)
        expected = graphs.nodes_to_feature_map(y.unsqueeze(0), h, w)
        assert torch.allclose(out[b:b + 1].double(), expected, atol=1e-5)


@pytest.mark.parametrize('name', MAP_MODULES)
@pytest.mark.parametrize('layout', ['channels_last', 'strided', 'transposed'])
def test_non_contiguous_maps_equal_the_contiguous_result(name, layout):
    module, kwargs = _modules_on_maps()[name]
    x = torch.randn(2, 4, 5, 6)
    if layout == 'channels_last':
        y = x.to(memory_format=torch.channels_last)
    elif layout == 'strided':
        y = torch.zeros(2, 4, 5, 12)[..., ::2]
        y.copy_(x)
    else:  # a (B, C, H, W) view of a (B, C, W, H) tensor
        y = x.transpose(2, 3).contiguous().transpose(2, 3)
    assert not y.is_contiguous() and torch.equal(y, x)
    assert torch.allclose(module(y, **kwargs), module(x, **kwargs), atol=1e-6, rtol=0)


@pytest.mark.parametrize('name', MAP_MODULES)
def test_empty_batch_of_maps(name):
    module, kwargs = _modules_on_maps()[name]
    out = module(torch.randn(0, 4, 3, 5), **kwargs)
    channels = 4 + 6 if isinstance(module, LGA2d) else 4
    assert out.shape == (0, channels, 3, 5)


def _node_graph():
    """Two kNN clouds with an empty cloud between them, and a single-point cloud."""
    pos = _pos(12, 3)
    batch = torch.tensor([0] * 5 + [2] * 6 + [3])
    data = graphs.point_cloud_to_data(pos, torch.randn(12, 4), k=4, batch=batch, loop=True)
    return data


def _node_modules():
    torch.manual_seed(0)
    return {
        'LGAConv': lambda d, m: m(d.x, d.edge_index, d.edge_attr),
        'LGA': lambda d, m: m(d.x, d.edge_index, pos=d.pos),
        'LatentGNN[fused]': lambda d, m: m(d.x, d.batch),
        'LatentGNN[message_passing]': lambda d, m: m(d.x, d.batch, path='message_passing'),
    }


def _make_node_module(name):
    torch.manual_seed(0)
    if name == 'LGAConv':
        return LGAConv(4, 6, 3, edge_encoder='mlp', att_channels=5)
    if name == 'LGA':
        return LGA(4, 6, num_layers=2, edge_dim=3, edge_encoder='mlp')
    return _active(LatentGNN(4, [3], channel_stride=2, norm='layer'))


NODE_MODULES = list(_node_modules())


@pytest.mark.parametrize('name', NODE_MODULES)
def test_empty_and_single_node_graphs_in_a_batch_equal_each_graph_alone(name):
    data = _node_graph()
    module, run = _make_node_module(name).eval(), _node_modules()[name]
    out = run(data, module)
    assert out.shape[0] == 12 and bool(torch.isfinite(out).all())
    start = 0
    for graph in data.to_data_list():
        n = graph.num_nodes
        graph.batch = torch.zeros(n, dtype=torch.long)
        if n == 0:
            assert graph.edge_index.size(1) == 0
            assert run(graph, module).shape == (0, out.size(1))
        else:
            assert torch.allclose(out[start:start + n], run(graph, module), atol=1e-6)
        start += n
    if name == 'LGAConv':
        # The single-point cloud (its self-loop only): the softmax over one edge is 1.
        assert torch.allclose(out[-1], torch.relu(module.lin_value(data.x[-1])), atol=1e-6)


@pytest.mark.parametrize('name', NODE_MODULES)
def test_non_contiguous_node_features_equal_the_contiguous_result(name):
    data = _node_graph()
    module, run = _make_node_module(name), _node_modules()[name]
    strided = copy.copy(data)
    strided.x = torch.zeros(4, 12).t()
    strided.x.copy_(data.x)
    strided.pos = torch.zeros(12, 6)[:, ::2]
    strided.pos.copy_(data.pos)
    strided.edge_attr = data.edge_attr.t().contiguous().t()
    assert not strided.x.is_contiguous() and not strided.pos.is_contiguous()
    assert torch.allclose(run(strided, module), run(data, module), atol=1e-6, rtol=0)


def test_edge_attributes_and_positions_of_another_dtype_are_cast_to_the_features():
    # Documented in LGAConv.forward: edge_attr (and pos offsets) follow x's dtype.
    data = _node_graph()
    conv = _make_node_module('LGAConv')
    ref = conv(data.x, data.edge_index, data.edge_attr)
    assert torch.equal(conv(data.x, data.edge_index, data.edge_attr.double().float()), ref)
    assert torch.allclose(conv(data.x, data.edge_index, data.edge_attr.double()), ref, atol=1e-6)
    lga = _make_node_module('LGA')
    assert torch.allclose(lga(data.x, data.edge_index, pos=data.pos.double()),
                          lga(data.x, data.edge_index, pos=data.pos), atol=1e-6)


def test_lower_precision_inputs_run_under_autocast():
    # Outside autocast a bf16 input to a float32 module is refused (see the table
    # above); inside, autocast owns the dtypes.
    torch.manual_seed(0)
    module = LGA2d(4, num_layers=2).eval()
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = module(x.bfloat16())
        ref = module(x.bfloat16().float())
    assert bool(torch.isfinite(out).all())
    assert float((out.float() - ref).abs().max()) <= 0.02 * float(ref.abs().max())
    with pytest.raises(TypeError, match="'x' has dtype torch.bfloat16"):
        module(x.bfloat16())


def _large_value_cases():
    """name -> (module, call(module, *inputs), inputs): inputs scaled by 1e4."""
    torch.manual_seed(0)
    s = 1e4
    g = graphs.grid_graph(5, 6)
    pos = _pos(30, 3)
    knn = graphs.knn_graph(pos, 6, loop=True)
    x, fmap = torch.randn(30, 8) * s, torch.randn(2, 8, 5, 6) * s
    batch = torch.tensor([0] * 12 + [1] * 18)
    latent = torch.randn(2, 5, 4, 4) * s
    target = torch.randint(0, 3, (2, 8, 8))
    node_latent, node_target = torch.randn(30, 5) * s, torch.randint(0, 3, (30,))

    def latentgnn(cls, **kw):
        return _active(cls(8, [4], channel_stride=2, graph_conv=True, **kw))
    return {
        'LGAConv[softmax]': (LGAConv(8, 8, 9), lambda m, x: m(x, g.edge_index, g.edge_attr),
                             (x,)),
        'LGAConv[sigmoid]': (LGAConv(8, 8, 9, normalize='sigmoid'),
                             lambda m, x: m(x, g.edge_index, g.edge_attr), (x,)),
        'LGAConv[mlp, pos]': (LGAConv(8, 8, 3, edge_encoder='mlp'),
                              lambda m, x, p: m(x, knn, pos=p), (x, pos)),
        'LGA': (LGA(8, 8, 3), lambda m, x: m(x, g.edge_index, g.edge_attr), (x,)),
        'LGA2d[fast]': (LGA2d(8, 8, 3), lambda m, x: m(x, path='fused'), (fmap,)),
        'LGA2d[message_passing]': (LGA2d(8, 8, 3), lambda m, x: m(x, path='message_passing'),
                                   (fmap,)),
        'LatentGNN[fused]': (latentgnn(LatentGNN, norm='layer'),
                             lambda m, x: m(x, batch), (x,)),
        'LatentGNN[message_passing]': (latentgnn(LatentGNN, norm='layer'),
                                       lambda m, x: m(x, batch, path='message_passing'), (x,)),
        'LatentGNN2d': (latentgnn(LatentGNN2d), lambda m, x: m(x), (fmap,)),
        'LGALoss[sym_kl, map]': (LGALoss(), lambda m, z: m(z, target), (latent,)),
        'LGALoss[js, map]': (LGALoss(divergence='js'), lambda m, z: m(z, target), (latent,)),
        'LGALoss[sym_kl, nodes]': (LGALoss(), lambda m, z: m(z, node_target, knn),
                                   (node_latent,)),
    }


LARGE_VALUE_CASES = list(_large_value_cases())


@pytest.mark.parametrize('name', LARGE_VALUE_CASES)
def test_large_inputs_do_not_overflow_and_equal_a_float64_reference(name):
    # Logits of order 1e4 overflow exp() in float32 (and float64) unless the
    # softmax subtracts the maximum; outputs must stay finite and match float64.
    module, call, inputs = _large_value_cases()[name]
    module = module.eval()
    with torch.no_grad():
        out = call(module, *inputs)
        ref = call(copy.deepcopy(module).double(), *[t.double() for t in inputs])
    assert bool(torch.isfinite(out).all())
    scale = float(ref.abs().max())
    assert scale > 0.0
    assert float((out.double() - ref).abs().max()) <= 1e-5 * scale


@pytest.mark.parametrize('path', ['fused', 'message_passing'])
def test_nan_in_a_feature_map_spreads_exactly_over_the_receptive_field(path):
    # Values are not checked (as in torch.nn); a NaN pixel reaches exactly the
    # pixels within L hops, so no NaN leaks through the masked out-of-image edges.
    torch.manual_seed(0)
    layers, h, w = 2, 7, 8
    module = LGA2d(3, 4, num_layers=layers)
    x = torch.randn(1, 3, h, w)
    for pixel in [(0, 0), (3, 4), (6, 7)]:
        bad = x.clone()
        bad[0, :, pixel[0], pixel[1]] = NAN
        _, latent = module(bad, path=path, return_latent=True)
        nan = torch.isnan(latent[0]).any(dim=0)
        assert torch.equal(nan, graphs.receptive_field(h, w, pixel, layers)), pixel


@pytest.mark.parametrize('path', ['fused', 'message_passing'])
def test_nan_in_one_graph_stays_in_that_graph(path):
    module = _make_node_module('LatentGNN[fused]')
    data = _node_graph()
    x = data.x.clone()
    x[0, 0] = NAN  # graph 0 holds nodes 0..4
    out = module(x, data.batch, path=path)
    assert bool(torch.isnan(out[:5]).any())
    assert torch.allclose(out[5:], module(data.x, data.batch, path=path)[5:], atol=1e-6)


def test_loss_without_pairs_is_zero_with_zero_gradients():
    # A 1x1 latent map has no neighbour pairs; random pairs of a one-node graph
    # pair a node with itself and are dropped.
    latent = torch.randn(2, 3, 1, 1, requires_grad=True)
    for loss in (LGALoss(), LGALoss(num_random_pairs=4)):
        value = loss(latent, torch.zeros(2, 4, 4, dtype=torch.long))
        value.backward()
        assert float(value) == 0.0 and torch.equal(latent.grad, torch.zeros_like(latent))
    nodes = torch.randn(0, 3, requires_grad=True)
    value = LGALoss(num_random_pairs=3)(nodes, torch.zeros(0, dtype=torch.long))
    assert float(value) == 0.0


def test_random_pairs_never_come_from_an_empty_graph():
    torch.manual_seed(0)
    latent = torch.randn(6, 3, requires_grad=True)
    target = torch.tensor([0, 1, 0, 1, 0, 1])
    batch = torch.tensor([0, 0, 0, 2, 2, 2])  # graph 1 is empty
    loss = LGALoss(num_random_pairs=50, reduction='sum')
    value = loss(latent, target, batch=batch)
    value.backward()
    assert bool(torch.isfinite(value)) and bool(torch.isfinite(latent.grad).all())
    # batch_size counts a trailing empty graph too; the loss is the same function.
    torch.manual_seed(1)
    a = loss(latent, target, batch=batch)
    torch.manual_seed(1)
    b = loss(latent, target, batch=batch, batch_size=3)
    assert torch.equal(a, b)


def _patch_labels_reference(label_map, h, w, ignore_index=-100):
    b, height, width = label_map.shape
    ph, pw = height // h, width // w
    out = torch.empty(b, h, w, dtype=torch.long)
    for i, r, c in itertools.product(range(b), range(h), range(w)):
        values = [v for v in label_map[i, r * ph:(r + 1) * ph, c * pw:(c + 1) * pw].reshape(
            -1).tolist() if v != ignore_index]
        out[i, r, c] = max(set(values), key=lambda v: (values.count(v), -v)) if values \
            else ignore_index
    return out


@pytest.mark.parametrize('b, h, w, ph, pw', [(2, 3, 2, 4, 3), (1, 1, 1, 5, 5), (3, 2, 1, 1, 4),
                                             (0, 2, 2, 2, 2)])
def test_patch_labels_equal_a_counting_reference(b, h, w, ph, pw):
    torch.manual_seed(b + h + w)
    label_map = torch.randint(0, 4, (b, h * ph, w * pw))
    label_map[torch.rand(label_map.shape) < 0.3] = -100
    if b:
        label_map[0, :ph, :pw] = -100  # one all-ignored patch
    assert torch.equal(patch_labels(label_map, (h, w)), _patch_labels_reference(label_map, h, w))

"""Every module and path on ``--device`` against a CPU float64 reference.

``pytest tests/test_cuda_parity.py --device cuda`` runs each case on the GPU;
without the flag (CI) the same cases run on the CPU in float32, so this module
cannot rot between the sessions that have a GPU. The reference is always the
general path (message passing) of the same module and weights in float64 on the
CPU: a case checks the device and the path at once, values and the gradients
of the inputs and of every parameter.

Tolerances, per dtype (stated once here, used by every case):

* float32: ``rtol=5e-4, atol=5e-5`` elementwise against float64 (TF32 is
  switched off for these tests: the references are exact products);
* autocast: the relative error ``||got - ref|| / ||ref||`` of the output and of
  the input's gradient, at most ``2e-2`` for bfloat16 (8 bits of mantissa) and
  ``4e-3`` for float16 (11 bits), on inputs of unit scale.

On a GPU the kernels are other kernels than on the CPU (cuBLAS, Triton from
inductor, the gather fallback of the table path instead of the CPU's CSR
products), which is what these cases are for. ``path='compiled'`` and the
inductor test compile C++ on the CPU (about a minute per configuration), so
there they run through ``aot_eager`` instead (same functions, no code
generation) and ``--device cuda`` runs inductor.

The cases of bad input (mixed devices, indices out of range) come after the
numerical ones: on a GPU a device-side assert, which these tests exist to prevent,
would spoil every CUDA test after it. The torch.compile tests, the slowest, are last.
"""
import copy

import pytest
import torch
import torch._dynamo
import torch_geometric.typing

import graphs
from graphattn import LGA, LGA2d, LGAConv, LGALoss, LatentGNN, LatentGNN2d
from graphattn import compiled_grid_attention, compiled_neighbor_attention
from graphattn.compiled_kernel import compile_kernels

pytestmark = pytest.mark.usefixtures('one_thread', 'exact_float32')

F32 = {'rtol': 5e-4, 'atol': 5e-5}
AUTOCAST = {torch.bfloat16: (2e-2, 5e-2), torch.float16: (4e-3, 1e-2)}  # output, gradient
READINGS = [('center', 1), ('neighbor', 2), ('pair', 1), ('pair', 2)]


@pytest.fixture
def exact_float32():
    """No TF32 in cuBLAS and cuDNN: float32 must be float32 for the stated tolerances."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture
def fresh_dynamo():
    """For the compile tests only: a reset elsewhere would recompile the compiled grid
    kernel in every test (seconds each with inductor on a GPU)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.fixture
def compiled_kernel(device, monkeypatch):
    """``path='compiled'``: inductor on a GPU (Triton kernels, what the path is for); on
    the CPU the same functions through ``aot_eager``, since inductor's C++ build takes
    about a minute per configuration there (tests/test_compiled_grid_attention.py runs
    it). The autograd Function, the shapes and the layer's plumbing are the same."""
    if device.type == 'cpu':
        # A fresh Dynamo cache per test: aot_eager recompiles in about a second, while
        # the entries of earlier tests (other heads, dtypes) would make it trace the
        # kernel with dynamic shapes, several times slower. On a GPU the cache is kept:
        # there each inductor compile takes seconds.
        torch._dynamo.reset()
        for kernel in (compiled_grid_attention, compiled_neighbor_attention):
            monkeypatch.setattr(kernel, '_KERNELS', compile_kernels(kernel._FUNCTIONS, 'aot_eager'))
        yield
        torch._dynamo.reset()
    else:
        yield


def _active(module):
    """LatentGNN starts as the identity (gamma = 0): open it, so the block is tested."""
    if hasattr(module, 'gamma'):
        with torch.no_grad():
            module.gamma.fill_(1.0)
    return module


def _weights(like: torch.Tensor, seed: int) -> torch.Tensor:
    """Fixed random weights of the loss ``sum(w * out)``: unlike ``out.sum()``, their
    gradient does not vanish through a softmax."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(like.shape, generator=g, dtype=torch.float64)


def _run(module, call, inputs, device, dtype=torch.float32, autocast=None, **kw):
    """``call(module, *inputs)`` with the module and the floating inputs on ``device`` in
    ``dtype``; returns ``[out, *input grads, *parameter grads]`` in float64 on the CPU
    (``None`` for an input without gradient)."""
    module = copy.deepcopy(module).to(device=device, dtype=dtype)
    moved = []
    for t in inputs:
        if isinstance(t, torch.Tensor):
            t = t.to(device)
            if t.is_floating_point():
                t = t.to(dtype).requires_grad_()
        moved.append(t)
    if autocast is None:
        out = call(module, *moved, **kw)
    else:
        with torch.autocast(device.type, dtype=autocast):
            out = call(module, *moved, **kw)
    out = out[0] if isinstance(out, tuple) else out
    loss = (out.double() * _weights(out, 0).to(device)).sum()
    leaves = [t for t in moved if isinstance(t, torch.Tensor) and t.requires_grad]
    params = [p for p in module.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, leaves + params, allow_unused=True)
    cpu = lambda t: None if t is None else t.detach().double().cpu()  # noqa: E731
    return [cpu(out)] + [cpu(g) for g in grads]


def _reference(module, call, inputs, **kw):
    return _run(module, call, inputs, torch.device('cpu'), torch.float64, **kw)


def _assert_parity(got, ref, what=''):
    assert len(got) == len(ref)
    for i, (g, r) in enumerate(zip(got, ref)):
        name = 'output' if i == 0 else f'gradient {i}'
        if r is None or g is None:
            assert g is None and r is None, f'{what} {name}: one of them has no gradient'
            continue
        torch.testing.assert_close(g, r, **F32, msg=lambda m: f'{what} {name}: {m}')


def _assert_autocast(got, ref, dtype, what=''):
    """Output and the input's gradient, by relative error norm (see the module docstring)."""
    for i, name in ((0, 'output'), (1, 'input gradient')):
        err = ((got[i] - ref[i]).norm() / ref[i].norm()).item()
        print(f'{what} {dtype} {name}: {err:.2e}')   # measured, for the tolerances above
        assert err <= AUTOCAST[dtype][i], f'{what} {name}: relative error {err:.2e} under ' \
                                          f'{dtype} autocast > {AUTOCAST[dtype][i]}'


# ------------------------------------------------------------------- inputs --
def _map(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 6, 5, 7, generator=g, dtype=torch.float64)


def _cloud(seed=0):
    """Two clouds, 14 and 3 points, the second smaller than k = 5 (a padded table)."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(17, 3, generator=g, dtype=torch.float64)
    batch = torch.tensor([0] * 14 + [1] * 3)
    x = torch.randn(17, 6, generator=g, dtype=torch.float64)
    table, _ = graphs.nearest_neighbors(pos, 5, batch, loop=True)
    return x, pos, batch, table


def _lga2d(score, heads):
    torch.manual_seed(1)
    return LGA2d(6, 4, num_layers=2, score=score, heads=heads, fuse=True)


def _points_lga(score, heads):
    torch.manual_seed(2)
    return LGA(6, 4, num_layers=2, edge_dim=3, edge_encoder='mlp', att_channels=8,
               score=score, heads=heads)


# -------------------------------------------------------------- LGA, grids --
@pytest.mark.parametrize('score,heads', READINGS)
@pytest.mark.parametrize('path', ['fused', 'compiled', 'message_passing'])
def test_lga2d_paths_equal_the_float64_reference(device, compiled_kernel, path, score, heads):
    call = lambda m, x, path: m(x, path=path)  # noqa: E731
    module = _lga2d(score, heads)
    ref = _reference(module, call, [_map()], path='message_passing')
    _assert_parity(_run(module, call, [_map()], device, path=path), ref, f'LGA2d[{path}]')


def test_lga2d_sigmoid_and_four_neighbours_on_the_fused_path(device):
    torch.manual_seed(3)
    module = LGA2d(6, 4, num_layers=2, connectivity=4, dilation=2, normalize='sigmoid',
                   groups=2, act='gelu')
    call = lambda m, x, path: m(x, path=path)  # noqa: E731
    ref = _reference(module, call, [_map()], path='message_passing')
    _assert_parity(_run(module, call, [_map()], device, path='fused'), ref)


# ------------------------------------------------------------- LGA, points --
@pytest.mark.parametrize('score,heads', READINGS)
@pytest.mark.parametrize('path', ['fused', 'compiled', 'message_passing'])
def test_lga_on_a_neighbour_table_equals_the_float64_reference(device, compiled_kernel, path,
                                                               score, heads):
    """The table path (``neighbors=``, padded rows included; eager ``'fused'`` and the
    compiled kernel) and message passing on the same table, against float64 message
    passing."""
    x, pos, _, table = _cloud()
    call = lambda m, x, pos, table, path: m(x, pos=pos, neighbors=table, path=path)  # noqa
    module = _points_lga(score, heads)
    ref = _reference(module, call, [x, pos, table], path='message_passing')
    got = _run(module, call, [x, pos, table], device, path=path)
    _assert_parity(got, ref, f'LGA[{path}, {score}, {heads} heads]')


@pytest.mark.parametrize('score,heads', [('center', 1), ('pair', 2)])
def test_table_as_csr_products_on_the_device(device, monkeypatch, score, heads):
    """The table's CSR products (the CPU's default) forced onto the device, as the device
    check's row "table, CSR products" runs them (cuSPARSE on a GPU), against the float64
    reference; a table that repeats a neighbour takes the gathered weights' gradient."""
    from graphattn import neighbor_attention
    monkeypatch.setattr(neighbor_attention, 'SPARSE_DEVICES', ('cpu', device.type))
    x, pos, _, table = _cloud()
    repeated = table.clone()
    repeated[0, 1] = repeated[0, 2]
    call = lambda m, x, pos, table, path: m(x, pos=pos, neighbors=table, path=path)  # noqa
    module = _points_lga(score, heads)
    for t in (table, repeated):
        ref = _reference(module, call, [x, pos, t], path='message_passing')
        got = _run(module, call, [x, pos, t], device, path='fused')
        _assert_parity(got, ref, f'LGA[CSR products, {score}, {heads} heads]')


def test_lga_on_edge_index_with_edge_attr_equals_the_float64_reference(device):
    x, pos, batch, _ = _cloud()
    edge_index = graphs.knn_graph(pos, 4, batch, loop=True)
    g = torch.Generator().manual_seed(5)
    edge_attr = torch.randn(edge_index.size(1), 3, generator=g, dtype=torch.float64)
    torch.manual_seed(4)
    module = LGA(6, 4, num_layers=2, edge_dim=3, edge_encoder='mlp', normalize='sigmoid',
                 heads=2, concat=False)
    call = lambda m, x, ei, ea, b: m(x, ei, ea, batch=b)  # noqa: E731
    inputs = [x, edge_index, edge_attr, batch]
    _assert_parity(_run(module, call, inputs, device), _reference(module, call, inputs))


def test_bipartite_lgaconv_table_equals_message_passing(device):
    """Centres ``y`` reading neighbours ``x`` (``graphs.knn``): table against edges."""
    g = torch.Generator().manual_seed(6)
    pos_x, pos_y = torch.rand(12, 3, generator=g), torch.rand(5, 3, generator=g)
    x_src = torch.randn(12, 6, generator=g, dtype=torch.float64)
    x_dst = torch.randn(5, 7, generator=g, dtype=torch.float64)
    edge_index = graphs.knn(pos_x, pos_y, 4).flip(0)     # row 0: x (neighbours), 1: y
    table = graphs.to_neighbor_table(edge_index, size=(12, 5))[0]
    torch.manual_seed(7)
    conv = LGAConv((6, 7), 3, 3, heads=2, score='pair', edge_encoder='mlp')
    pos = [pos_x.double(), pos_y.double()]
    call_table = lambda m, a, b, p, q, t: m((a, b), pos=(p, q), neighbors=t)  # noqa: E731
    call_mp = lambda m, a, b, p, q, ei: m((a, b), ei, pos=(p, q))  # noqa: E731
    ref = _reference(conv, call_mp, [x_src, x_dst, *pos, edge_index])
    _assert_parity(_run(conv, call_table, [x_src, x_dst, *pos, table], device), ref)


def test_int32_table_and_an_empty_cloud(device):
    """An int32 table gives the int64 table's result; an empty cloud gives an empty
    output and a backward pass, as on the CPU."""
    x, pos, _, table = _cloud()
    module = _points_lga('center', 1).to(device)
    x, pos = x.float().to(device), pos.float().to(device)
    out64 = module(x, pos=pos, neighbors=table.to(device))
    out32 = module(x, pos=pos, neighbors=table.int().to(device))
    torch.testing.assert_close(out32, out64, rtol=0, atol=0)
    empty = torch.zeros(0, 6, device=device, requires_grad=True)
    no_table = torch.zeros(0, 5, dtype=torch.long, device=device)
    out = module(empty, pos=torch.zeros(0, 3, device=device), neighbors=no_table)
    assert out.shape == (0, 10) and out.device.type == device.type
    out.sum().backward()
    assert empty.grad.shape == (0, 6)


# --------------------------------------------------------------- LatentGNN --
@pytest.mark.parametrize('mode', ['asymmetric', 'symmetric'])
@pytest.mark.parametrize('path', ['fused', 'message_passing'])
def test_latentgnn_on_nodes_equals_the_float64_reference(device, path, mode):
    x, _, batch, _ = _cloud()
    torch.manual_seed(8)
    module = _active(LatentGNN(6, latent_dims=[4, 3], num_kernels=2, mode=mode,
                               graph_conv=True, norm='layer'))
    call = lambda m, x, b, path: m(x, b, path=path)  # noqa: E731
    ref = _reference(module, call, [x, batch], path='message_passing')
    _assert_parity(_run(module, call, [x, batch], device, path=path), ref,
                   f'LatentGNN[{path}, {mode}]')


@pytest.mark.parametrize('path', ['fused', 'message_passing'])
def test_latentgnn2d_equals_the_float64_reference(device, path):
    torch.manual_seed(9)
    module = _active(LatentGNN2d(6, latent_dims=[5], channel_stride=2))   # norm='batch'
    call = lambda m, x, path: m(x, path=path)  # noqa: E731
    ref = _reference(module, call, [_map()], path='message_passing')
    _assert_parity(_run(module, call, [_map()], device, path=path), ref)


# ------------------------------------------------------------------ LGALoss --
def _loss_cases():
    g = torch.Generator().manual_seed(10)
    labels_map = torch.randint(0, 3, (2, 10, 14), generator=g)
    labels_map[0, :2] = -100
    latent_map = torch.randn(2, 5, 5, 7, generator=g, dtype=torch.float64)
    x, pos, batch, _ = _cloud()
    node_labels = torch.randint(0, 3, (17,), generator=g)
    edge_index = graphs.knn_graph(pos, 4, batch, loop=True)
    att_maps = torch.randn(2, 9, 5, 7, generator=g, dtype=torch.float64).softmax(1)
    alpha = torch.rand(edge_index.size(1), 2, generator=g, dtype=torch.float64)
    return {
        'divergence, map': (LGALoss(), lambda m, z, y: m(z, y), [latent_map, labels_map]),
        'contrastive, nodes': (LGALoss(form='contrastive', l2_normalize=True),
                               lambda m, z, y, ei: m(z, y, ei), [x, node_labels, edge_index]),
        'attention, map': (LGALoss(form='attention'), lambda m, a, y: m([a], y),
                           [att_maps, labels_map]),
        'attention, edges': (LGALoss(form='attention'), lambda m, a, ei, y: m([(ei, a)], y),
                             [alpha, edge_index, node_labels]),
    }


@pytest.mark.parametrize('case', list(_loss_cases()))
def test_lga_loss_equals_the_float64_reference(device, case):
    loss, call, inputs = _loss_cases()[case]
    _assert_parity(_run(loss, call, inputs, device), _reference(loss, call, inputs), case)


# ----------------------------------------------------------- graph builders --
def _sorted_edges(edge_index):
    ei = edge_index.cpu()
    return ei[:, torch.argsort(ei[1] * (ei.max() + 1) + ei[0])]


def _cdist_table(pos, k, batch, loop, queries=None, query_batch=None):
    """The reference of every builder: (index, distance) of the ``k`` nearest points of
    each query's own cloud, from a float64 distance matrix (brute force, no scipy: the
    lent GPU machines may not have it), ``-1`` / ``inf`` where a cloud runs out."""
    pos = pos.double()
    query, query_batch = ((pos, batch) if queries is None else
                          (queries.double(), query_batch))
    dist = torch.cdist(query, pos)
    dist[query_batch.view(-1, 1) != batch.view(1, -1)] = float('inf')
    if queries is None and not loop:
        dist.fill_diagonal_(float('inf'))
    dist, index = dist.topk(min(k, pos.size(0)), largest=False)
    return index.masked_fill(dist.isinf(), -1), dist


def _table_edges(index):
    """A table's (2, E) edges: row 0 the neighbours, row 1 the rows (centres, queries);
    graphs.knn's rows are the other way round (row 0 the queries)."""
    rows = torch.arange(index.size(0)).view(-1, 1).expand_as(index)
    kept = index >= 0
    return torch.stack([index[kept], rows[kept]])


def _radius_edges(pos, r, batch):
    dist = torch.cdist(pos.double(), pos.double())
    inside = (dist < r) & (batch.view(-1, 1) == batch.view(1, -1))
    inside.fill_diagonal_(False)
    centre, neighbour = inside.nonzero().t()
    return torch.stack([neighbour, centre])


def test_the_builders_reference_is_brute_force():
    """The reference above against the scipy engine, where scipy is installed."""
    pytest.importorskip('scipy')
    g = torch.Generator().manual_seed(11)
    pos = torch.rand(60, 3, generator=g, dtype=torch.float64)
    batch = torch.tensor([0] * 35 + [1] * 25)
    for loop in (False, True):
        index, dist = graphs.nearest_neighbors(pos, 5, batch, loop=loop, engine='scipy')
        ref_index, ref_dist = _cdist_table(pos, 5, batch, loop)
        assert torch.equal(index, ref_index)
        torch.testing.assert_close(dist, ref_dist)
    assert torch.equal(_sorted_edges(_radius_edges(pos, 0.3, batch)), _sorted_edges(
        graphs.radius_graph(pos, 0.3, batch, engine='scipy', max_num_neighbors=64)))


@pytest.mark.parametrize('engine', ['torch', 'auto'])
def test_knn_and_radius_builders_equal_brute_force_in_float64(device, engine):
    """The torch engine (and whatever 'auto' picks on the device) against brute force
    on float64 positions: the same edges and the same distances."""
    g = torch.Generator().manual_seed(11)
    pos = torch.rand(60, 3, generator=g, dtype=torch.float64)
    batch = torch.tensor([0] * 35 + [1] * 25)
    on, batch_on = pos.float().to(device), batch.to(device)
    for loop in (False, True):
        ref = _table_edges(_cdist_table(pos, 6, batch, loop)[0])
        got = graphs.knn_graph(on, 6, batch_on, loop=loop, engine=engine)
        assert got.device.type == device.type
        assert torch.equal(_sorted_edges(got), _sorted_edges(ref))
    got = graphs.radius_graph(on, 0.3, batch_on, engine=engine, max_num_neighbors=64)
    assert torch.equal(_sorted_edges(got), _sorted_edges(_radius_edges(pos, 0.3, batch)))
    ref_index, ref_dist = _cdist_table(pos, 5, batch, loop=False)
    index, dist = graphs.nearest_neighbors(on, 5, batch_on, engine=engine)
    assert torch.equal(index.cpu(), ref_index)
    torch.testing.assert_close(dist.double().cpu(), ref_dist, **F32)
    queries = torch.rand(9, 3, generator=g, dtype=torch.float64)
    ref = _table_edges(_cdist_table(pos, 4, torch.zeros(60, dtype=torch.long), False,
                                    queries, torch.zeros(9, dtype=torch.long))[0]).flip(0)
    got = graphs.knn(on, queries.float().to(device), 4, engine=engine)
    assert torch.equal(_sorted_edges(got), _sorted_edges(ref))


@pytest.mark.skipif(not hasattr(torch_geometric.typing, 'WITH_KNN'),
                    reason='the backend switch needs PyG >= 2.8 (test_pyg_dropin.py)')
def test_pyg_backend_switch_runs_pyg_functions_on_the_device(device):
    from torch_geometric.nn import knn_graph, radius_graph
    g = torch.Generator().manual_seed(12)
    pos = torch.rand(40, 3, generator=g, dtype=torch.float64)
    batch = torch.tensor([0] * 25 + [1] * 15)
    with graphs.use_as_pyg_backend():
        got = knn_graph(pos.float().to(device), 5, batch.to(device), loop=False)
        got_r = radius_graph(pos.float().to(device), 0.35, batch.to(device),
                             max_num_neighbors=64)
    assert got.device.type == device.type
    assert torch.equal(_sorted_edges(got),
                       _sorted_edges(_table_edges(_cdist_table(pos, 5, batch, False)[0])))
    assert torch.equal(_sorted_edges(got_r), _sorted_edges(_radius_edges(pos, 0.35, batch)))


# ----------------------------------------------------------------- autocast --
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16], ids=['bf16', 'fp16'])
@pytest.mark.parametrize('case', ['LGA2d[fused]', 'LGA2d[compiled]', 'LGA[table]',
                                  'LGA[table, compiled]', 'LatentGNN2d[fused]'])
def test_autocast_within_the_stated_tolerance(device, compiled_kernel, case, dtype):
    if case.startswith('LGA2d'):
        module, inputs = _lga2d('pair', 2), [_map()]
        path = 'compiled' if 'compiled' in case else 'fused'
        call = lambda m, x, path=path: m(x, path=path)  # noqa: E731
    elif case.startswith('LGA[table'):
        x, pos, _, table = _cloud()
        module, inputs = _points_lga('pair', 2), [x, pos, table]
        path = 'compiled' if 'compiled' in case else 'fused'
        call = lambda m, x, pos, t, path=path: m(x, pos=pos, neighbors=t, path=path)  # noqa
    else:
        # 8 reduced channels (the default stride's floor): at C' = 3 a latent node's few
        # ReLU'd affinities can be nearly zero, and bf16 rounding moves their L2 norm a lot.
        torch.manual_seed(9)
        module = _active(LatentGNN2d(16, latent_dims=[8], channel_stride=2))
        g = torch.Generator().manual_seed(14)
        inputs = [torch.randn(2, 16, 6, 7, generator=g, dtype=torch.float64)]
        call = lambda m, x, path='fused': m(x, path=path)  # noqa: E731
    ref = _reference(module, call, inputs, path='message_passing')
    _assert_autocast(_run(module, call, inputs, device, autocast=dtype), ref, dtype, case)


# ---------------------------------------------------------------- bad input --
def _other(device):
    """A second device: the CPU beside a GPU; on the CPU, 'meta' (tensors without
    data, enough to show that the devices are compared before anything is read)."""
    return torch.device('cpu') if device.type == 'cuda' else torch.device('meta')


def _mixed_device_cases(device, other):
    x, pos, batch, table = (t.float() if t.is_floating_point() else t for t in _cloud())
    edge_index = graphs.knn_graph(pos, 4, batch, loop=True)
    x, pos, batch, table, edge_index = (t.to(device) for t in (x, pos, batch, table,
                                                               edge_index))
    lga = _points_lga('center', 1).to(device)
    conv = LGAConv((6, 6), 4, 3, edge_encoder='mlp').to(device)
    latent = LatentGNN(6, [3], norm='layer').to(device)
    labels = torch.zeros(17, dtype=torch.long, device=device)
    o = lambda t: t.to(other)  # noqa: E731
    return {
        'neighbors': (lambda: lga(x, pos=pos, neighbors=o(table)), 'x'),
        'pos': (lambda: lga(x, pos=o(pos), neighbors=table), 'x'),
        'edge_index': (lambda: lga(x, o(edge_index), pos=pos), 'x'),
        'edge_attr': (lambda: lga(x, edge_index, o(torch.zeros(edge_index.size(1), 3,
                                                               device=device))), 'x'),
        'batch': (lambda: lga(x, edge_index, pos=pos, batch=o(batch)), 'x'),
        'x_src': (lambda: conv((o(x), x), edge_index, pos=pos), 'x'),
        'batch ': (lambda: latent(x, o(batch)), 'x'),
        'target': (lambda: LGALoss()(x, o(labels), edge_index), 'input'),
        'edge_index ': (lambda: LGALoss()(x, labels, o(edge_index)), 'input'),
        'batch  ': (lambda: graphs.knn_graph(pos, 3, o(batch)), 'x'),
        'y': (lambda: graphs.knn(pos, o(pos[:4]), 3), 'x'),
        'batch   ': (lambda: graphs.nearest_neighbors(pos, 3, o(batch)), 'pos'),
    }


@pytest.mark.parametrize('name', ['neighbors', 'pos', 'edge_index', 'edge_attr', 'batch',
                                  'x_src', 'batch ', 'target', 'edge_index ', 'batch  ', 'y',
                                  'batch   '])
def test_mixed_devices_name_both_devices(device, name):
    """One argument on another device: a ValueError naming it, its device, the
    reference argument and that one's device (trailing spaces tell apart the cases of
    the same argument of different functions)."""
    other = _other(device)
    fn, ref = _mixed_device_cases(device, other)[name]
    pattern = (rf"'{name.strip()}' is on {other.type}\S* but '{ref}' is on "
               rf"{device.type}")
    with pytest.raises(ValueError, match=pattern):
        fn()


def test_out_of_range_indices_are_errors_not_device_asserts(device):
    """Each index a user passes is checked before a kernel would read with it: an
    IndexError or ValueError naming the argument, on every device (on a GPU the
    alternative is a device-side assert that ends the CUDA context)."""
    x, pos, batch, table = (t.float() if t.is_floating_point() else t for t in _cloud())
    edge_index = graphs.knn_graph(pos, 4, batch, loop=True)
    x, pos, batch, table, edge_index = (t.to(device) for t in (x, pos, batch, table,
                                                               edge_index))
    lga = _points_lga('center', 1).to(device)
    labels = torch.zeros(17, dtype=torch.long, device=device)
    alpha = torch.rand(edge_index.size(1), device=device)
    too_large = edge_index.clone()
    too_large[0, 3] = 17
    negative = edge_index.clone()
    negative[1, 0] = -1
    cases = [
        (lambda: lga(x, too_large, pos=pos), IndexError, "'edge_index' row 0"),
        (lambda: lga(x, negative, pos=pos), IndexError, "'edge_index' row 1"),
        (lambda: lga(x, edge_index, pos=pos[:16]), ValueError, "'pos' must have shape"),
        (lambda: lga(x, pos=pos, neighbors=table + 17), ValueError, "'neighbors'"),
        (lambda: lga(x, pos=pos[:10], neighbors=table), ValueError, "'pos' must have shape"),
        (lambda: LGALoss()(x, labels, too_large), IndexError, "'edge_index'"),
        (lambda: LGALoss(form='attention')([(too_large, alpha)], labels), IndexError,
         r"'input\[0\]'"),
        (lambda: graphs.relative_positions(pos, too_large), IndexError, "'edge_index'"),
        (lambda: LatentGNN(6, [3], norm='layer').to(device)(x, batch, batch_size=1),
         ValueError, "'batch'"),
    ]
    for fn, error, match in cases:
        with pytest.raises(error, match=match):
            fn()
    if device.type == 'cuda':
        torch.cuda.synchronize()   # a device-side assert would surface here


# ------------------------------------------------------------ torch.compile --
def _compile_cases():
    x, pos, batch, table = _cloud()
    torch.manual_seed(13)
    return {
        'LGA2d[fused]': (_lga2d('pair', 2), lambda m, x: m(x, path='fused'), [_map()]),
        'LGA[table]': (_points_lga('pair', 2),
                       lambda m, x, pos, t: m(x, pos=pos, neighbors=t), [x, pos, table]),
        'LGA[table, compiled]': (_points_lga('neighbor', 2),
                                 lambda m, x, pos, t: m(x, pos=pos, neighbors=t,
                                                        path='compiled'), [x, pos, table]),
        'LatentGNN[fused]': (_active(LatentGNN(6, latent_dims=[4], norm='layer')),
                             lambda m, x, b: m(x, b, batch_size=2, max_num_nodes=14),
                             [x, batch]),
    }


@pytest.mark.parametrize('case', ['LGA2d[fused]', 'LGA[table]', 'LGA[table, compiled]',
                                  'LatentGNN[fused]'])
def test_compiles_on_the_device_without_graph_breaks_and_equals_eager(device, fresh_dynamo,
                                                                       case):
    """Dynamo captures one graph on the device; the compiled module gives the float64
    reference's values and gradients. Backend: inductor for LGA2d on a GPU (Triton
    kernels; compiling a whole module takes 25-85 s there, measured on 2026-11-30, so
    one case); ``aot_eager`` otherwise (the traced forward and backward graphs, custom
    autograd Functions included, without code generation; inductor's C++ build takes
    minutes on a CPU). This test is last: it is the slowest."""
    module, call, inputs = _compile_cases()[case]
    on = copy.deepcopy(module).to(device)
    moved = [t.to(device).float() if t.is_floating_point() else t.to(device) for t in inputs]
    explained = torch._dynamo.explain(lambda *a: call(on, *a))(*moved)
    assert explained.graph_break_count == 0, explained.break_reasons
    torch._dynamo.reset()
    backend = 'inductor' if device.type == 'cuda' and case == 'LGA2d[fused]' else 'aot_eager'
    compiled = lambda m, *a: torch.compile(  # noqa: E731
        lambda *b: call(m, *b), backend=backend, fullgraph=True)(*a)
    ref = _reference(module, call, inputs)
    _assert_parity(_run(module, compiled, inputs, device), ref, f'compiled {case}')

"""The layers where users put them: copies, export, autocast, PyG composition, determinism."""
import copy
import io
import pickle

import pytest
import torch
from torch_geometric.loader import DataLoader
from torch_geometric.nn import GCNConv, Sequential

import graphs
from graphattn import LGA, LGA2d, LGAConv, LatentGNN, LatentGNN2d


def two_d_modules():
    torch.manual_seed(0)
    latent = LatentGNN2d(16, [8], channel_stride=2)
    with torch.no_grad():
        latent.gamma.fill_(1.0)  # so the block is not the identity
    return [LGA2d(16, num_layers=2, fuse=True).eval(), latent.eval()]


@pytest.mark.parametrize('index', [0, 1])
def test_deepcopy_pickle_and_state_dict_round_trip(index):
    module = two_d_modules()[index]
    x = torch.randn(2, 16, 7, 9)
    ref = module(x)
    assert torch.equal(copy.deepcopy(module)(x), ref)
    assert torch.equal(pickle.loads(pickle.dumps(module))(x), ref)
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    fresh = type(module)(16, num_layers=2, fuse=True) if index == 0 else \
        LatentGNN2d(16, [8], channel_stride=2)
    fresh.load_state_dict(torch.load(buffer, map_location='cpu'))
    assert torch.equal(fresh.eval()(x), ref)


@pytest.mark.parametrize('index', [0, 1])
def test_torch_export_equals_eager(index):
    module = two_d_modules()[index]
    x = torch.randn(2, 16, 6, 7)
    exported = torch.export.export(module, (x,))
    assert torch.allclose(exported.module()(x), module(x), atol=1e-6)


@pytest.mark.skipif(torch.__version__ < (2, 8),
                    reason="torch.export of a dynamic number of points fails inside older "
                    "torch's export (seen on 2.6: 'Source of s0 is None'); tested on 2.8, "
                    "2.11, 2.13 and 2.14")
def test_torch_export_of_lga_on_a_neighbour_table_equals_eager():
    """The node-level path as torch.export (and through it ONNX) sees it: x, pos and the
    table as inputs; another cloud of another size through the same exported program."""
    module, (x, pos, table) = _export_cases()['LGA[table]']
    n = torch.export.Dim('n', min=2)
    exported = torch.export.export(module, (x, pos, table),
                                   dynamic_shapes=({0: n}, {0: n}, {0: n}))
    assert torch.allclose(exported.module()(x, pos, table), module(x, pos, table), atol=1e-6)
    pos2 = torch.rand(23, 3)
    table2, _ = graphs.nearest_neighbors(pos2, 8, loop=True)
    x2 = torch.randn(23, 16)
    assert torch.allclose(exported.module()(x2, pos2, table2), module(x2, pos2, table2),
                          atol=1e-6)


class _OnEdges(torch.nn.Module):
    def __init__(self, lga):
        super().__init__()
        self.lga = lga

    def forward(self, x, pos, edge_index):
        return self.lga(x, edge_index, pos=pos)


class _LatentOnNodes(torch.nn.Module):
    """LatentGNN on nodes, with the static sizes torch.compile needs too."""

    def __init__(self, latent, batch_size, max_num_nodes):
        super().__init__()
        self.latent, self.batch_size, self.max_num_nodes = latent, batch_size, max_num_nodes

    def forward(self, x, batch):
        return self.latent(x, batch, batch_size=self.batch_size,
                           max_num_nodes=self.max_num_nodes)


def test_torch_export_of_node_level_modules_equals_eager():
    torch.manual_seed(3)
    pos, x = torch.rand(40, 3), torch.randn(40, 16)
    edges = _OnEdges(LGA.for_points(16, num_layers=2, fuse=True).eval())
    edge_index = graphs.knn_graph(pos, 8, loop=True)
    exported = torch.export.export(edges, (x, pos, edge_index))
    assert torch.allclose(exported.module()(x, pos, edge_index), edges(x, pos, edge_index),
                          atol=1e-6)
    latent = LatentGNN(16, [4]).eval()
    with torch.no_grad():
        latent.gamma.fill_(1.0)   # so the block is not the identity
    nodes = _LatentOnNodes(latent, batch_size=2, max_num_nodes=25)
    batch = torch.tensor([0] * 25 + [1] * 15)
    exported = torch.export.export(nodes, (x, batch))
    assert torch.allclose(exported.module()(x, batch), nodes(x, batch), atol=1e-6)


class _OnTable(torch.nn.Module):
    """LGA on a point cloud's neighbour table, with tensors only in its signature."""

    def __init__(self, lga):
        super().__init__()
        self.lga = lga

    def forward(self, x, pos, neighbors):
        return self.lga(x, pos=pos, neighbors=neighbors)


def _export_cases():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 6, 7)
    pos = torch.rand(40, 3)
    table, _ = graphs.nearest_neighbors(pos, 8, loop=True)
    points = _OnTable(LGA.for_points(16, num_layers=2, fuse=True).eval())
    lga2d, latent = two_d_modules()
    return {'LGA2d': (lga2d, (x,)), 'LatentGNN2d': (latent, (x,)),
            'LGA2d[compiled]': (LGA2d(16, num_layers=2, fuse=True, path='compiled').eval(), (x,)),
            'LGA2d[message_passing]': (LGA2d(16, num_layers=2, fuse=True,
                                             path='message_passing').eval(), (x,)),
            'LGA[table]': (points, (torch.randn(40, 16), pos, table))}


@pytest.mark.parametrize('case', ['LGA2d', 'LatentGNN2d', 'LGA2d[compiled]',
                                  'LGA2d[message_passing]', 'LGA[table]'])
def test_onnx_export_equals_eager_when_onnx_is_installed(case, tmp_path):
    """Runs only where the optional onnx, onnxscript and onnxruntime packages are installed."""
    pytest.importorskip('onnx')
    pytest.importorskip('onnxscript')
    ort = pytest.importorskip('onnxruntime')
    module, inputs = _export_cases()[case]
    path = tmp_path / 'module.onnx'
    torch.onnx.export(module, inputs, str(path), dynamo=True)
    session = ort.InferenceSession(str(path))
    (out,) = session.run(None, {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs)})
    assert torch.allclose(torch.from_numpy(out), module(*inputs), atol=1e-5)


@pytest.mark.parametrize('index', [0, 1])
def test_cpu_bf16_autocast_stays_close_to_float32(index):
    module = two_d_modules()[index]
    x = torch.randn(2, 16, 12, 12)
    with torch.no_grad():
        ref = module(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = module(x)
    assert torch.isfinite(out).all()
    # bf16 keeps 8 bits of mantissa: about 1% of the output's scale.
    assert float((out.float() - ref).abs().max()) <= 0.02 * float(ref.abs().max())


def test_same_seed_gives_bitwise_equal_training_steps():
    def run():
        torch.manual_seed(1)
        model = torch.nn.Sequential(LGA2d(8, num_layers=2, fuse=True),
                                    LatentGNN2d(8, [4], channel_stride=2))
        x = torch.randn(2, 8, 10, 10)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(2):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
        return [p.detach().clone() for p in model.parameters()]
    for a, b in zip(run(), run()):
        assert torch.equal(a, b)


def test_node_modules_compose_with_pyg_layers_on_loader_batches():
    torch.manual_seed(0)
    clouds = [graphs.point_cloud_to_data(torch.rand(n, 3), torch.randn(n, 8), k=6, loop=True)
              for n in (20, 30, 25)]
    batch = next(iter(DataLoader(clouds, batch_size=3)))
    model = Sequential('x, edge_index, edge_attr, batch', [
        (GCNConv(8, 16), 'x, edge_index -> x'),
        torch.nn.ReLU(),
        (LGA(16, 16, num_layers=2, edge_dim=3, edge_encoder='mlp', fuse=True),
         'x, edge_index, edge_attr -> x'),
        (LatentGNN(16, [4], channel_stride=2, norm='layer'), 'x, batch -> x'),
    ]).eval()
    out = model(batch.x, batch.edge_index, batch.edge_attr, batch.batch)
    assert out.shape == (75, 16)
    # Each cloud's output inside the batch equals running it alone.
    start = 0
    for cloud in clouds:
        alone = model(cloud.x, cloud.edge_index, cloud.edge_attr,
                      torch.zeros(cloud.num_nodes, dtype=torch.long))
        assert torch.allclose(out[start:start + cloud.num_nodes], alone, atol=1e-5)
        start += cloud.num_nodes


def test_lgaconv_inside_to_hetero_equals_one_conv_per_edge_type():
    """PyG's to_hetero copies the layer per edge type and sums over the types reaching a node."""
    from torch_geometric.data import HeteroData
    from torch_geometric.nn import to_hetero

    torch.manual_seed(0)
    data = HeteroData()
    data['a'].x, data['b'].x = torch.randn(10, 8), torch.randn(6, 8)
    for src, dst, n_src, n_dst in (('a', 'b', 10, 6), ('b', 'a', 6, 10), ('a', 'a', 10, 10)):
        data[src, 'near', dst].edge_index = torch.stack(
            [torch.randint(0, n_src, (20,)), torch.randint(0, n_dst, (20,))])
        data[src, 'near', dst].edge_attr = torch.randn(20, 3)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = LGAConv((8, 8), 16, 3, edge_encoder='mlp')

        def forward(self, x, edge_index, edge_attr):
            return self.conv(x, edge_index, edge_attr)

    net = to_hetero(Net(), data.metadata(), aggr='sum')
    out = net(data.x_dict, data.edge_index_dict, data.edge_attr_dict)
    expected_a = sum(
        net.conv[f'{src}__near__a']((data[src].x, data['a'].x), data[src, 'near', 'a'].edge_index,
                                    data[src, 'near', 'a'].edge_attr)
        for src in ('a', 'b'))
    torch.testing.assert_close(out['a'], expected_a)
    assert out['b'].shape == (6, 16)

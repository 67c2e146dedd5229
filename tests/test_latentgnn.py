import pytest
import torch
import torch._dynamo
import torch.nn.functional as F
from torch_geometric.data import Batch, Data
from torch_geometric.explain import Explainer, GNNExplainer
from torch_geometric.explain.algorithm.utils import clear_masks, set_masks
from torch_geometric.nn import GCNConv

from graphattn import LatentGNN, LatentGNN2d
from graphattn.latentgnn_official import latentgnn_num_parameters
from graphattn.norms import FrozenBatchNorm
from graphs import latent_to_networkx

C = 16


def _batch(sizes):
    return torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))


def _randomize(model, seed=0):
    """Non-trivial parameters and running statistics, gamma != 0."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p + 0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        for name, buf in model.named_buffers():
            if name.endswith('running_mean'):
                buf.copy_(0.1 * torch.randn(buf.shape, generator=g, dtype=buf.dtype))
            elif name.endswith('running_var'):
                buf.copy_(0.5 + torch.rand(buf.shape, generator=g, dtype=buf.dtype))
        model.gamma.fill_(0.8)
    return model


def _model(**kwargs):
    kwargs.setdefault('latent_dims', [5])
    return _randomize(LatentGNN(C, **kwargs).double())


def test_repr():
    assert str(LatentGNN(256, [100])) == (
        "LatentGNN(256, latent_dims=[100], channel_stride=4, num_kernels=1, "
        "mode='asymmetric')")
    assert str(LatentGNN(1024, [100, 50], channel_stride=16, num_kernels=2, mode='symmetric',
                         graph_conv=True, residual=False, norm='frozen', sparse_top_m=8)) == (
        "LatentGNN(1024, latent_dims=[100, 50], channel_stride=16, num_kernels=2, "
        "mode='symmetric', graph_conv=True, residual=False, norm='frozen', sparse_top_m=8)")
    assert str(LatentGNN2d(64, 10, num_kernels=2)) == (
        "LatentGNN2d(64, latent_dims=[10, 10], channel_stride=4, num_kernels=2, "
        "mode='asymmetric')")


@pytest.mark.parametrize('mode', ['asymmetric', 'symmetric'])
@pytest.mark.parametrize('norm,training', [('batch', True), ('batch', False), ('layer', True)])
def test_fused_equals_message_passing(mode, norm, training):
    model = _model(latent_dims=[5, 3], num_kernels=2, mode=mode, graph_conv=True, norm=norm)
    model.train(training)
    batch = _batch([4, 7, 1, 5])
    x = torch.randn(batch.numel(), C, dtype=torch.float64)
    fused, a_f = model(x, batch, path='fused', return_assignments=True)
    mp, a_m = model(x, batch, path='message_passing', return_assignments=True)
    torch.testing.assert_close(fused, mp, atol=1e-5, rtol=0)
    assert model(x, batch).shape == (batch.numel(), C)
    for f, m in zip(a_f, a_m):
        assert torch.equal(f.v2l_edge_index, m.v2l_edge_index)
        torch.testing.assert_close(f.v2l_weight, m.v2l_weight, atol=1e-10, rtol=0)
        torch.testing.assert_close(f.l2v_weight, m.l2v_weight, atol=1e-10, rtol=0)
        torch.testing.assert_close(f.latent_adj, m.latent_adj, atol=1e-10, rtol=0)


@pytest.mark.parametrize('norm,training', [('batch', False), ('layer', True), ('none', True)])
@pytest.mark.parametrize('path', ['fused', 'message_passing'])
def test_batch_independence(norm, training, path):
    """A graph's output alone equals its output inside a variable-size batch
    (batch norm couples graphs in training mode, as BatchNorm2d couples images)."""
    model = _model(latent_dims=[4, 6], num_kernels=2, graph_conv=True, norm=norm,
                   path=path).train(training)
    sizes = [3, 8, 1, 5]
    batch = _batch(sizes)
    x = torch.randn(batch.numel(), C, dtype=torch.float64)
    out = model(x, batch)
    for part, xs in zip(out.split(sizes), x.split(sizes)):
        torch.testing.assert_close(part, model(xs), atol=1e-10, rtol=0)


def test_empty_graphs_in_a_batch():
    model = _model(latent_dims=[4]).eval()
    batch = torch.tensor([0, 0, 0, 2, 2, 2, 2])   # graph 1 has no nodes
    x = torch.randn(7, C, dtype=torch.float64)
    for path in ('fused', 'message_passing'):
        out, (a,) = model(x, batch, batch_size=5, path=path, return_assignments=True)
        assert a.latent_adj.shape == (5, 4, 4)      # trailing graphs 3, 4 also empty
        torch.testing.assert_close(out[:3], model(x[:3]), atol=1e-10, rtol=0)
        torch.testing.assert_close(out[3:], model(x[3:]), atol=1e-10, rtol=0)
    # no nodes at all: the input comes back (residual) or zeros
    assert torch.equal(model(x[:0]), x[:0])
    plain = LatentGNN(C, [4], residual=False)
    assert plain(torch.randn(0, C), torch.zeros(0, dtype=torch.long)).shape == (0, C)


def test_point_cloud_permutation_equivariance():
    torch.manual_seed(0)
    clouds = []
    for n in (7, 12, 5):
        pos = torch.randn(n, 3, dtype=torch.float64)
        feat = torch.cat([pos, torch.randn(n, C - 3, dtype=torch.float64)], dim=1)
        clouds.append(Data(x=feat, pos=pos))
    data = Batch.from_data_list(clouds)
    model = _model(latent_dims=[6], graph_conv=True).train()
    out = model(data.x, data.batch)
    # permute the nodes of the second cloud only
    perm = torch.arange(data.num_nodes)
    perm[7:19] = 7 + torch.randperm(12)
    out_p = model(data.x[perm], data.batch)
    torch.testing.assert_close(out_p, out[perm], atol=1e-10, rtol=0)
    out_mp = model(data.x[perm], data.batch, path='message_passing')
    torch.testing.assert_close(out_mp, out[perm], atol=1e-10, rtol=0)


def test_identity_at_initialisation():
    for kwargs in ({}, dict(mode='symmetric', graph_conv=True, num_kernels=2, latent_dims=7)):
        kwargs.setdefault('latent_dims', [5])
        model = LatentGNN(C, **kwargs)
        x = torch.randn(9, C)
        batch = _batch([4, 5])
        assert torch.equal(model(x, batch), x)
        assert torch.equal(model(x, batch, path='message_passing'), x)
        assert float(model.gamma.detach()) == 0.0
        if model.graph_conv:
            w = model.kernels[0].graph_conv.weight
            assert abs(float(w.detach().std()) - 0.01) < 0.005
        model.gamma.data.fill_(3.0)
        model.reset_parameters()
        assert float(model.gamma.detach()) == 0.0


@pytest.mark.parametrize('path', ['fused', 'message_passing'])
def test_gradcheck(path):
    model = _randomize(LatentGNN(8, [3], channel_stride=2, graph_conv=True).double())
    batch = _batch([3, 4])
    x = torch.randn(7, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: model(t, batch, path=path), (x,))


def test_state_dict_round_trip():
    # norm='batch' (LatentGNN2d's default, LatentGNN's up to 0.2) carries running statistics
    src = _model(latent_dims=[5, 4], num_kernels=2, graph_conv=True, norm='batch')
    dst = LatentGNN(C, [5, 4], num_kernels=2, graph_conv=True, norm='batch').double()
    dst.load_state_dict(src.state_dict())
    src.eval(), dst.eval()
    x = torch.randn(6, C, dtype=torch.float64)
    assert torch.equal(src(x), dst(x))
    # the feature-map module has the same state dict
    grid = LatentGNN2d(C, [5, 4], num_kernels=2, graph_conv=True).double().eval()
    grid.load_state_dict(src.state_dict())
    fmap = torch.randn(2, C, 2, 3, dtype=torch.float64)
    nodes = fmap.permute(0, 2, 3, 1).reshape(-1, C)
    expected = src(nodes, _batch([6, 6])).view(2, 2, 3, C).permute(0, 3, 1, 2)
    torch.testing.assert_close(grid(fmap), expected, atol=1e-12, rtol=0)


def test_parameter_count_formula():
    configs = [
        dict(in_channels=16, latent_dims=[5]),
        dict(in_channels=32, latent_dims=[5, 7], num_kernels=2, channel_stride=8,
             graph_conv=True),
        dict(in_channels=16, latent_dims=[3, 3, 4], num_kernels=3, mode='symmetric',
             norm='layer', graph_conv=True),
        dict(in_channels=24, latent_dims=[6], norm='none'),
        dict(in_channels=24, latent_dims=[6], norm='frozen', graph_conv=True),
    ]
    for cfg in configs:
        model = LatentGNN(**cfg)
        count = sum(p.numel() for p in model.parameters())
        args = {k: cfg[k] for k in ('channel_stride', 'mode', 'graph_conv', 'norm') if k in cfg}
        args['channel_stride'] = model.channel_stride   # the default depends on in_channels
        assert count == latentgnn_num_parameters(cfg['in_channels'], cfg['latent_dims'], **args)
    # the COCO configuration of the paper (ResNet-50 stage 4): +0.20M
    paper = LatentGNN2d(1024, [100], channel_stride=16, graph_conv=True, norm='frozen')
    assert sum(p.numel() for p in paper.parameters()) == 213_505
    assert isinstance(paper.up_norm, FrozenBatchNorm)
    stage = {c: latentgnn_num_parameters(c, [100], 16, graph_conv=True, norm='frozen')
             for c in (512, 1024, 2048)}
    assert stage[1024] == 213_505
    assert stage[2048] == 828_417
    assert sum(stage.values()) == 1_098_499


def _sparse_reference(model, x, batch, m):
    """The sparse bipartite computation, graph by graph, with dense masks."""
    xv = F.normalize(model.down_v2l_norm(model.down_v2l(x)), dim=1)
    xl = F.normalize(model.down_l2v_norm(model.down_l2v(x)), dim=1)
    outs = []
    for kernel in model.kernels:
        pv = F.relu(kernel.psi_v2l_norm(kernel.psi_v2l(xv)))
        pl = F.relu(kernel.psi_l2v_norm(kernel.psi_l2v(xl)))
        rows = []
        for b in range(int(batch.max()) + 1):
            sel = batch == b
            P, Q, X = pv[sel], pl[sel], xv[sel]
            mask_p = torch.zeros_like(P).scatter_(1, P.topk(m, 1).indices, 1.0)
            mask_q = torch.zeros_like(Q).scatter_(1, Q.topk(m, 1).indices, 1.0)
            P = F.normalize(P * mask_p, dim=0)
            Q = F.normalize(Q * mask_q, dim=1)
            Z = P.t() @ X
            Zn = F.normalize(Z, dim=1)
            Z = torch.softmax(Zn @ Zn.t(), dim=1) @ Z
            rows.append(Q @ Z)
        outs.append(kernel.update(torch.cat(rows)))
    y = model.up_norm(model.up(torch.cat(outs, 1)))
    return x + model.gamma * y


def test_sparse_top_m():
    batch = _batch([5, 8, 3])
    x = torch.randn(16, C, dtype=torch.float64)
    model = _model(latent_dims=[6, 5], num_kernels=2, graph_conv=True, sparse_top_m=2).eval()
    out, assignments = model(x, batch, return_assignments=True)
    torch.testing.assert_close(out, _sparse_reference(model, x, batch, 2), atol=1e-10, rtol=0)
    assert assignments[0].v2l_edge_index.shape == (2, 16 * 2)
    with pytest.raises(ValueError, match='fused'):
        model(x, batch, path='fused')
    # m = d keeps every edge: the complete graph
    full = _model(latent_dims=[4], graph_conv=True).eval()
    sparse = LatentGNN(C, [4], graph_conv=True, sparse_top_m=4).double().eval()
    sparse.load_state_dict(full.state_dict())
    torch.testing.assert_close(sparse(x, batch), full(x, batch), atol=1e-10, rtol=0)


def test_assignments_to_networkx():
    model = _model(latent_dims=[3]).eval()
    batch = _batch([4, 2])
    x = torch.randn(6, C, dtype=torch.float64)
    _, (a,) = model(x, batch, return_assignments=True)
    assert a.v2l_edge_index.shape == (2, 18)
    # Psi_v has unit norm over the visible nodes of each latent node (or is all
    # zero after the ReLU), Psi_l over the latent nodes of each visible node
    sq = torch.zeros(6, dtype=torch.float64).index_add_(0, a.v2l_edge_index[1], a.v2l_weight ** 2)
    assert torch.all(((sq - 1).abs() < 1e-10) | (sq == 0))
    sq = torch.zeros(6, dtype=torch.float64).index_add_(0, a.l2v_edge_index[0], a.l2v_weight ** 2)
    assert torch.all(((sq - 1).abs() < 1e-10) | (sq == 0))
    torch.testing.assert_close(a.latent_adj.sum(-1), torch.ones(2, 3, dtype=torch.float64))
    G = latent_to_networkx(a.v2l_edge_index, a.v2l_weight, num_nodes=6, num_latent_nodes=6)
    assert G.number_of_edges() == 18
    assert G.edges[('visible', 5), ('latent', 4)]['weight'] == pytest.approx(
        float(a.v2l_weight[5 * 3 + 1].detach()))


def test_bad_arguments():
    with pytest.raises(ValueError, match="'in_channels' .*'channel_stride'"):
        LatentGNN(10, [4], channel_stride=4)
    with pytest.raises(ValueError, match='latent_dims'):
        LatentGNN(16, [4, 4], num_kernels=1)
    with pytest.raises(TypeError, match='latent_dims'):
        LatentGNN(16, [4.0])
    with pytest.raises(ValueError, match='mode'):
        LatentGNN(16, [4], mode='both')
    with pytest.raises(ValueError, match='norm'):
        LatentGNN(16, [4], norm='group')
    with pytest.raises(ValueError, match='path'):
        LatentGNN(16, [4], path='dense')
    with pytest.raises(ValueError, match='sparse_top_m'):
        LatentGNN(16, [4], sparse_top_m=5)
    with pytest.raises(ValueError, match='fused'):
        LatentGNN(16, [4], sparse_top_m=2, path='fused')
    with pytest.raises(TypeError, match='in_channels'):
        LatentGNN(16.0, [4])


def test_bad_inputs():
    model = LatentGNN(C, [4])
    x = torch.randn(5, C)
    with pytest.raises(ValueError, match=r"'x' must have shape \(N, 16\)"):
        model(x.view(1, 5, C))
    with pytest.raises(ValueError, match=r"'x' must have shape \(N, 16\)"):
        model(torch.randn(5, 12))
    with pytest.raises(TypeError, match="'x'"):
        model(torch.ones(5, C, dtype=torch.long))
    with pytest.raises(ValueError, match=r"'batch' must have shape \(5,\)"):
        model(x, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="'batch' must be sorted"):
        model(x, torch.tensor([0, 1, 0, 1, 1]))
    with pytest.raises(TypeError, match="'batch'"):
        model(x, torch.zeros(5))
    with pytest.raises(ValueError, match='batch_size'):
        model(x, torch.tensor([0, 0, 1, 1, 2]), batch_size=2)
    grid = LatentGNN2d(C, [4])
    with pytest.raises(ValueError, match=r"'x' must have shape \(B, 16, H, W\)"):
        grid(torch.randn(C, 3, 3))
    with pytest.raises(ValueError, match=r"'x' must have shape \(B, 16, H, W\)"):
        grid(torch.randn(1, 8, 3, 3))


def test_no_graph_breaks():
    torch._dynamo.reset()
    grid = LatentGNN2d(C, [4], graph_conv=True).eval()
    assert torch._dynamo.explain(grid)(torch.randn(2, C, 3, 3)).graph_break_count == 0
    model = LatentGNN(C, [4]).eval()
    batch = torch.tensor([0, 0, 1, 1, 1])
    explained = torch._dynamo.explain(model)(torch.randn(5, C), batch, batch_size=2,
                                             max_num_nodes=3)
    assert explained.graph_break_count == 0
    torch._dynamo.reset()


class _GCNThenLatent(torch.nn.Module):
    """A model whose input graph is explained: a GCNConv, then LatentGNN."""

    def __init__(self, **kwargs):
        super().__init__()
        self.conv = GCNConv(C, C)
        self.latent = LatentGNN(C, [3], norm='layer', **kwargs)
        with torch.no_grad():
            self.latent.gamma.fill_(1.0)

    def forward(self, x, edge_index, batch):
        return self.latent(self.conv(x, edge_index).relu(), batch)


@pytest.mark.parametrize('kwargs', [dict(path='message_passing'), dict(sparse_top_m=2)])
@pytest.mark.parametrize('num_edges', ['equal', 'different'])
def test_explainer_masks_only_the_input_graph(kwargs, num_edges):
    """PyG's explainers put their edge mask on every MessagePassing layer;
    LatentGNN's internal visible <-> latent layers must not take it (with as
    many edges as the input graph they were silently masked, else crashed)."""
    torch.manual_seed(0)
    model = _GCNThenLatent(**kwargs).eval()
    batch = _batch([4, 5])
    x = torch.randn(9, C)
    m = kwargs.get('sparse_top_m', 3)                 # bipartite edges per visible node
    num = 9 * m if num_edges == 'equal' else 9 * m + 5
    edge_index = torch.stack([torch.randint(0, 4, (num,)), torch.randint(0, 4, (num,))])
    # 1. A mask on the input graph changes the GCN, not LatentGNN itself.
    h = model.conv(x, edge_index).relu()
    expected = model.latent(h, batch)
    set_masks(model, torch.randn(num), edge_index, apply_sigmoid=True)
    try:
        assert model.conv.explain is True
        assert torch.equal(model.latent(h, batch), expected)
        assert not torch.equal(model(x, edge_index, batch), model.latent(h, batch))
    finally:
        clear_masks(model)
    assert all(conv.explain is False for k in model.latent.kernels for conv in (k.v2l, k.l2v))
    # 2. GNNExplainer runs and explains the input edges only.
    explainer = Explainer(model, algorithm=GNNExplainer(epochs=3), explanation_type='model',
                          node_mask_type=None, edge_mask_type='object',
                          model_config=dict(mode='regression', task_level='node',
                                            return_type='raw'))
    explanation = explainer(x, edge_index, batch=batch)
    assert explanation.edge_mask.shape == (num,)
    assert bool(torch.isfinite(explanation.edge_mask).all())


def test_shared_path_vocabulary():
    """LatentGNN takes the paths of graphattn._checks.PATHS; 'fast' (LGA2d's old
    name of 'fused') is accepted with a DeprecationWarning, as everywhere."""
    model = _model(latent_dims=[4]).eval()
    x, batch = torch.randn(7, C, dtype=torch.float64), _batch([3, 4])
    with pytest.warns(DeprecationWarning, match="'fused'"):
        out = model(x, batch, path='fast')
    assert torch.equal(out, model(x, batch, path='fused'))
    sparse = LatentGNN(C, [4], sparse_top_m=2)
    assert sparse.resolve_path() == 'message_passing'
    with pytest.raises(ValueError, match=r"path='fused' needs .*sparse_top_m=None"):
        sparse.resolve_path('fused')

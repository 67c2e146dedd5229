import io

import pytest
import torch
from torch_geometric.data import Batch, Data

import graphs
from graphattn import LGA, LGAConv

DT = torch.float64


@pytest.mark.parametrize('num_layers', [1, 2, 3])
def test_receptive_field_on_grid(num_layers):
    torch.manual_seed(num_layers)
    h = w = 2 * num_layers + 5
    g = graphs.grid_graph(h, w)
    model = LGA(3, 4, num_layers=num_layers, act='tanh').to(DT)
    x = torch.randn(h * w, 3, dtype=DT, requires_grad=True)
    r0, c0 = h // 2, w // 2 - 1
    out, latent = model(x, g.edge_index, g.edge_attr, return_latent=True)
    grad, = torch.autograd.grad(latent[r0 * w + c0].sum(), x, retain_graph=True)
    support = grad.abs().sum(1).view(h, w) > 0
    rows = torch.arange(h).view(-1, 1)
    cols = torch.arange(w).view(1, -1)
    cheb = torch.maximum((rows - r0).abs(), (cols - c0).abs())
    assert torch.equal(support, cheb <= num_layers)
    # The concatenated output adds the pixel itself, nothing more.
    grad, = torch.autograd.grad(out[r0 * w + c0].sum(), x)
    assert torch.equal(grad.abs().sum(1).view(h, w) > 0, cheb <= num_layers)


def test_output_widths_and_returns():
    g = graphs.grid_graph(3, 4)
    x = torch.randn(12, 6)
    model = LGA(6, 8, num_layers=2)
    assert str(model) == 'LGA(6, latent_channels=8, num_layers=2, edge_dim=9)'
    out, latent, att = model(x, g.edge_index, g.edge_attr, return_latent=True,
                             return_attention_weights=True)
    assert out.shape == (12, 14) and model.out_channels == 14
    assert torch.equal(out[:, :6], x) and torch.equal(out[:, 6:], latent)
    assert len(att) == 2 and att[0][1].shape == (g.edge_index.size(1), 1)
    fused = LGA(6, 8, num_layers=2, fuse=True)
    assert fused(x, g.edge_index, g.edge_attr).shape == (12, 6) and fused.out_channels == 6
    # Shared topology: (B, N, C).
    xb = torch.randn(3, 12, 6)
    outb = fused(xb, g.edge_index, g.edge_attr)
    assert torch.allclose(outb[1], fused(xb[1], g.edge_index, g.edge_attr), atol=1e-6)


def _cloud_model():
    return LGA(4, 5, num_layers=2, edge_dim=3, edge_encoder='mlp', att_channels=8).to(DT)


def test_point_cloud_batch_equals_one_by_one():
    torch.manual_seed(0)
    model = _cloud_model()
    clouds = [Data(x=torch.randn(n, 4, dtype=DT), pos=torch.rand(n, 3, dtype=DT))
              for n in (7, 12, 3)]
    batch = Batch.from_data_list(clouds)
    ei = graphs.knn_graph(batch.pos, 4, batch.batch, loop=True)
    out = model(batch.x, ei, batch=batch.batch, pos=batch.pos)
    singles = []
    for d in clouds:
        e = graphs.knn_graph(d.pos, 4, loop=True)
        singles.append(model(d.x, e, pos=d.pos))
    assert torch.allclose(out, torch.cat(singles), atol=1e-12)


def test_point_cloud_permutation_equivariance():
    torch.manual_seed(1)
    model = _cloud_model()
    pos, x = torch.rand(20, 3, dtype=DT), torch.randn(20, 4, dtype=DT)
    out = model(x, graphs.knn_graph(pos, 5, loop=True), pos=pos)
    perm = torch.randperm(20)
    out_p = model(x[perm], graphs.knn_graph(pos[perm], 5, loop=True), pos=pos[perm])
    assert torch.allclose(out_p, out[perm], atol=1e-12)


def test_pos_equals_edge_attr():
    torch.manual_seed(2)
    model = _cloud_model()
    pos, x = torch.rand(10, 3, dtype=DT), torch.randn(10, 4, dtype=DT)
    ei = graphs.knn_graph(pos, 3, loop=True)
    ea = pos[ei[0]] - pos[ei[1]]
    assert torch.equal(model(x, ei, ea), model(x, ei, pos=pos))


def test_gradcheck_stack():
    torch.manual_seed(0)
    g = graphs.grid_graph(2, 3)
    model = LGA(2, 3, num_layers=2, act='tanh', fuse=True).to(DT)
    x = torch.randn(6, 2, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: model(t, g.edge_index, g.edge_attr), (x,))


def test_state_dict_round_trip():
    torch.manual_seed(0)
    a = LGA(4, 4, num_layers=2, groups=2, fuse=True)
    b = LGA(4, 4, num_layers=2, groups=2, fuse=True)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b.load_state_dict(torch.load(buf))
    g = graphs.grid_graph(3, 3)
    x = torch.randn(9, 4)
    assert torch.equal(a(x, g.edge_index, g.edge_attr), b(x, g.edge_index, g.edge_attr))
    assert all(isinstance(c, LGAConv) for c in a.convs)


def test_bad_input():
    g = graphs.grid_graph(2, 2)
    model = LGA(4, 4, num_layers=1)
    with pytest.raises(ValueError, match="'x'"):
        model(torch.randn(4, 3), g.edge_index, g.edge_attr)
    with pytest.raises(TypeError, match="'x'"):
        model([1, 2], g.edge_index, g.edge_attr)
    with pytest.raises(ValueError, match="'edge_attr'"):
        model(torch.randn(4, 4), g.edge_index, torch.randn(g.edge_index.size(1), 3))
    with pytest.raises(ValueError, match="'batch'"):
        model(torch.randn(4, 4), g.edge_index, g.edge_attr, batch=torch.zeros(3))
    with pytest.raises(ValueError, match="'num_layers'"):
        LGA(4, 4, num_layers=0)
    with pytest.raises(ValueError, match="'normalize'"):
        LGA(4, normalize='softmin')
    with pytest.raises(TypeError, match="'fuse'"):
        LGA(4, fuse='yes')


def test_no_graph_breaks():
    g = graphs.grid_graph(4, 3)
    model = LGA(4, num_layers=2)
    explanation = torch._dynamo.explain(model)(torch.randn(12, 4), g.edge_index, g.edge_attr)
    assert explanation.graph_break_count == 0

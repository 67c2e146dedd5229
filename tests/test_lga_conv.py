import io
import math

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.utils import scatter, to_networkx

import graphs
from graphattn import LGAConv
from graphattn.grouped_linear import GroupedLinear
from graphs.point_cloud import relative_positions

DT = torch.float64


def brute_force_grid(conv, x, height, width):
    """Loop over every pixel and its in-image 3x3 neighbours."""
    q = conv.lin_att(x)
    v = conv.lin_value(x)
    out = torch.zeros(x.size(0), conv.out_channels, dtype=x.dtype)
    for r in range(height):
        for c in range(width):
            i = r * width + c
            logits, values = [], []
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    rr, cc = r + dy, c + dx
                    if 0 <= rr < height and 0 <= cc < width:
                        t = (dy + 1) * 3 + (dx + 1)
                        logits.append(q[i, t])
                        values.append(v[rr * width + cc])
            s = torch.stack(logits)
            a = torch.softmax(s, 0) if conv.normalize == 'softmax' else torch.sigmoid(s)
            out[i] = (a.view(-1, 1) * torch.stack(values)).sum(0)
    return conv.act(out) if conv.act is not None else out


@pytest.mark.parametrize('normalize,groups,act', [('softmax', 1, 'relu'),
                                                  ('sigmoid', 2, None),
                                                  ('softmax', 4, 'tanh')])
def test_grid_matches_brute_force(normalize, groups, act):
    torch.manual_seed(0)
    h, w = 4, 5
    g = graphs.grid_graph(h, w)
    conv = LGAConv(4, 8, edge_dim=9, normalize=normalize, groups=groups, act=act).to(DT)
    x = torch.randn(h * w, 4, dtype=DT)
    out = conv(x, g.edge_index, g.edge_attr)
    assert torch.allclose(out, brute_force_grid(conv, x, h, w), atol=1e-12)


def test_point_cloud_matches_brute_force():
    torch.manual_seed(1)
    pos = torch.rand(12, 3, dtype=DT)
    x = torch.randn(12, 5, dtype=DT)
    k = 4
    edge_index = graphs.knn_graph(pos, k, loop=True)
    conv = LGAConv(5, 6, edge_dim=3, edge_encoder='mlp', att_channels=7).to(DT)
    out = conv(x, edge_index, pos=pos)
    q, v = conv.lin_att(x), conv.lin_value(x)
    ref = torch.zeros_like(out)
    for i in range(12):
        nbrs = torch.cdist(pos[i:i + 1], pos)[0].argsort()[:k]
        s = torch.stack([q[i] @ conv.edge_encoder(pos[j] - pos[i]) for j in nbrs.tolist()])
        a = torch.softmax(s, 0)
        ref[i] = torch.relu((a.view(-1, 1) * v[nbrs]).sum(0))
    assert torch.allclose(out, ref, atol=1e-12)


def test_repr_and_hyperparameters():
    conv = LGAConv(64, 64, edge_dim=9)
    assert str(conv) == 'LGAConv(64, 64, edge_dim=9)'
    assert conv.att_channels == 9 and conv.normalize == 'softmax' and conv.groups == 1
    conv = LGAConv((8, 16), 32, edge_dim=3, edge_encoder='mlp')
    assert str(conv) == "LGAConv((8, 16), 32, edge_dim=3, edge_encoder='mlp')"
    assert conv.att_channels == 32
    assert str(GroupedLinear(8, 4, groups=2)) == 'GroupedLinear(8, 4, groups=2)'


def test_attention_weights_and_networkx_export():
    torch.manual_seed(0)
    g = graphs.grid_graph(3, 4)
    conv = LGAConv(4, 4, edge_dim=9)
    x = torch.randn(12, 4)
    out, (ei, alpha) = conv(x, g.edge_index, g.edge_attr, return_attention_weights=True)
    assert isinstance(out, torch.Tensor) and alpha.shape == (ei.size(1), 1)  # (E, heads)
    alpha = alpha[:, 0]
    assert bool(((alpha >= 0) & (alpha <= 1)).all())
    sums = scatter(alpha, ei[1], dim=0, dim_size=12, reduce='sum')
    assert torch.allclose(sums, torch.ones(12), atol=1e-6)
    plain = conv(x, g.edge_index, g.edge_attr)
    assert isinstance(plain, torch.Tensor) and torch.allclose(plain, out)
    nx_graph = to_networkx(Data(edge_index=ei, alpha=alpha.detach(), num_nodes=12),
                           edge_attrs=['alpha'])
    centre = 5
    weights = {u: d['alpha'] for u, v, d in nx_graph.in_edges(centre, data=True)}
    assert len(weights) == 9 and math.isclose(sum(weights.values()), 1.0, rel_tol=1e-5)


def test_shared_topology_batch_and_bipartite():
    torch.manual_seed(0)
    g = graphs.grid_graph(3, 3)
    conv = LGAConv(4, 6, edge_dim=9, normalize='softmax')
    x = torch.randn(2, 9, 4)
    out, (_, alpha) = conv(x, g.edge_index, g.edge_attr, return_attention_weights=True)
    assert out.shape == (2, 9, 6) and alpha.shape == (2, g.edge_index.size(1), 1)
    for b in range(2):
        assert torch.allclose(out[b], conv(x[b], g.edge_index, g.edge_attr), atol=1e-6)
    bip = LGAConv((4, 5), 6, edge_dim=2, edge_encoder='mlp')
    ei = torch.tensor([[0, 1, 2, 3], [0, 0, 1, 1]])
    out = bip((torch.randn(4, 4), torch.randn(2, 5)), ei, torch.randn(4, 2))
    assert out.shape == (2, 6)


def test_lazy_in_channels():
    g = graphs.grid_graph(2, 2)
    conv = LGAConv(-1, 3, edge_dim=9)
    assert conv(torch.randn(4, 7), g.edge_index, g.edge_attr).shape == (4, 3)


def test_permutation_equivariance_and_edge_order():
    torch.manual_seed(2)
    pos, x = torch.rand(15, 2, dtype=DT), torch.randn(15, 4, dtype=DT)
    conv = LGAConv(4, 4, edge_dim=2, edge_encoder='mlp').to(DT)
    ei = graphs.knn_graph(pos, 5, loop=True)
    out = conv(x, ei, pos=pos)
    perm = torch.randperm(15)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(15)
    out_p = conv(x[perm], inv[ei], pos=pos[perm])
    assert torch.allclose(out_p, out[perm], atol=1e-12)
    eperm = torch.randperm(ei.size(1))
    assert torch.allclose(conv(x, ei[:, eperm], pos=pos), out, atol=1e-12)


def test_edge_index_class():
    from torch_geometric import EdgeIndex
    g = graphs.grid_graph(3, 3)
    conv = LGAConv(4, 4, edge_dim=9)
    x = torch.randn(9, 4)
    ei = EdgeIndex(g.edge_index, sparse_size=(9, 9))
    assert torch.allclose(conv(x, ei, g.edge_attr), conv(x, g.edge_index, g.edge_attr),
                          atol=1e-6)


def test_gradcheck():
    torch.manual_seed(0)
    g = graphs.grid_graph(2, 3)
    conv = LGAConv(3, 2, edge_dim=9, act='tanh').to(DT)
    x = torch.randn(6, 3, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: conv(t, g.edge_index, g.edge_attr), (x,))
    pos = torch.rand(5, 2, dtype=DT)
    ei = graphs.knn_graph(pos, 3, loop=True)
    pconv = LGAConv(3, 2, edge_dim=2, edge_encoder='mlp', att_channels=4,
                    normalize='sigmoid', act=None).to(DT)
    x = torch.randn(5, 3, dtype=DT, requires_grad=True)
    p = pos.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t, q: pconv(t, ei, pos=q), (x, p))


def test_state_dict_round_trip_and_reset():
    torch.manual_seed(0)
    g = graphs.grid_graph(3, 3)
    a = LGAConv(4, 4, edge_dim=9, groups=2)
    b = LGAConv(4, 4, edge_dim=9, groups=2)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b.load_state_dict(torch.load(buf))
    x = torch.randn(9, 4)
    assert torch.equal(a(x, g.edge_index, g.edge_attr), b(x, g.edge_index, g.edge_attr))
    before = a.lin_att.weight.detach().clone()
    a.reset_parameters()
    assert not torch.equal(before, a.lin_att.weight)


def test_bad_input():
    g = graphs.grid_graph(2, 2)
    conv = LGAConv(4, 4, edge_dim=9)
    with pytest.raises(ValueError, match="'x'"):
        conv(torch.randn(4, 5), g.edge_index, g.edge_attr)
    with pytest.raises(ValueError, match="'x'"):
        conv(torch.randn(4), g.edge_index, g.edge_attr)
    with pytest.raises(ValueError, match=r"'edge_attr'.*\(E, 9\)"):
        conv(torch.randn(4, 4), g.edge_index, g.edge_attr[:, :8])
    with pytest.raises(ValueError, match="'edge_attr'"):
        conv(torch.randn(4, 4), g.edge_index)
    with pytest.raises(ValueError, match="'edge_index'"):
        conv(torch.randn(4, 4), g.edge_index[0], g.edge_attr)
    with pytest.raises(ValueError, match="'normalize'"):
        LGAConv(4, 4, edge_dim=9, normalize='sparsemax')
    with pytest.raises(ValueError, match="'att_channels'"):
        LGAConv(4, 4, edge_dim=9, att_channels=4)
    with pytest.raises(ValueError, match="'edge_encoder'"):
        LGAConv(4, 4, edge_dim=9, edge_encoder='mlpp')
    with pytest.raises(ValueError, match="'groups'"):
        LGAConv(4, 6, edge_dim=9, groups=4)
    with pytest.raises(TypeError, match="'edge_dim'"):
        LGAConv(4, 4, edge_dim=9.0)


def test_relative_positions():
    pos = torch.tensor([[0., 0.], [1., 2.]])
    ei = torch.tensor([[1], [0]])
    assert torch.equal(relative_positions(pos, ei), torch.tensor([[1., 2.]]))

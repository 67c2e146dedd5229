"""LGA's edge-score readings and heads on every path, against brute-force loops.

The reference (:mod:`lga_reference`) reads the layer's parameters and evaluates the
documented equations edge by edge, in plain Python loops: any path whose maths drifts
(a wrong end of the edge, a head mixed with another, a softmax over the wrong
set) fails here.
"""
import pathlib

import pytest
import torch

import graphs
import lga_reference
from graphattn import LGA, LGA2d, LGAConv

DT = torch.float64
READINGS = ('center', 'neighbor', 'pair')
GOLDEN = pathlib.Path(__file__).parent / 'data' / 'lga_v0_1_golden.pt'


def brute_force(conv: LGAConv, x_src, x_dst, edge_index, edge_attr):
    """The layer's output, edge by edge (:func:`lga_reference.brute_force`, the loop the
    irregular-input and property tests share): ``(N_dst, heads * D)`` or ``(N_dst, D)``."""
    return lga_reference.brute_force(conv, x_src, x_dst, edge_index, edge_attr)[0]


def _cloud(n=14, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, 3, generator=g, dtype=DT)
    x = torch.randn(n, 6, generator=g, dtype=DT)
    table, _ = graphs.nearest_neighbors(pos, k, loop=True)
    return pos, x, table, graphs.neighbors_to_edge_index(table)


@pytest.mark.parametrize('score', READINGS)
@pytest.mark.parametrize('heads, concat', [(1, True), (2, True), (3, False)])
def test_point_cloud_paths_equal_brute_force(score, heads, concat):
    torch.manual_seed(0)
    pos, x, table, ei = _cloud()
    conv = LGAConv(6, 4, 3, heads=heads, concat=concat, score=score, edge_encoder='mlp',
                   att_channels=5, act='tanh').to(DT)
    expected = brute_force(conv, x, x, ei, graphs.relative_positions(pos, ei))
    torch.testing.assert_close(conv(x, ei, pos=pos), expected)
    torch.testing.assert_close(conv(x, neighbors=table, pos=pos), expected)
    torch.testing.assert_close(conv(x, neighbors=table, pos=pos, path='message_passing'),
                               expected)


@pytest.mark.parametrize('score', READINGS)
@pytest.mark.parametrize('heads', [1, 2])
@pytest.mark.parametrize('normalize', ['softmax', 'sigmoid'])
def test_grid_paths_equal_brute_force(score, heads, normalize):
    torch.manual_seed(1)
    height, width = 4, 5
    conv = LGAConv(6, 3, 9, heads=heads, score=score, normalize=normalize).to(DT)
    x = torch.randn(2, height * width, 6, dtype=DT)
    g = graphs.grid_graph(height, width)
    for b in range(2):
        expected = brute_force(conv, x[b], x[b], g.edge_index, g.edge_attr.to(DT))
        torch.testing.assert_close(conv(x, grid=(height, width))[b], expected)
        torch.testing.assert_close(conv(x, grid=(height, width), path='message_passing')[b],
                                   expected)
        torch.testing.assert_close(conv(x[b], g.edge_index, g.edge_attr.to(DT)), expected)


@pytest.mark.parametrize('score', READINGS)
def test_bipartite_edges_and_table_equal_brute_force(score):
    torch.manual_seed(2)
    g = torch.Generator().manual_seed(2)
    pos_src, pos_dst = torch.randn(9, 2, generator=g, dtype=DT), torch.randn(5, 2, generator=g,
                                                                             dtype=DT)
    x_src, x_dst = torch.randn(9, 4, generator=g, dtype=DT), torch.randn(5, 7, generator=g,
                                                                         dtype=DT)
    table = torch.tensor([[0, 3, -1], [1, 2, 8], [4, -1, -1], [5, 6, 7], [8, 0, 2]])
    ei = graphs.neighbors_to_edge_index(table)
    conv = LGAConv((4, 7), 3, 2, heads=2, score=score, edge_encoder='mlp', att_channels=4).to(DT)
    attr = graphs.relative_positions((pos_src, pos_dst), ei)
    expected = brute_force(conv, x_src, x_dst, ei, attr)
    torch.testing.assert_close(conv((x_src, x_dst), ei, attr), expected)
    torch.testing.assert_close(conv((x_src, x_dst), neighbors=table, pos=(pos_src, pos_dst)),
                               expected)


@pytest.mark.parametrize('score', READINGS)
def test_lga2d_paths_equal_values_and_gradients(score):
    torch.manual_seed(3)
    model = LGA2d(4, 6, num_layers=2, heads=2, score=score, groups=2, fuse=True).to(DT)
    x = torch.randn(2, 4, 5, 4, dtype=DT)
    results = {}
    for path in ('fused', 'message_passing'):
        model.zero_grad()
        xi = x.clone().requires_grad_()
        out, maps = model(xi, path=path, return_attention_weights=True)
        (out * torch.linspace(-1, 1, out.numel(), dtype=DT).view_as(out)).sum().backward()
        results[path] = [out, *maps, xi.grad] + [p.grad for p in model.parameters()]
    for a, b in zip(*results.values()):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize('score', READINGS)
def test_gradcheck_each_reading_on_each_kernel(score):
    torch.manual_seed(4)
    conv = LGAConv(3, 2, 9, heads=2, score=score).to(DT)
    x = torch.randn(1, 6, 3, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: conv(t, grid=(2, 3)), (x,))
    pos, xc, table, _ = _cloud(n=6, k=3)
    tconv = LGAConv(6, 2, 3, heads=2, score=score, edge_encoder='mlp', att_channels=3,
                    chunk_size=2).to(DT)
    xc = xc.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: tconv(t, neighbors=table, pos=pos), (xc,))


def test_neighbor_reading_is_the_neighbours_per_direction_convolution():
    # On a grid, score='neighbor' scores direction t with direction t's 1x1 conv
    # applied to the neighbour at offset t: change only that neighbour, and
    # only the score of that direction moves.
    torch.manual_seed(5)
    conv = LGAConv(3, 3, 9, score='neighbor').to(DT)
    x = torch.randn(1, 9, 3, dtype=DT)
    _, (_, a0) = conv(x, grid=(3, 3), return_attention_weights=True)
    y = x.clone()
    y[0, 5] += 1.0                                        # pixel (1, 2): centre 4's direction 5
    _, (ei, a1) = conv(y, grid=(3, 3), return_attention_weights=True)
    centre_4 = ei[1] == 4
    s0 = torch.log(a0[0, centre_4, 0])
    s1 = torch.log(a1[0, centre_4, 0])
    delta = (s1 - s0) - (s1 - s0).mean()                  # scores up to the softmax shift
    moved = ei[0, centre_4] == 5
    assert delta[moved].abs().item() > 1e-3
    assert torch.allclose(delta[~moved], delta[~moved][0].expand(int((~moved).sum())))
    center = LGAConv(3, 3, 9, score='center').to(DT)       # scores from the centre only:
    _, (_, c0) = center(x, grid=(3, 3), return_attention_weights=True)
    _, (_, c1) = center(y, grid=(3, 3), return_attention_weights=True)
    assert torch.equal(c0[0, centre_4], c1[0, centre_4])  # a neighbour cannot move them


def test_attention_weights_follow_gatconv():
    torch.manual_seed(6)
    pos, x, table, ei = _cloud()
    conv = LGAConv(6, 4, 3, heads=3, edge_encoder='mlp').to(DT)
    out, (edge_index, alpha) = conv(x, ei, pos=pos, return_attention_weights=True)
    assert out.shape == (14, 12) and alpha.shape == (ei.size(1), 3)
    sums = torch.zeros(14, 3, dtype=DT).index_add_(0, edge_index[1], alpha)
    torch.testing.assert_close(sums, torch.ones(14, 3, dtype=DT))
    adj = torch.sparse_coo_tensor(ei.flip(0), torch.ones(ei.size(1), dtype=DT),
                                  (14, 14)).coalesce()
    attr = graphs.relative_positions(pos, adj.indices().flip(0))
    adj_attr = torch.sparse_coo_tensor(adj.indices(), attr, (14, 14, 3)).coalesce()
    out2, (adj_w, alpha2) = conv(x, adj_attr, return_attention_weights=True)
    torch.testing.assert_close(out2, out)
    assert adj_w.is_sparse and adj_w.shape == (14, 14, 3)
    dense = adj_w.to_dense()                              # entry (i, j, h): edge j -> i
    torch.testing.assert_close(dense[edge_index[1], edge_index[0]], alpha)


def test_relative_positions_follow_the_flow():
    torch.manual_seed(7)
    pos, x, _, ei = _cloud()
    forward = LGAConv(6, 4, 3, edge_encoder='mlp').to(DT)
    backward = LGAConv(6, 4, 3, edge_encoder='mlp', flow='target_to_source').to(DT)
    backward.load_state_dict(forward.state_dict())
    torch.testing.assert_close(backward(x, ei.flip(0), pos=pos), forward(x, ei, pos=pos))


def test_table_padding_never_reads_a_real_node():
    torch.manual_seed(8)
    pos = torch.randn(7, 3, dtype=DT)
    batch = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    table, _ = graphs.nearest_neighbors(pos, 4, batch, loop=True)    # cloud 1 is padded
    assert bool((table[4:] == -1).any())
    x = torch.randn(7, 6, dtype=DT)
    x[0] = float('nan')                                              # poison cloud 0's node 0
    for score in READINGS:
        conv = LGAConv(6, 4, 3, score=score, edge_encoder='mlp').to(DT)
        out = conv(x, neighbors=table, pos=pos)
        assert torch.isfinite(out[4:]).all(), score
        out.nansum().backward()
        grads = [p.grad for p in conv.parameters() if p.grad is not None]
        assert grads  # the layer is trained through the padded rows without NaN gradients
        conv.zero_grad()
        clean = conv(x[4:], neighbors=table[4:] - 4 * (table[4:] >= 0), pos=pos[4:])
        torch.testing.assert_close(out[4:], clean)


def test_empty_tables_and_graphs():
    conv = LGAConv(6, 4, 3, edge_encoder='mlp')
    x = torch.randn(5, 6)
    out = conv(x, neighbors=torch.empty(5, 0, dtype=torch.long), pos=torch.randn(5, 3))
    torch.testing.assert_close(out, torch.zeros(5, 4))               # relu(0): no neighbours
    out = conv(torch.randn(0, 6), neighbors=torch.empty(0, 4, dtype=torch.long),
               pos=torch.randn(0, 3))
    assert out.shape == (0, 4)


def test_lga2d_builds_on_meta_and_stacks_need_edge_dim():
    with torch.device('meta'):
        model = LGA2d(8, num_layers=2)
    assert model.proj.weight.is_meta and model.offsets[4] == (0, 0)
    pos, x, _, ei = _cloud()
    with pytest.raises(ValueError, match=r"edge_dim=9 is the grid's one-hot default.*edge_dim=3"):
        LGA(6, 4).to(DT)(x, ei, pos=pos)


def test_heads_and_groups_compose():
    # groups == heads: each head's values come from its own channel group. With
    # the scores switched off (uniform weights) head 0 must see channels 0-1 only.
    torch.manual_seed(9)
    conv = LGAConv(4, 2, 9, heads=2, groups=2, act=None).to(DT)
    with torch.no_grad():
        conv.lin_att.weight.zero_()
        conv.lin_att.bias.zero_()
    x = torch.randn(1, 12, 4, dtype=DT, requires_grad=True)
    out = conv(x, grid=(3, 4))
    grad, = torch.autograd.grad(out[..., :2].sum(), x)            # head 0's channels
    assert grad[..., :2].abs().sum() > 0 and grad[..., 2:].abs().sum() == 0
    with pytest.raises(ValueError, match="'heads' .* must divide 'latent_channels'"):
        LGA2d(4, 6, heads=4)


@pytest.mark.skipif(not GOLDEN.exists(), reason='golden file missing')
def test_state_dicts_of_version_0_1_load_and_give_the_same_outputs():
    """Outputs and weights saved by graphattn 0.1 (commit 5ea263a), reloaded here."""
    golden = torch.load(GOLDEN, weights_only=True)
    g2d = golden['lga2d']
    old_form = dict(residual=False, norm='none', output_init='default')   # 0.1/0.2 stack
    model = LGA2d(4, 6, num_layers=2, fuse=True, groups=2, **old_form).to(DT)
    model.load_state_dict(g2d['state'])                           # strict: same keys
    out, latent, maps = model(g2d['x'], return_latent=True, return_attention_weights=True)
    torch.testing.assert_close(out, g2d['out'])
    torch.testing.assert_close(latent, g2d['latent'])
    for new, old in zip(maps, g2d['maps']):
        torch.testing.assert_close(new[:, 0], old)                # (B, 1, S, H, W) now
    gp = golden['lga']
    lga = LGA(8, 8, num_layers=2, edge_dim=3, edge_encoder='mlp', **old_form).to(DT)
    lga.load_state_dict(gp['state'])
    out, att = lga(gp['x'], gp['edge_index'], pos=gp['pos'], return_attention_weights=True)
    torch.testing.assert_close(out, gp['out'])
    for (_, new), old in zip(att, gp['alpha']):
        torch.testing.assert_close(new[:, 0], old)                # (E, 1) now


def test_reprs_name_the_new_options():
    assert str(LGA2d(64, heads=4, score='pair')) == (
        "LGA2d(64, latent_channels=64, num_layers=3, heads=4, score='pair')")
    assert str(LGAConv(8, 4, 3, heads=2, concat=False, score='neighbor',
                       edge_encoder='mlp')) == (
        "LGAConv(8, 4, edge_dim=3, heads=2, concat=False, score='neighbor', "
        "edge_encoder='mlp')")
    assert str(LGA.for_points(16, 32)) == (
        "LGA(16, latent_channels=32, num_layers=3, edge_dim=3, edge_encoder='mlp')")


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(score='both'), ValueError, "'score' must be one of"),
    (dict(heads=0), ValueError, "'heads' must be >= 1"),
    (dict(concat='yes'), TypeError, "'concat' must be a bool"),
    (dict(path='fast'), None, None),                     # deprecated name: a warning only
    (dict(path='quick'), ValueError, "'path' must be one of"),
])
def test_new_options_are_checked(kwargs, error, match):
    if error is None:
        with pytest.warns(DeprecationWarning, match="path='fused'"):
            assert LGAConv(4, 4, 9, **kwargs).path == 'fused'
        return
    with pytest.raises(error, match=match):
        LGAConv(4, 4, 9, **kwargs)


def test_graph_forms_are_exclusive_and_fused_needs_a_regular_form():
    conv = LGAConv(4, 4, 9)
    x = torch.randn(12, 4)
    g = graphs.grid_graph(3, 4)
    with pytest.raises(ValueError, match='exactly one of'):
        conv(x, g.edge_index, g.edge_attr, grid=(3, 4))
    with pytest.raises(ValueError, match='exactly one of'):
        conv(x)
    with pytest.raises(ValueError, match="path='fused' needs a regular graph form"):
        conv(x, g.edge_index, g.edge_attr, path='fused')
    with pytest.raises(ValueError, match="'grid'=3x5 has 15 pixels but 'x' holds 12"):
        conv(x, grid=(3, 5))

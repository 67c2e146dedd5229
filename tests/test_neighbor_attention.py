"""The dense neighbour-table path of LGA against message passing and a brute-force loop."""
import pytest
import torch

import graphs
from graphattn import LGA, LGAConv
from graphattn.neighbor_attention import NeighborWeightedSum, neighbor_weighted_sum


def _cloud(n=120, d=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype), torch.randn(n, 8, generator=g,
                                                                   dtype=dtype)


# --- graphs.to_neighbor_table -------------------------------------------------------------

def test_to_neighbor_table_inverts_neighbors_to_edge_index_for_shuffled_edges():
    pos, _ = _cloud()
    edge_index = graphs.radius_graph(pos, 1.0, loop=True, max_num_neighbors=12)
    shuffled = edge_index[:, torch.randperm(edge_index.size(1))]
    table, edge_id = graphs.to_neighbor_table(shuffled, pos.size(0))
    degree = torch.bincount(edge_index[1], minlength=pos.size(0))
    assert table.size(1) == int(degree.max())
    assert torch.equal((table >= 0).sum(1), degree)          # padding only after the degree
    valid = edge_id >= 0
    assert torch.equal(valid, table >= 0)
    assert torch.equal(shuffled[0][edge_id[valid]], table[valid])
    centres = torch.arange(pos.size(0)).view(-1, 1).expand_as(table)
    assert torch.equal(shuffled[1][edge_id[valid]], centres[valid])
    back = graphs.neighbors_to_edge_index(table)
    assert sorted(map(tuple, back.t().tolist())) == sorted(map(tuple, edge_index.t().tolist()))


def test_to_neighbor_table_flow_and_isolated_nodes():
    edge_index = torch.tensor([[0, 0, 2], [1, 2, 1]])          # node 0 and 3: no incoming edge
    table, _ = graphs.to_neighbor_table(edge_index, 4)
    assert table.tolist() == [[-1, -1], [0, 2], [0, -1], [-1, -1]]
    table_t, _ = graphs.to_neighbor_table(edge_index.flip(0), 4, flow='target_to_source')
    assert torch.equal(table, table_t)


@pytest.mark.parametrize('bad, match', [
    (torch.tensor([[0.0, 1.0], [1.0, 0.0]]), 'integer'),
    (torch.tensor([0, 1]), r'\(2, E\)'),
    (torch.tensor([[0, -1], [1, 0]]), 'non-negative'),
])
def test_to_neighbor_table_rejects_bad_edge_index(bad, match):
    with pytest.raises((TypeError, ValueError), match=match):
        graphs.to_neighbor_table(bad, 2)


def test_to_neighbor_table_rejects_centres_beyond_num_nodes():
    with pytest.raises(ValueError, match='num_nodes'):
        graphs.to_neighbor_table(torch.tensor([[0, 1], [1, 5]]), 3)


# --- LGAConv on the table against message passing ---------------------------------------

def _padded_knn(pos):
    """kNN over a batch with one cloud smaller than k: rows get -1 padding."""
    batch = torch.tensor([0] * 100 + [1] * 4 + [2] * 16)
    edge_index = graphs.knn_graph(pos, 6, batch, loop=True)
    table, edge_id = graphs.to_neighbor_table(edge_index, pos.size(0))
    assert (table < 0).any()
    return edge_index, table, edge_id


@pytest.mark.parametrize('normalize', ['softmax', 'sigmoid'])
@pytest.mark.parametrize('chunk_size', [1, 7, None])
def test_table_path_equals_message_passing_values_and_gradients(normalize, chunk_size):
    pos, x = _cloud()
    edge_index, table, _ = _padded_knn(pos)
    torch.manual_seed(0)
    conv = LGAConv(8, 8, 3, edge_encoder='mlp', att_channels=5, normalize=normalize,
                   chunk_size=chunk_size).double()

    def run(**graph):
        xg = x.clone().requires_grad_()
        out = conv(xg, **graph, pos=pos)
        grads = torch.autograd.grad((out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype)
                                     .view_as(out)).sum(), [xg] + list(conv.parameters()))
        return out, grads

    out_mp, g_mp = run(edge_index=edge_index)
    out_tb, g_tb = run(edge_index=None, neighbors=table)
    torch.testing.assert_close(out_tb, out_mp, rtol=1e-12, atol=1e-12)
    for a, b in zip(g_tb, g_mp):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_table_path_equals_brute_force_loop():
    pos, x = _cloud(n=30)
    table, _ = graphs.nearest_neighbors(pos, 5, loop=True)
    conv = LGAConv(8, 4, 3, edge_encoder='mlp', act=None).double()
    out = conv(x, None, pos=pos, neighbors=table)
    q, v = conv.lin_att(x), conv.lin_value(x)
    for i in range(x.size(0)):
        js = table[i]
        s = torch.stack([q[i] @ conv.edge_encoder(pos[j] - pos[i]) for j in js])
        expected = (torch.softmax(s, 0).unsqueeze(1) * v[js]).sum(0)
        torch.testing.assert_close(out[i], expected)


def test_table_path_with_edge_attr_batched_features_and_attention():
    pos, x = _cloud()
    edge_index, table, edge_id = _padded_knn(pos)
    edge_attr = torch.randn(edge_index.size(1), 4, dtype=pos.dtype)
    table_attr = edge_attr[edge_id.clamp(min=0)] * (edge_id >= 0).unsqueeze(-1)
    xb = torch.stack([x, 2 * x + 1])                         # (B, N, C), shared topology
    conv = LGAConv(8, 6, 4, edge_encoder='identity').double()
    out_mp, (ei_mp, alpha_mp) = conv(xb, edge_index, edge_attr, return_attention_weights=True)
    out_tb, (ei_tb, alpha_tb) = conv(xb, None, table_attr, neighbors=table,
                                     return_attention_weights=True)
    torch.testing.assert_close(out_tb, out_mp)
    # Same edges, returned in table order: compare the weights edge by edge.
    assert alpha_mp.shape == alpha_tb.shape == (2, edge_index.size(1), 1)  # (B, E, heads)
    key_mp = {tuple(e): a for e, a in zip(ei_mp.t().tolist(), alpha_mp[..., 0].t().tolist())}
    key_tb = {tuple(e): a for e, a in zip(ei_tb.t().tolist(), alpha_tb[..., 0].t().tolist())}
    assert key_mp.keys() == key_tb.keys()
    for e in key_mp:
        assert key_tb[e] == pytest.approx(key_mp[e], rel=1e-12, abs=1e-12)


def test_node_without_neighbors_gets_zero_output_not_nan():
    x = torch.randn(3, 4)
    table = torch.tensor([[0, 1], [-1, -1], [2, -1]])
    conv = LGAConv(4, 4, 1, act=None, bias=False)
    out = conv(x, None, torch.zeros(3, 2, 1), neighbors=table)
    assert torch.isfinite(out).all()
    assert torch.equal(out[1], torch.zeros(4))


def test_bipartite_table_path():
    pos_s, x_s = _cloud(n=40, seed=1)
    pos_t, x_t = _cloud(n=10, seed=2)
    table = torch.cdist(pos_t, pos_s).topk(4, largest=False).indices   # (10, 4) into sources
    edge_index = graphs.neighbors_to_edge_index(table)
    conv = LGAConv(8, 8, 3, edge_encoder='mlp').double()
    out_mp = conv((x_s, x_t), edge_index, pos=(pos_s, pos_t), size=(40, 10))
    out_tb = conv((x_s, x_t), None, pos=(pos_s, pos_t), neighbors=table)
    torch.testing.assert_close(out_tb, out_mp)


def test_stacked_lga_table_path_equals_edge_index_path():
    pos, x = _cloud()
    edge_index, table, _ = _padded_knn(pos)
    model = LGA(8, 6, num_layers=3, edge_dim=3, edge_encoder='mlp', chunk_size=13).double()
    out_mp, lat_mp = model(x, edge_index, pos=pos, return_latent=True)
    out_tb, lat_tb = model(x, None, pos=pos, neighbors=table, return_latent=True)
    torch.testing.assert_close(out_tb, out_mp)
    torch.testing.assert_close(lat_tb, lat_mp)


# --- gradients --------------------------------------------------------------------------

def test_neighbor_weighted_sum_gradcheck_and_gradgradcheck():
    g = torch.Generator().manual_seed(0)
    alpha = torch.rand(2, 7, 3, generator=g, dtype=torch.float64, requires_grad=True)
    value = torch.randn(2, 9, 4, generator=g, dtype=torch.float64, requires_grad=True)
    index = torch.randint(0, 9, (7, 3), generator=g)
    index[2, 1] = index[2, 0]                                  # repeated neighbour
    fn = lambda a, v: NeighborWeightedSum.apply(a, v, index, 3)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (alpha, value))
    assert torch.autograd.gradgradcheck(fn, (alpha, value))


def test_table_path_gradcheck_through_the_layer():
    pos, x = _cloud(n=12)
    table, _ = graphs.nearest_neighbors(pos, 4, loop=True)
    table[3, 2:] = -1
    conv = LGAConv(8, 3, 3, edge_encoder='mlp', att_channels=4, chunk_size=5).double()
    xg = x.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: conv(t, None, pos=pos, neighbors=table), (xg,))


@pytest.mark.parametrize('node0', [100.0, float('nan'), float('inf')])
def test_padding_never_reads_a_real_node(node0):
    # Index -1 is gathered from a clamped index: the value must be replaced, not
    # multiplied by a zero weight (0 * NaN = NaN would leak node 0 everywhere).
    alpha = torch.tensor([0.5, 0.0]).view(1, 1, 1, 2)            # (B, N, heads, K)
    value = torch.tensor([node0, 2.0]).view(1, 2, 1, 1)          # (B, M, heads, D)
    out = neighbor_weighted_sum(alpha, value, torch.tensor([[1, -1]]), 1)
    assert out.item() == pytest.approx(1.0)


# --- bad input --------------------------------------------------------------------------

@pytest.mark.parametrize('table, match', [
    (torch.zeros(5, 2), 'integer'),
    (torch.zeros(4, 2, dtype=torch.long), r'\(N, K\)'),
    (torch.full((5, 2), 7), r'\[0, 5\)'),
    (torch.full((5, 2), -2), r'\[0, 5\)'),
])
def test_bad_neighbor_tables_name_the_argument(table, match):
    conv = LGAConv(4, 4, 3, edge_encoder='mlp')
    with pytest.raises((TypeError, ValueError), match=match):
        conv(torch.randn(5, 4), None, pos=torch.randn(5, 3), neighbors=table)


def test_table_path_needs_edge_attr_in_table_layout_or_pos():
    conv = LGAConv(4, 4, 3, edge_encoder='mlp')
    table = torch.zeros(5, 2, dtype=torch.long)
    with pytest.raises(ValueError, match=r"'edge_attr' must have shape \(N, K, 3\)"):
        conv(torch.randn(5, 4), None, torch.randn(10, 3), neighbors=table)
    with pytest.raises(ValueError, match="'pos'"):
        conv(torch.randn(5, 4), None, neighbors=table)
    with pytest.raises(ValueError, match="'edge_index'"):
        conv(torch.randn(5, 4), None, pos=torch.randn(5, 3))


def test_table_path_compiles_without_graph_breaks():
    pos, x = _cloud(n=50, dtype=torch.float32)
    table, _ = graphs.nearest_neighbors(pos, 6, loop=True)
    model = LGA(8, 8, num_layers=2, edge_dim=3, edge_encoder='mlp', chunk_size=20)
    explain = torch._dynamo.explain(model)(x, None, pos=pos, neighbors=table)
    assert explain.graph_break_count == 0
    compiled = torch.compile(model, backend='aot_eager')
    torch.testing.assert_close(compiled(x, None, pos=pos, neighbors=table),
                               model(x, None, pos=pos, neighbors=table))


# --- the CSR products and the encoder fold (issue 15) -------------------------------------

def _brute_weighted_sum(alpha, value, index):
    """out[b, i] = sum_k alpha[b, i, k] value[b, index[i, k]], -1 skipped, by loops."""
    b, n, k = alpha.shape
    out = value.new_zeros(b, n, value.size(2))
    for bb in range(b):
        for i in range(n):
            for kk in range(k):
                if index[i, kk] >= 0:
                    out[bb, i] += alpha[bb, i, kk] * value[bb, index[i, kk]]
    return out


def _sum_inputs(n=9, m=11, k=4, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    alpha = torch.rand(batch, n, k, generator=g, dtype=torch.float64)
    value = torch.randn(batch, m, 5, generator=g, dtype=torch.float64)
    index = torch.randint(0, m, (n, k), generator=g)
    index[2, 1] = index[2, 0]                                   # repeated neighbour
    index[4, 2:] = -1                                           # padded row
    index[5] = -1                                               # no neighbour at all
    alpha = alpha * (index >= 0)
    return alpha, value, index


@pytest.mark.parametrize('sparse', [True, False])
def test_weighted_sum_kernels_equal_brute_force_values_and_gradients(sparse, monkeypatch):
    from graphattn import neighbor_attention as na
    if not sparse:
        monkeypatch.setattr(na, '_sparse_products', lambda value, index: False)
    alpha, value, index = _sum_inputs()
    a, v = alpha.clone().requires_grad_(), value.clone().requires_grad_()
    padded = torch.where(index >= 0, index, value.size(1))
    out = NeighborWeightedSum.apply(a, v, padded, 3)
    a_ref, v_ref = alpha.clone().requires_grad_(), value.clone().requires_grad_()
    expected = _brute_weighted_sum(a_ref, v_ref, index)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    w = torch.randn(out.shape, dtype=out.dtype)
    grads = torch.autograd.grad((out * w).sum(), (a, v))
    grads_ref = torch.autograd.grad((expected * w).sum(), (a_ref, v_ref))
    for got, ref in zip(grads, grads_ref):
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


def test_sparse_weighted_sum_is_the_cpu_default_and_gradchecks_with_padding():
    from graphattn import neighbor_attention as na
    alpha, value, index = _sum_inputs(n=6, m=7, k=3)
    padded = torch.where(index >= 0, index, value.size(1))
    assert na._sparse_products(value, padded)
    assert not na._sparse_products(value.half(), padded)
    assert not na._sparse_products(value, padded[:, :0])        # an empty table gathers
    fn = lambda a, v: NeighborWeightedSum.apply(a, v, padded, 2)  # noqa: E731
    args = (alpha.requires_grad_(), value.requires_grad_())
    assert torch.autograd.gradcheck(fn, args)                   # first order: the CSR backward
    assert torch.autograd.gradgradcheck(fn, args)               # second order: the dense one


def test_sparse_weighted_sum_float32_matches_float64():
    alpha, value, index = _sum_inputs(n=50, m=60, k=8, seed=3)
    out64 = neighbor_weighted_sum(alpha.unsqueeze(2), value.unsqueeze(2), index, 7)
    out32 = neighbor_weighted_sum(alpha.float().unsqueeze(2), value.float().unsqueeze(2),
                                  index, 7)
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), out64, rtol=1e-5, atol=1e-5)


def test_split_last_linear_reads_only_a_sequential_ending_in_a_linear_map():
    from torch_geometric.nn import Linear as PygLinear

    from graphattn.neighbor_attention import split_last_linear
    mlp = torch.nn.Sequential(PygLinear(3, 6), torch.nn.ReLU(), PygLinear(6, 4))
    hidden, weight, bias = split_last_linear(mlp)
    e = torch.randn(10, 3)
    torch.testing.assert_close(hidden(e) @ weight.t() + bias, mlp(e))
    lone = torch.nn.Sequential(torch.nn.Linear(3, 4, bias=False))
    hidden, weight, bias = split_last_linear(lone)
    assert bias is None and torch.equal(hidden(e), e)
    class Scaled(torch.nn.Sequential):   # a subclass may change forward: never folded
        def forward(self, e):
            return 2 * super().forward(e)

    for opaque in (None, torch.nn.Linear(3, 4), torch.nn.Sequential(torch.nn.Linear(3, 4),
                                                                    torch.nn.Tanh()),
                   torch.nn.Sequential(PygLinear(-1, 4)),             # lazy: not initialised
                   Scaled(torch.nn.Linear(3, 4))):
        assert split_last_linear(opaque) == (opaque, None, None)


def _custom(kind):
    if kind == 'sequential':   # ends in a linear map: folded
        return torch.nn.Sequential(torch.nn.Linear(3, 7), torch.nn.Tanh(), torch.nn.Linear(7, 5))
    return torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh())   # opaque: not folded


@pytest.mark.parametrize('score', ['center', 'neighbor', 'pair'])
@pytest.mark.parametrize('normalize', ['softmax', 'sigmoid'])
def test_folded_encoder_table_path_equals_message_passing_batched_heads(score, normalize):
    # sigmoid keeps the folded bias term q_i . b (a softmax cancels it), and
    # 'neighbor' reads its k_j . b through the table, padding included.
    pos, x = _cloud()
    edge_index, table, _ = _padded_knn(pos)
    torch.manual_seed(1)
    conv = LGAConv(8, 3, 3, heads=2, score=score, edge_encoder='mlp', att_channels=5,
                   normalize=normalize, chunk_size=17).double()
    for p in conv.edge_encoder[-1].parameters():              # a bias that matters
        torch.nn.init.normal_(p)
    xb = torch.stack([x, x.flip(0)])                           # (B, N, C)

    def run(**graph):
        xg = xb.clone().requires_grad_()
        out = conv(xg, **graph, pos=pos)
        w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
        return [out, *torch.autograd.grad((out * w).sum(), [xg] + list(conv.parameters()))]

    for got, ref in zip(run(neighbors=table), run(edge_index=edge_index)):
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('kind', ['sequential', 'opaque'])
@pytest.mark.parametrize('score', ['center', 'neighbor'])
def test_custom_encoders_table_path_equals_message_passing_bipartite(kind, score):
    pos_s, x_s = _cloud(n=40, seed=1)
    pos_t, x_t = _cloud(n=10, seed=2)
    table = torch.cdist(pos_t, pos_s).topk(4, largest=False).indices
    table[3, 2:] = -1
    edge_index = graphs.neighbors_to_edge_index(table)
    torch.manual_seed(2)
    conv = LGAConv(8, 4, 3, score=score, edge_encoder=_custom(kind), att_channels=5,
                   normalize='sigmoid').double()

    def run(**graph):
        out = conv((x_s, x_t), **graph, pos=(pos_s, pos_t))
        return [out, *torch.autograd.grad(out.square().sum(), list(conv.parameters()))]

    got = run(neighbors=table)
    ref = run(edge_index=edge_index, size=(40, 10))
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_table_path_gradgradcheck_through_fold_checkpoint_and_sum():
    pos, x = _cloud(n=9)
    table, _ = graphs.nearest_neighbors(pos, 3, loop=True)
    table[2, 1:] = -1
    conv = LGAConv(8, 2, 3, edge_encoder='mlp', att_channels=3, chunk_size=4,
                   normalize='sigmoid', act='tanh').double()
    xg = x.clone().requires_grad_()
    fn = lambda t: conv(t, None, pos=pos, neighbors=table)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (xg,))
    assert torch.autograd.gradgradcheck(fn, (xg,))


def test_gradient_reaches_pos_through_the_table_path():
    pos, x = _cloud(n=20)
    table, _ = graphs.nearest_neighbors(pos, 4, loop=True)
    edge_index = graphs.neighbors_to_edge_index(table)
    conv = LGAConv(8, 4, 3, edge_encoder='mlp', normalize='sigmoid').double()
    grads = []
    for graph in ({'neighbors': table}, {'edge_index': edge_index}):
        p = pos.clone().requires_grad_()
        grads.append(torch.autograd.grad(conv(x, pos=p, **graph).sum(), p)[0])
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('m', [1, 3])
def test_row_product_is_bmm_values_and_gradients_to_second_order(m):
    from graphattn.neighbor_attention import RowProduct
    g = torch.Generator().manual_seed(0)
    phi = torch.randn(5, 4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    q = torch.randn(5, 6, m, generator=g, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(RowProduct.apply(phi, q), torch.bmm(phi, q), rtol=0, atol=0)
    assert torch.autograd.gradcheck(RowProduct.apply, (phi, q))
    assert torch.autograd.gradgradcheck(RowProduct.apply, (phi, q))


def test_chunking_changes_nothing_but_the_order_of_sums():
    # One chunk, uneven chunks and one centre per chunk: same output and gradients
    # (split chunks route every centre's gradient back to its own rows).
    pos, x = _cloud(n=37)
    table, _ = graphs.nearest_neighbors(pos, 5, loop=True)
    table[6, 3:] = -1
    results = []
    for chunk in (None, 8, 1):
        torch.manual_seed(0)
        conv = LGAConv(8, 4, 3, edge_encoder='mlp', chunk_size=chunk).double()
        xg = x.clone().requires_grad_()
        out = conv(xg, None, pos=pos, neighbors=table)
        w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
        results.append([out, *torch.autograd.grad((out * w).sum(),
                                                  [xg] + list(conv.parameters()))])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)

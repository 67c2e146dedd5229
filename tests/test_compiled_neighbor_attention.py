"""The compiled table kernel (``neighbors=`` with ``path='compiled'``) against references.

The references are independent of the kernel: the eager table kernel
(:func:`~graphattn.lga_scores.normalize_dense` and
:func:`~graphattn.neighbor_attention.neighbor_weighted_sum`, CSR products on the CPU),
message passing on the table's edge list, and the edge-by-edge loops of
``tests/lga_reference.py``. Tables mix what real ones hold: ``-1`` padding, a row that
repeats a neighbour, an empty row.

On the CPU the compiled functions run through ``aot_eager`` (the same traced forward
and backward graphs, without inductor's C++ build, about a minute per configuration on
this machine); ``tests/test_cuda_parity.py --device cuda`` runs them through inductor
(Triton kernels), and ``benchmarks/points.py --impls lga_compiled`` through inductor on
the CPU.
"""
import os
import subprocess
import sys

import pytest
import torch
import torch._dynamo

import graphs
from graphattn import LGA, LGAConv
from graphattn.compiled_neighbor_attention import (_backward, _forward,
                                                   compiled_neighbor_attention)
from graphattn.lga_scores import normalize_dense
from graphattn.neighbor_attention import neighbor_weighted_sum
from lga_reference import brute_force, table_edges

DT = torch.float64
# The tables leave out self-loops on purpose (padding, empty rows): LGA's warning is expected.
pytestmark = [pytest.mark.usefixtures('one_thread', 'aot_eager_table_kernel'),
              pytest.mark.filterwarnings('ignore:.*have no self-loop')]


def _table():
    """7 centres reading 6 nodes, K = 4: full rows, padding, a repeat, an empty row."""
    return torch.tensor([[0, 1, 2, 3],
                         [1, -1, 4, -1],      # padding between entries
                         [5, 5, 5, 2],        # one neighbour three times
                         [-1, -1, -1, -1],    # no neighbour at all
                         [3, 2, 1, 0],
                         [4, 4, -1, 5],       # a repeat and padding
                         [2, -1, -1, -1]])


def _eager(scores, value, index, normalize, relu):
    alpha = normalize_dense(scores, (index >= 0)[None, :, None, :], normalize)
    out = neighbor_weighted_sum(alpha, value, index, chunk_size=3)
    return (out.relu() if relu else out), alpha


def _run(fn, scores, value, index, normalize, relu, grad_alpha):
    scores = scores.clone().requires_grad_()
    value = value.clone().requires_grad_()
    out, alpha = fn(scores, value, index, normalize, relu)
    w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    ((out * w).sum() + (alpha * grad_alpha).sum()).backward()
    return out.detach(), alpha.detach(), scores.grad, value.grad


@pytest.mark.parametrize('normalize', ['softmax', 'sigmoid'])
@pytest.mark.parametrize('heads', [1, 2])
@pytest.mark.parametrize('relu', [False, True])
def test_kernel_equals_the_eager_table_kernel(normalize, heads, relu):
    """Output, weights and both gradients (also through the returned weights), batch 2."""
    torch.manual_seed(0)
    index = _table()
    scores = 3 * torch.randn(2, 7, heads, 4, dtype=DT)
    value = torch.randn(2, 6, heads, 3, dtype=DT)
    grad_alpha = torch.randn(2, 7, heads, 4, dtype=DT)
    got = _run(compiled_neighbor_attention, scores, value, index, normalize, relu, grad_alpha)
    want = _run(_eager, scores, value, index, normalize, relu, grad_alpha)
    for name, g, w in zip(('out', 'alpha', 'grad scores', 'grad value'), got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12, msg=lambda m: f'{name}: {m}')
    out, alpha = got[:2]
    assert (alpha[:, 3] == 0).all() and (out[:, 3] == 0).all()     # the empty row
    assert (alpha[:, 1, :, [1, 3]] == 0).all()                     # padding weighs zero
    if relu:
        assert (out == 0).any() and (out > 0).any()


def test_kernel_against_a_loop():
    """The sum written as a loop over the table's entries (repeats counted each time)."""
    torch.manual_seed(1)
    index = _table()
    scores = torch.randn(1, 7, 2, 4, dtype=DT)
    value = torch.randn(1, 6, 2, 3, dtype=DT)
    out, alpha = compiled_neighbor_attention(scores, value, index, 'softmax')
    want = torch.zeros(1, 7, 2, 3, dtype=DT)
    for i, row in enumerate(index.tolist()):
        cols = [k for k, j in enumerate(row) if j >= 0]
        if not cols:
            continue
        w = torch.softmax(scores[0, i][:, cols], dim=-1)            # (G, |cols|)
        for c, k in enumerate(cols):
            want[0, i] += w[:, c:c + 1] * value[0, row[k]]
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)


def test_padding_never_reads_a_real_node():
    """A NaN at node 0 stays at node 0: padding reads a zero row, not node 0."""
    index = torch.tensor([[1, -1], [0, 1]])
    value = torch.ones(1, 2, 1, 2, dtype=DT)
    value[0, 0] = float('nan')
    scores = torch.zeros(1, 2, 1, 2, dtype=DT, requires_grad=True)
    v = value.clone().requires_grad_()
    out, _ = compiled_neighbor_attention(scores, v, index, 'softmax')
    assert torch.equal(out[0, 0], torch.ones(1, 2, dtype=DT))
    assert out[0, 1].isnan().all()
    out[0, 0].sum().backward()
    assert torch.isfinite(scores.grad[0, 0]).all() and torch.isfinite(v.grad).all()


def test_gradcheck():
    torch.manual_seed(2)
    index = _table()
    scores = torch.randn(2, 7, 2, 4, dtype=DT, requires_grad=True)
    value = torch.randn(2, 6, 2, 3, dtype=DT, requires_grad=True)
    for normalize in ('softmax', 'sigmoid'):
        assert torch.autograd.gradcheck(
            lambda s, v: compiled_neighbor_attention(s, v, index, normalize), (scores, value))


@pytest.mark.parametrize('score', ['center', 'neighbor', 'pair'])
@pytest.mark.parametrize('heads', [1, 2])
@pytest.mark.parametrize('normalize', ['softmax', 'sigmoid'])
def test_every_reading_equals_message_passing_and_the_loop(score, heads, normalize):
    """LGAConv on a table with relative positions: the compiled path against message
    passing on the table's edges (values, attention weights, the input's, the positions'
    and every parameter's gradient) and against the edge-by-edge loop (values and
    weights). ``concat=True`` fuses the ReLU into the kernel."""
    torch.manual_seed(3)
    table = _table()[:6]                                    # 6 centres, 6 sources
    conv = LGAConv(5, 3, edge_dim=3, heads=heads, score=score, edge_encoder='mlp',
                   att_channels=4, normalize=normalize).to(DT)
    assert conv._relu_fusable()
    x, pos = torch.randn(6, 5, dtype=DT), torch.rand(6, 3, dtype=DT)
    edges = table_edges(table)
    results = {}
    for path in ('message_passing', 'compiled'):
        xi, pi = x.clone().requires_grad_(), pos.clone().requires_grad_()
        graph = (dict(neighbors=table, path=path) if path == 'compiled'
                 else dict(edge_index=edges, path=path))
        out, (_, alpha) = conv(xi, pos=pi, return_attention_weights=True, **graph)
        w = torch.linspace(-1, 1, out.numel(), dtype=DT).view_as(out)
        ((out * w).sum() + (alpha ** 2).sum()).backward()
        results[path] = [out.detach(), alpha.detach(), xi.grad, pi.grad] + [
            p.grad.clone() for p in conv.parameters()]
        conv.zero_grad(set_to_none=True)
    for i, (g, w) in enumerate(zip(results['compiled'], results['message_passing'])):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-11, msg=lambda m: f'{i}: {m}')
    with torch.no_grad():
        ref, ref_alpha = brute_force(conv, x, x, edges, pos[edges[0]] - pos[edges[1]])
    torch.testing.assert_close(results['compiled'][0], ref, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(results['compiled'][1], ref_alpha, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize('concat', [True, False])
def test_batched_given_edge_attr_and_int32_table_equal_the_fused_path(concat):
    """``x`` ``(B, N, C)``, a given ``(N, K, D)`` edge_attr, an int32 table; with
    ``concat=False`` the heads are averaged before the activation (no fused ReLU)."""
    torch.manual_seed(4)
    table = _table()[:6]
    conv = LGAConv(5, 3, edge_dim=2, heads=2, concat=concat, score='pair').to(DT)
    assert conv._relu_fusable() == concat
    x = torch.randn(2, 6, 5, dtype=DT)
    attr = torch.randn(6, 4, 2, dtype=DT)
    results = {}
    for path in ('fused', 'compiled'):
        xi, ai = x.clone().requires_grad_(), attr.clone().requires_grad_()
        out = conv(xi, neighbors=table.int(), edge_attr=ai, path=path)
        (out * torch.linspace(-1, 1, out.numel(), dtype=DT).view_as(out)).sum().backward()
        results[path] = [out.detach(), xi.grad, ai.grad] + [p.grad.clone()
                                                            for p in conv.parameters()]
        conv.zero_grad(set_to_none=True)
    for g, w in zip(results['compiled'], results['fused']):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


def test_bipartite_neighbor_reading_without_target_features():
    """``x=(x_src, None)``: 4 centres reading 6 sources, against message passing."""
    torch.manual_seed(5)
    table = torch.tensor([[0, 5, -1], [2, 2, 3], [-1, -1, -1], [1, 4, 0]])
    conv = LGAConv(5, 3, edge_dim=2, heads=2, score='neighbor').to(DT)
    x = torch.randn(6, 5, dtype=DT)
    attr = torch.randn(4, 3, 2, dtype=DT)
    got = conv((x, None), neighbors=table, edge_attr=attr, path='compiled')
    want = conv((x, None), table_edges(table), attr[table >= 0], size=(6, 4),
                path='message_passing')
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_lga_stack_compiled_equals_fused_on_a_cloud():
    """LGA (two layers) on a kNN table of two clouds, one smaller than k (padding)."""
    g = torch.Generator().manual_seed(6)
    pos = torch.rand(17, 3, generator=g, dtype=DT)
    batch = torch.tensor([0] * 14 + [1] * 3)
    x = torch.randn(17, 6, generator=g, dtype=DT)
    table, _ = graphs.nearest_neighbors(pos, 5, batch, loop=True)
    assert (table == -1).any()
    torch.manual_seed(7)
    fused = LGA(6, 4, num_layers=2, edge_dim=3, edge_encoder='mlp', heads=2).to(DT)
    compiled = LGA(6, 4, num_layers=2, edge_dim=3, edge_encoder='mlp', heads=2,
                   path='compiled').to(DT)
    compiled.load_state_dict(fused.state_dict())
    outs = []
    for model in (fused, compiled):
        xi = x.clone().requires_grad_()
        out = model(xi, pos=pos, neighbors=table)
        (out * torch.linspace(-1, 1, out.numel(), dtype=DT).view_as(out)).sum().backward()
        outs.append([out.detach(), xi.grad] + [p.grad for p in model.parameters()])
    for g_, w in zip(*outs):
        torch.testing.assert_close(g_, w, rtol=1e-9, atol=1e-11)


@pytest.mark.filterwarnings('error::UserWarning')
def test_kernel_traces_without_a_torch_warning():
    """Detached inputs for the compiled functions: Dynamo reads the .grad of each input as
    it traces, a (hidden) UserWarning for a non-leaf one that requires grad, an error under
    ``-W error``. The fixture gives a fresh cache, so both functions really trace here."""
    g = torch.Generator().manual_seed(8)
    pos = torch.rand(12, 3, generator=g)
    table, _ = graphs.nearest_neighbors(pos, 4, loop=True)
    model = LGA.for_points(5, 3, num_layers=2, path='compiled')
    x = torch.randn(12, 5, generator=g, requires_grad=True)
    model(x, pos=pos, neighbors=table).sum().backward()
    assert x.grad is not None


def test_empty_inputs():
    """No centres, no columns, no sources: empty or zero outputs and a backward pass."""
    conv = LGAConv(4, 3, edge_dim=2, path='compiled')
    for n, k, m in ((0, 3, 5), (5, 0, 5)):
        x_dst = torch.randn(n, 4, requires_grad=True)
        x_src = torch.randn(m, 4, requires_grad=True)
        table = torch.zeros(n, k, dtype=torch.long)
        out = conv((x_src, x_dst), neighbors=table, edge_attr=torch.zeros(n, k, 2))
        assert out.shape == (n, 3) and (out == 0).all()
        out.sum().backward()
        assert x_src.grad.shape == (m, 4)
    x_dst = torch.randn(3, 4)
    out = conv((torch.zeros(0, 4), x_dst), neighbors=torch.full((3, 2), -1),
               edge_attr=torch.zeros(3, 2, 2))
    assert out.shape == (3, 3) and (out == 0).all()


def test_kernels_have_no_graph_breaks():
    """Both passes trace to one graph each, so inductor sees the whole loop."""
    index = _table()
    s, v = torch.randn(1, 7, 2, 4), torch.randn(1, 6, 2, 3)
    alpha, g = torch.rand(1, 7, 2, 4), torch.randn(1, 7, 2, 3)
    assert torch._dynamo.explain(_forward)(s, v, index, 'softmax', True).graph_break_count == 0
    assert torch._dynamo.explain(_backward)(g, alpha, alpha, v, index, g,
                                            'sigmoid').graph_break_count == 0


def test_whole_module_traces_without_graph_breaks():
    """A user's ``torch.compile`` over a compiled-path LGA on a table sees one graph, and
    the compiled module gives the eager values."""
    torch.manual_seed(8)
    model = LGA(6, 4, num_layers=2, edge_dim=3, edge_encoder='mlp', path='compiled')
    pos, x = torch.rand(9, 3), torch.randn(9, 6)
    table, _ = graphs.nearest_neighbors(pos, 4, loop=True)
    explained = torch._dynamo.explain(model)(x, pos=pos, neighbors=table)
    assert explained.graph_break_count == 0, explained.break_reasons
    torch._dynamo.reset()
    compiled = torch.compile(model, backend='aot_eager', fullgraph=True)
    torch.testing.assert_close(compiled(x, pos=pos, neighbors=table),
                               model(x, pos=pos, neighbors=table), rtol=1e-5, atol=1e-6)


def test_double_backward_is_refused_clearly():
    index = _table()
    s = torch.randn(1, 7, 1, 4, dtype=DT, requires_grad=True)
    v = torch.randn(1, 6, 1, 2, dtype=DT, requires_grad=True)
    out, _ = compiled_neighbor_attention(s, v, index, 'softmax')
    with pytest.raises(RuntimeError, match="path='compiled' does not support double backward"):
        torch.autograd.grad(out.sum(), v, create_graph=True)


def test_compiled_needs_a_table_or_a_grid():
    conv = LGAConv(4, 4, edge_dim=3, path='compiled')
    with pytest.raises(ValueError, match="path='compiled' needs a regular graph form.*"
                                         "'neighbors'"):
        conv(torch.randn(2, 4), torch.tensor([[0, 1], [1, 0]]), torch.randn(2, 3))


def test_nothing_compiles_at_import_or_construction():
    """Opt-in: importing graphattn and building a compiled-path layer compiles nothing
    (a fresh interpreter, so that no other test's call counts)."""
    code = ("import graphattn.compiled_neighbor_attention as c; from graphattn import LGA; "
            "LGA(4, 4, num_layers=2, edge_dim=3, path='compiled'); "
            "assert all(k._compiled is None for k in c._KERNELS.values()), c._KERNELS")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=300, cwd=root, env=dict(os.environ, PYTHONPATH=root))
    assert done.returncode == 0, done.stderr[-2000:]

"""LGA under PyG's explainers.

An explainer (``torch_geometric.explain``) puts a mask over the edges of the model's
``edge_index`` on every ``MessagePassing`` layer and multiplies each message by it. LGA's
message-passing path must therefore scale each edge's message ``alpha_ij V x_j`` by the mask
(checked against the edge-by-edge loop of ``lga_reference``), GNNExplainer must mark exactly
the edges inside the stack's reach (checked against a breadth-first search in networkx), a
table or a grid, which have no edge list for the mask, must refuse explain mode with a clear
error, and LGA2d, whose grid is built inside, must stay out of the explanation.
"""
import networkx as nx
import pytest
import torch
from torch_geometric.explain import Explainer, GNNExplainer
from torch_geometric.explain.algorithm.utils import clear_masks, set_masks
from torch_geometric.nn import GCNConv

from graphattn import LGA, LGA2d, LGAConv
from graphs import knn_graph, nearest_neighbors
from lga_reference import brute_force

DT = torch.float64


def _cloud(n=14, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(n, 3, generator=g, dtype=DT)
    return pos, knn_graph(pos, k, loop=True)


@pytest.mark.parametrize('score', ['center', 'neighbor', 'pair'])
@pytest.mark.parametrize('heads', [1, 2])
@pytest.mark.parametrize('normalize', ['softmax', 'sigmoid'])
def test_a_mask_scales_each_message_after_the_normalisation(score, heads, normalize):
    torch.manual_seed(0)
    pos, edge_index = _cloud()
    conv = LGAConv(5, 3, edge_dim=3, heads=heads, score=score, edge_encoder='mlp',
                   att_channels=4, normalize=normalize).to(DT)
    x = torch.randn(pos.size(0), 5, dtype=DT)
    edge_attr = pos[edge_index[0]] - pos[edge_index[1]]
    mask = torch.rand(edge_index.size(1), dtype=DT)
    set_masks(conv, mask, edge_index, apply_sigmoid=False)
    try:
        out, (_, alpha) = conv(x, edge_index, edge_attr, return_attention_weights=True)
    finally:
        clear_masks(conv)
    with torch.no_grad():
        ref, ref_alpha = brute_force(conv, x, x, edge_index, edge_attr, edge_mask=mask)
        unmasked, _ = brute_force(conv, x, x, edge_index, edge_attr)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(alpha, ref_alpha, rtol=1e-10, atol=1e-12)  # weights unmasked
    assert not torch.allclose(out, unmasked)                              # the mask acted
    torch.testing.assert_close(conv(x, edge_index, edge_attr), unmasked, rtol=1e-10,
                               atol=1e-12)                                # and is gone


class PointNet(torch.nn.Module):
    """A node classifier with an LGA stack on a point cloud's kNN edges."""

    def __init__(self, pos, num_layers):
        super().__init__()
        self.pos = pos
        self.lga = LGA.for_points(6, num_layers=num_layers, fuse=True)
        self.head = torch.nn.Linear(6, 3)

    def forward(self, x, edge_index):
        return self.head(self.lga(x, edge_index, pos=self.pos))


@pytest.mark.parametrize('num_layers', [1, 2, 3])
def test_gnnexplainer_marks_exactly_the_edges_within_reach(num_layers):
    """Node 0's prediction depends on edge j -> i iff i reaches node 0 within L - 1 more
    hops: GNNExplainer's mask is nonzero on exactly those edges (PyG keeps an edge when its
    mask has a gradient), so a mask that did not reach LGA's messages would mark none."""
    torch.manual_seed(1)
    pos, edge_index = _cloud(n=60, k=5, seed=2)
    model = PointNet(pos.float(), num_layers)
    with torch.no_grad():   # leave the identity start of fuse=True, as training would
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(pos.size(0), 6)
    explainer = Explainer(model, algorithm=GNNExplainer(epochs=2), explanation_type='model',
                          node_mask_type=None, edge_mask_type='object',
                          model_config=dict(mode='multiclass_classification',
                                            task_level='node', return_type='raw'))
    explanation = explainer(x, edge_index, index=0)
    hops = dict(nx.single_target_shortest_path_length(nx.DiGraph(edge_index.t().tolist()), 0))
    assert num_layers in hops.values()      # some edges lie one hop beyond the reach
    expected = torch.tensor([hops.get(int(i), num_layers) < num_layers for i in edge_index[1]])
    marked = explanation.edge_mask > 0
    assert torch.equal(marked, expected), (int(marked.sum()), int(expected.sum()))


def test_a_table_or_a_grid_refuse_explain_mode():
    torch.manual_seed(0)
    pos, edge_index = _cloud()
    x = torch.randn(pos.size(0), 6, dtype=DT)
    lga = LGA.for_points(6, num_layers=2).to(DT)
    set_masks(lga, torch.rand(edge_index.size(1), dtype=DT), edge_index)
    try:
        lga(x, edge_index, pos=pos)                                      # edges: fine
        with pytest.raises(ValueError, match=r"explain mode.*neighbour table \('neighbors'\)"
                                             r".*'edge_index'.*conv\.explain = False"):
            lga(x, neighbors=nearest_neighbors(pos, 4, loop=True)[0], pos=pos)
        grid_lga = LGA(6, num_layers=1).to(DT)
        set_masks(grid_lga, torch.rand(10, dtype=DT), torch.zeros(2, 10, dtype=torch.long))
        with pytest.raises(ValueError, match=r"explain mode.*a grid \('grid'\)"):
            grid_lga(torch.randn(1, 12, 6, dtype=DT), grid=(3, 4))
    finally:
        clear_masks(lga)
    lga(x, neighbors=nearest_neighbors(pos, 4, loop=True)[0], pos=pos)  # cleared: runs again


class ImageNet(torch.nn.Module):
    """Pixels as graph nodes: a GCN on the given edges, then LGA2d on the map."""

    def __init__(self, height, width):
        super().__init__()
        self.size = (height, width)
        self.gcn = GCNConv(4, 4)
        self.lga = LGA2d(4, num_layers=2, fuse=True, output_init='default')

    def forward(self, x, edge_index):
        h = self.gcn(x, edge_index).t().reshape(1, 4, *self.size)
        return self.lga(h).reshape(4, -1).t()


def test_lga2d_stays_out_of_the_explanation():
    torch.manual_seed(0)
    model = ImageNet(3, 4)
    assert all(conv.explain is False for conv in model.lga.convs)
    x = torch.randn(12, 4)
    edge_index = torch.randint(0, 12, (2, 30))
    image = torch.randn(1, 4, 3, 4)
    before = model.lga(image)
    set_masks(model, torch.rand(30), edge_index)
    try:
        assert model.gcn.explain is True
        assert all(conv.explain is False for conv in model.lga.convs)
        torch.testing.assert_close(model.lga(image), before, rtol=0, atol=0)
    finally:
        clear_masks(model)
    explainer = Explainer(model, algorithm=GNNExplainer(epochs=2), explanation_type='model',
                          node_mask_type=None, edge_mask_type='object',
                          model_config=dict(mode='regression', task_level='node',
                                            return_type='raw'))
    explanation = explainer(x, edge_index, index=0)
    assert explanation.edge_mask.shape == (30,)
    assert bool(torch.isfinite(explanation.edge_mask).all())
    assert all(conv.explain is False for conv in model.lga.convs)

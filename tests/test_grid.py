import pytest
import torch
from torch_geometric.utils import grid as pyg_grid
from torch_geometric.utils import is_undirected

import graphs


def edge_set(edge_index):
    return set(map(tuple, edge_index.t().tolist()))


@pytest.mark.parametrize('h,w', [(1, 1), (1, 6), (5, 1), (4, 7), (9, 9)])
def test_default_grid_equals_pyg_grid(h, w):
    g = graphs.grid_graph(h, w)
    ref, _ = pyg_grid(h, w)
    assert edge_set(g.edge_index) == edge_set(ref)
    assert g.edge_index.size(1) == 9 * h * w - 6 * (h + w) + 4
    assert g.num_nodes == h * w


@pytest.mark.parametrize('connectivity', [4, 8])
@pytest.mark.parametrize('dilation', [1, 2, 3])
@pytest.mark.parametrize('self_loops', [True, False])
def test_grid_against_pixel_loop(connectivity, dilation, self_loops):
    h, w = 6, 5
    g = graphs.grid_graph(h, w, connectivity=connectivity, dilation=dilation,
                          self_loops=self_loops)
    expected = set()
    for r in range(h):
        for c in range(w):
            for dr in (-dilation, 0, dilation):
                for dc in (-dilation, 0, dilation):
                    if connectivity == 4 and dr and dc:
                        continue
                    if not self_loops and dr == 0 and dc == 0:
                        continue
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < h and 0 <= cc < w:
                        expected.add((rr * w + cc, r * w + c))
    assert edge_set(g.edge_index) == expected
    assert g.edge_index.size(1) == len(expected)  # no duplicates
    assert g.edge_index.size(1) == graphs.grid_edge_count(h, w, connectivity, dilation,
                                                          self_loops)
    assert is_undirected(g.edge_index, num_nodes=h * w)


def test_grid_sorted_by_target_then_source():
    g = graphs.grid_graph(5, 6)
    src, dst = g.edge_index
    key = dst * 30 + src
    assert torch.equal(key, key.sort().values)


def test_edge_attr_names_the_offset():
    h, w = 4, 5
    g = graphs.grid_graph(h, w)
    stencil = graphs.grid_stencil()
    assert stencil.tolist() == [[-1, -1], [0, -1], [1, -1], [-1, 0], [0, 0], [1, 0],
                                [-1, 1], [0, 1], [1, 1]]
    src, dst = g.edge_index
    offset = g.pos[src] - g.pos[dst]
    assert torch.equal(offset, g.edge_offset)
    assert torch.equal(g.edge_attr.sum(1), torch.ones(src.numel()))
    direction = g.edge_attr.argmax(1)
    assert torch.equal(stencil[direction].float(), offset)
    # pos is (col, row) of row-major nodes
    assert g.pos[7].tolist() == [2.0, 1.0]
    assert g.grid_size.tolist() == [[h, w]]


def test_grid_is_cached_but_returns_fresh_data():
    a = graphs.grid_graph(8, 8)
    b = graphs.grid_graph(8, 8)
    assert a is not b
    assert a.edge_index.data_ptr() == b.edge_index.data_ptr()


@pytest.mark.parametrize('kwargs,error', [
    (dict(height=0, width=3), ValueError),
    (dict(height=2.0, width=3), TypeError),
    (dict(height=2, width=3, connectivity=6), ValueError),
    (dict(height=2, width=3, dilation=0), ValueError),
    (dict(height=2, width=3, self_loops=1), TypeError),
])
def test_grid_bad_input(kwargs, error):
    h, w = kwargs.pop('height'), kwargs.pop('width')
    with pytest.raises(error, match='height|width|connectivity|dilation|self_loops'):
        graphs.grid_graph(h, w, **kwargs)

"""Figures a person wants to see after training: predictions, attention, assignments.

Every figure names its classes in a legend, puts a colour bar next to every map of
values and titles each model by the name the results table uses.
"""
from __future__ import annotations

import os

import matplotlib
import torch

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

import graphs  # noqa: E402
from datasets import FASHION_CLASSES, Cortex  # noqa: E402

#: Collage classes: background (dark grey) then the ten Fashion-MNIST classes (tab10).
COLLAGE_NAMES = ('background',) + FASHION_CLASSES
COLLAGE_COLOURS = ['#303030'] + [plt.get_cmap('tab10')(i) for i in range(10)]
#: Cortex classes, with the medial wall (label -1: no Mesulam class, ignored) first.
CORTEX_NAMES = ('medial wall (no class; ignored in training and scoring)',) \
    + Cortex.MESULAM_CLASSES
CORTEX_COLOURS = ['#d9d9d9', '#e41a1c', '#377eb8', '#4daf4a', '#ff7f00']


def _save(fig, path: str) -> str:
    fig.savefig(path, dpi=100, bbox_inches='tight')
    plt.close(fig)
    return path


def _legend(fig, names, colours, ncol: int, room: float = 0.55) -> None:
    """A class legend in ``room`` inches below the axes."""
    bottom = room / fig.get_figheight()
    fig.subplots_adjust(bottom=bottom)
    handles = [Patch(facecolor=c, edgecolor='black', linewidth=0.3, label=n)
               for n, c in zip(names, colours)]
    fig.legend(handles=handles, loc='upper center', ncol=ncol, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, bottom))


@torch.no_grad()
def collage_predictions(models: dict, test, out: str, count: int = 3) -> str:
    """Test collages, their ground truth, and each model's prediction, with a class legend.

    ``models`` maps the table's display names to trained models.
    """
    images, labels = test
    names = list(models)
    cmap = ListedColormap(COLLAGE_COLOURS)
    shown = dict(cmap=cmap, vmin=-0.5, vmax=len(COLLAGE_COLOURS) - 0.5, interpolation='nearest')
    cols = 2 + len(names)
    fig, axes = plt.subplots(count, cols, figsize=(2.1 * cols, 2.1 * count + 0.8),
                             squeeze=False)
    for row in range(count):
        axes[row, 0].imshow(images[row, 0], cmap='gray', vmin=0, vmax=1)
        axes[row, 1].imshow(labels[row], **shown)
        for col, name in enumerate(names):
            models[name].eval()
            pred = models[name](images[row:row + 1]).argmax(1)[0]
            axes[row, 2 + col].imshow(pred, **shown)
    for col, title in enumerate(['test collage (input)', 'ground truth'] + names):
        axes[0, col].set_title(title, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    _legend(fig, COLLAGE_NAMES, COLLAGE_COLOURS, ncol=6)
    return _save(fig, os.path.join(out, 'collage_predictions.png'))


def attention_footprint(maps, offsets: torch.Tensor, pixel) -> torch.Tensor:
    """How much each pixel feeds ``pixel`` through the stacked attention weights alone.

    Starting from a one-hot map at ``pixel`` after the last layer, each layer
    (last to first) hands every pixel's weight to its neighbours in proportion to
    its attention weights: the result is the product of the layers' attention
    matrices, read at ``pixel``'s row.
    """
    h, w = maps[0].shape[-2:]
    weight = torch.zeros(h, w)
    weight[pixel] = 1.0
    for alpha in reversed(maps):                       # alpha: (S, H, W)
        spread = torch.zeros(h + 2, w + 2)
        for t, (dx, dy) in enumerate(offsets.tolist()):
            spread[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] += alpha[t] * weight
        weight = spread[1:-1, 1:-1]
    return weight


def _item_cells(label: torch.Tensor, grid: int, count: int):
    """Up to ``count`` feature-map cells whose centre pixel lies on different items."""
    step = label.size(-1) // grid
    centres = label[step // 2::step, step // 2::step]
    cells, seen = [], set()
    for r, c in (centres > 0).nonzero().tolist():
        if int(centres[r, c]) not in seen:
            seen.add(int(centres[r, c]))
            cells.append((r, c))
    return cells[:count] or [(grid // 2, grid // 2)]


@torch.no_grad()
def lga_attention(model, test, out: str, index: int | None = None, count: int = 3) -> str:
    """Where pixels on items of the LGA model's feature map draw information from.

    ``index``: the test collage; by default the first of the first 32 with the most items.
    """
    model.eval()
    if index is None:
        index = max(range(min(32, test[1].size(0))),
                    key=lambda i: (len(test[1][i].unique()), -i))
    images, labels = test[0][index:index + 1], test[1][index]
    features = model.encode(images)[-1]
    _, maps = model.context(features, return_attention_weights=True)
    # image 0; maps are (S, H, W), or (heads, S, H, W) where LGA2d returns heads: average them
    maps = [m[0].mean(0) if m.dim() == 5 else m[0] for m in maps]
    offsets = torch.tensor(model.context.offsets)
    size, grid = images.size(-1), features.size(-1)
    cells = _item_cells(labels, grid, count)
    feet = [attention_footprint(maps, offsets, cell) for cell in cells]
    vmax = max(float(foot.max()) for foot in feet)     # one colour scale for all panels
    fig, axes = plt.subplots(1, 1 + len(cells), figsize=(2.8 * (1 + len(cells)) + 1.0, 3.3))
    axes[0].imshow(images[0, 0], cmap='gray', vmin=0, vmax=1)
    axes[0].set_title('test collage (input)', fontsize=9)
    extent = (0, size, size, 0)
    scale = size / grid
    for ax, cell, foot in zip(axes[1:], cells, feet):
        ax.imshow(images[0, 0], cmap='gray', vmin=0, vmax=1, extent=extent)
        shown = ax.imshow(foot, cmap='magma', alpha=0.65, extent=extent, vmin=0, vmax=vmax,
                          interpolation='nearest')
        ax.scatter([(cell[1] + 0.5) * scale], [(cell[0] + 0.5) * scale], c='cyan', s=25,
                   marker='x')
        name = COLLAGE_NAMES[int(labels[int((cell[0] + 0.5) * scale),
                                        int((cell[1] + 0.5) * scale)])]
        ax.set_title(f'into the cell at x ({name})', fontsize=9)
    fig.colorbar(shown, ax=list(axes), fraction=0.025, pad=0.02,
                 label="share of the marked cell's input (each map sums to 1)")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f'LGA, 4 layers on the {grid}x{grid} feature map: how much each cell feeds '
                 'the marked cell (product of the layers\' attention)', fontsize=9)
    return _save(fig, os.path.join(out, 'lga_attention.png'))


@torch.no_grad()
def latent_assignments(model, test, out: str, count: int = 64) -> str:
    """Which latent nodes of LatentGNN read which classes, averaged over test collages.

    For each pixel of the context block's feature map, its visible-to-latent weights
    are normalised to shares over the latent nodes; the heat map shows the mean share
    over all feature-map cells of each class (the class of the cell's centre pixel).
    """
    model.eval()
    images, labels = test[0][:count], test[1][:count]
    features = model.encode(images)[-1]
    _, assignments = model.context(features, return_assignments=True)
    first = assignments[0]
    b, _, h, w = features.shape
    visible, latent = first.v2l_edge_index
    d = int(latent.max()) + 1 if b == 1 else int(latent.max()) // b + 1
    share = torch.zeros(b * h * w, d)
    share[visible, latent % d] = first.v2l_weight
    share = share / share.sum(1, keepdim=True).clamp_min(1e-12)
    step = labels.size(-1) // h
    cls = labels[:, step // 2::step, step // 2::step].reshape(-1)
    table = torch.zeros(len(COLLAGE_NAMES), d)
    present = []
    for c in range(len(COLLAGE_NAMES)):
        if bool((cls == c).any()):
            table[c] = share[cls == c].mean(0)
            present.append(c)
    # Columns sorted from the nodes that read background most (left) to those that
    # read items most (right), so the split, if any, shows at a glance.
    items = table[[c for c in present if c > 0]].mean(0) if len(present) > 1 else table[0]
    order = (table[0] - items).argsort(descending=True)
    table = table[present][:, order]
    fig, ax = plt.subplots(figsize=(0.28 * d + 3.2, 0.32 * len(present) + 1.8))
    shown = ax.imshow(table, cmap='viridis', aspect='auto', vmin=0)
    ax.set_yticks(range(len(present)), [COLLAGE_NAMES[c] for c in present], fontsize=8)
    ax.set_xticks(range(d), [str(i) for i in order.tolist()], fontsize=6)
    ax.set_xlabel('latent node (sorted: reads background more <-> reads items more)',
                  fontsize=9)
    fig.colorbar(shown, ax=ax, label='mean share of a cell\'s weight (rows sum to 1)')
    ax.set_title(f'LatentGNN: which latent nodes read which class ({count} test collages)',
                 fontsize=9)
    return _save(fig, os.path.join(out, 'latentgnn_assignments.png'))


def _cortex_view(right, task):
    g = torch.Generator().manual_seed(7)
    keep = torch.randperm(right.pos.size(0), generator=g)[:task.num_points]
    return keep, task.view(right, keep, g), right.labels[keep]


@torch.no_grad()
def cortex_predictions(models: dict, right, out: str, task) -> str:
    """Mirrored right hemisphere (lateral view): atlas labels and each model's prediction
    at every vertex (predicted as in the scores, by ``task``, a
    :class:`segment_cortex.CortexTask`: views in random poses).

    ``models`` maps the table's display names to trained models.
    """
    labels = right.labels
    pts = right.pos
    order = pts[:, 0].argsort(descending=True)     # draw the lateral side (small x) last
    names = list(models)
    cmap = ListedColormap(CORTEX_COLOURS)
    fig, axes = plt.subplots(1, 1 + len(names), figsize=(3.0 * (1 + len(names)), 3.4),
                             squeeze=False)
    axes = axes[0]

    def draw(ax, values, title):
        ax.scatter(-pts[order, 1], pts[order, 2], c=values[order] + 1, s=2.0, cmap=cmap,
                   vmin=-0.5, vmax=len(CORTEX_COLOURS) - 0.5, linewidths=0)
        ax.set_title(title, fontsize=9)
        ax.set_aspect('equal')
        ax.axis('off')

    draw(axes[0], labels, 'Mesulam atlas (test)')
    for ax, name in zip(axes[1:], names):
        pred = task.predict(models[name], right).argmax(1)
        pred = torch.where(labels < 0, torch.full_like(pred, -1), pred)
        draw(ax, pred, name)
    _legend(fig, CORTEX_NAMES, CORTEX_COLOURS, ncol=3)
    return _save(fig, os.path.join(out, 'cortex_predictions.png'))


@torch.no_grad()
def cortex_attention_graph(model, right, out: str, task) -> str:
    """A patch of the kNN graph (networkx), every edge coloured by its LGA attention weight,
    in a view posed by ``task`` (a :class:`segment_cortex.CortexTask`)."""
    import networkx as nx
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    keep, data, labels = _cortex_view(right, task)
    k = task.k
    model.eval()
    h = model.conv2(model.conv1(data.pos, data.edge_index), data.edge_index)
    _, attention = model.context(h, data.edge_index, data.edge_attr,
                                 return_attention_weights=True)
    edge_index, alpha = attention[-1]
    alpha = alpha.reshape(alpha.size(0), -1).mean(1)    # over heads, if any
    G = graphs.to_networkx(data, edge_values={'alpha': (edge_index, alpha)})
    # A patch on a class border, so the weights can show whether they follow it.
    src, dst = data.edge_index
    border = ((labels[src] != labels[dst]) & (labels[src] >= 0) & (labels[dst] >= 0))
    centre = int(dst[border][0]) if bool(border.any()) else 0
    region = list(nx.ego_graph(G.reverse(copy=False), centre, radius=1).nodes)
    sub = G.subgraph(region)
    edges = [(u, v) for u, v in sub.edges if u != v]
    values = torch.tensor([sub.edges[e]['alpha'] for e in edges])
    order = values.argsort()                       # strongest edges drawn last, on top
    edges, values = [edges[i] for i in order.tolist()], values[order]
    # Lay the patch flat: its two principal directions.
    pts = data.pos[region]
    centred = pts - pts.mean(0)
    axes2 = torch.linalg.svd(centred, full_matrices=False).Vh[:2]
    flat = centred @ axes2.t()
    layout = {n: (float(flat[i, 0]), float(flat[i, 1])) for i, n in enumerate(region)}
    fig, ax = plt.subplots(figsize=(6.2, 5.2))
    low, high = float(values.min()), float(values.max())
    norm = Normalize(vmin=low, vmax=high)
    nx.draw_networkx_edges(sub, layout, edgelist=edges, ax=ax, width=2.0, arrows=True,
                           arrowsize=9, edge_color=values.tolist(),
                           edge_cmap=plt.get_cmap('plasma'),
                           edge_vmin=low, edge_vmax=high, alpha=0.9,
                           node_size=70)
    colours = [CORTEX_COLOURS[int(labels[n]) + 1] for n in region]
    nx.draw_networkx_nodes(sub, layout, nodelist=region, ax=ax, node_size=70,
                           node_color=colours, edgecolors=['black' if n == centre else 'none'
                                                           for n in region], linewidths=1.5)
    fig.colorbar(ScalarMappable(norm=norm, cmap='plasma'), ax=ax,
                 label=f'attention weight, last LGA layer (uniform = 1/{k} = {1 / k:.3f})')
    ax.set_title(f'LGA on the kNN graph (k = {k}, self-loop included): the outlined test '
                 f'vertex, its {k - 1}\nnearest neighbours and every edge among them, coloured '
                 'by attention', fontsize=9)
    ax.axis('off')
    present = sorted({int(labels[n]) + 1 for n in region})
    handles = [Patch(facecolor=CORTEX_COLOURS[c], label=CORTEX_NAMES[c].split(' (')[0])
               for c in present]
    ax.legend(handles=handles, loc='lower left', fontsize=8, title='vertex class (atlas)',
              title_fontsize=8)
    return _save(fig, os.path.join(out, 'cortex_lga_attention.png'))

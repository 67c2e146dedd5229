"""Figures a person wants to see after training: predictions, attention, assignments."""
from __future__ import annotations

import os

import matplotlib
import torch

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

import graphs  # noqa: E402


def _save(fig, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


@torch.no_grad()
def collage_predictions(models: dict, test, out: str, count: int = 3) -> str:
    """Test collages, their ground truth, and each model's prediction."""
    images, labels = test
    names = list(models)
    fig, axes = plt.subplots(count, 2 + len(names), figsize=(2.2 * (2 + len(names)), 2.2 * count))
    for row in range(count):
        axes[row, 0].imshow(images[row, 0], cmap='gray')
        axes[row, 1].imshow(labels[row], cmap='tab20', vmin=0, vmax=19, interpolation='nearest')
        for col, name in enumerate(names):
            models[name].eval()
            pred = models[name](images[row:row + 1]).argmax(1)[0]
            axes[row, 2 + col].imshow(pred, cmap='tab20', vmin=0, vmax=19,
                                      interpolation='nearest')
            if row == 0:
                axes[row, 2 + col].set_title(name, fontsize=9)
    axes[0, 0].set_title('test collage', fontsize=9)
    axes[0, 1].set_title('ground truth', fontsize=9)
    for ax in axes.flat:
        ax.axis('off')
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


@torch.no_grad()
def lga_attention(model, test, out: str, pixels=((12, 12), (20, 8), (6, 24))) -> str:
    """Where chosen pixels of the LGA model's feature map draw information from."""
    model.eval()
    images = test[0][:1]
    features = model.encoder(images)
    _, maps = model.context(features, return_attention_weights=True)
    maps = [m[0, 0] for m in maps]                     # image 0, head 0: (S, H, W)
    offsets = model.context.offsets
    fig, axes = plt.subplots(1, 1 + len(pixels), figsize=(2.6 * (1 + len(pixels)), 2.8))
    axes[0].imshow(images[0, 0], cmap='gray')
    axes[0].set_title('input', fontsize=9)
    scale = images.size(-1) / features.size(-1)
    for ax, pixel in zip(axes[1:], pixels):
        foot = attention_footprint(maps, torch.tensor(offsets), pixel)
        ax.imshow(images[0, 0], cmap='gray', extent=(0, images.size(-1), images.size(-2), 0))
        ax.imshow(foot, cmap='magma', alpha=0.6,
                  extent=(0, images.size(-1), images.size(-2), 0))
        ax.scatter([(pixel[1] + 0.5) * scale], [(pixel[0] + 0.5) * scale], c='cyan', s=15)
        ax.set_title(f'LGA footprint of {pixel}', fontsize=9)
    for ax in axes:
        ax.axis('off')
    return _save(fig, os.path.join(out, 'lga_attention.png'))


@torch.no_grad()
def latent_assignments(model, test, out: str, latents: int = 6) -> str:
    """Which pixels feed which latent node (visible-to-latent weights of LatentGNN)."""
    model.eval()
    images = test[0][:1]
    features = model.encoder(images)
    _, assignments = model.context(features, return_assignments=True)
    first = assignments[0]
    h, w = features.shape[-2:]
    visible, latent = first.v2l_edge_index
    d = int(latent.max()) + 1
    dense = torch.zeros(d, h * w)
    dense[latent, visible] = first.v2l_weight
    strongest = dense.sum(1).argsort(descending=True)[:latents]
    fig, axes = plt.subplots(1, 1 + latents, figsize=(2.2 * (1 + latents), 2.5))
    axes[0].imshow(images[0, 0], cmap='gray')
    axes[0].set_title('input', fontsize=9)
    for ax, k in zip(axes[1:], strongest.tolist()):
        ax.imshow(dense[k].view(h, w), cmap='viridis')
        ax.set_title(f'latent node {k}', fontsize=9)
    for ax in axes:
        ax.axis('off')
    return _save(fig, os.path.join(out, 'latentgnn_assignments.png'))


@torch.no_grad()
def cortex_predictions(models: dict, right, out: str, k: int, num_points: int) -> str:
    """Mirrored right hemisphere: atlas labels and each model's prediction."""
    from segment_cortex import view
    g = torch.Generator().manual_seed(7)
    keep = torch.randperm(right.pos.size(0), generator=g)[:num_points]
    data, labels = view(right, g, keep, k)
    pts = right.pos[keep]
    names = list(models)
    fig, axes = plt.subplots(1, 1 + len(names), figsize=(3.2 * (1 + len(names)), 3))
    axes[0].scatter(pts[:, 1], pts[:, 2], c=labels, s=0.5, cmap='tab10', vmin=-1, vmax=8)
    axes[0].set_title('atlas (test)', fontsize=9)
    for ax, name in zip(axes[1:], names):
        models[name].eval()
        pred = models[name](data.pos, data.edge_index, data.edge_attr).argmax(1)
        pred = torch.where(labels < 0, torch.full_like(pred, -1), pred)
        ax.scatter(pts[:, 1], pts[:, 2], c=pred, s=0.5, cmap='tab10', vmin=-1, vmax=8)
        ax.set_title(name, fontsize=9)
    for ax in axes:
        ax.axis('off')
    return _save(fig, os.path.join(out, 'cortex_predictions.png'))


@torch.no_grad()
def cortex_attention_graph(model, right, out: str, k: int, num_points: int) -> str:
    """A small region of the kNN graph in networkx, edges drawn by LGA attention."""
    import networkx as nx
    from segment_cortex import view
    g = torch.Generator().manual_seed(7)
    keep = torch.randperm(right.pos.size(0), generator=g)[:num_points]
    data, _ = view(right, g, keep, k)
    model.eval()
    h = model.conv2(model.conv1(data.pos, data.edge_index), data.edge_index)
    _, attention = model.context(h, data.edge_index, data.edge_attr,
                                 return_attention_weights=True)
    edge_index, alpha = attention[-1]
    G = graphs.to_networkx(data, edge_values={"alpha": (edge_index, alpha[:, 0])})  # head 0
    centre = 0
    region = nx.ego_graph(G.reverse(copy=False), centre, radius=1).nodes
    sub = G.subgraph(region)
    edges = [(u, v) for u, v in sub.edges if v == centre]
    widths = [6 * sub.edges[e]['alpha'] for e in edges]
    fig, ax = plt.subplots(figsize=(4, 4))
    layout = {n: (p[0], p[1]) for n, p in sub.nodes(data='pos')}
    nx.draw_networkx_nodes(sub, layout, ax=ax, node_size=30,
                           node_color=['red' if n == centre else 'grey' for n in sub.nodes])
    nx.draw_networkx_edges(sub, layout, edgelist=edges, width=widths, ax=ax, arrows=True)
    ax.set_title(f'last LGA layer: attention into vertex {centre}', fontsize=9)
    ax.axis('off')
    return _save(fig, os.path.join(out, 'cortex_lga_attention.png'))

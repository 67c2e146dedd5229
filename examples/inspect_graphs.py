"""Build and inspect graphs from a real photo and a real point cloud.

Run it with ``./tasks.sh demo`` (which installs what it needs), or directly:

    python examples/inspect_graphs.py --out outputs/graphs

1. A texture photo from scikit-image becomes a small feature map, then a PyG
   batch of grid graphs; we check it converts back exactly, look at it in
   networkx, and draw the receptive field of stacked local layers.
2. The left cortical hemisphere (32,492 vertices) becomes a kNN point-cloud
   graph; we measure how often an edge joins two vertices of the same atlas
   class, and draw one vertex's neighbourhood through networkx.
"""
from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

import graphs
from datasets import MissingDataError, fail_with_hint, load_cortex, load_texture


def image_part(out: str) -> None:
    photo = load_texture('brick')                                  # (512, 512) in [0, 1]
    # A stand-in for a CNN feature map: 16x16 average pooling -> (1, 1, 32, 32).
    fmap = F.avg_pool2d(photo[None, None], 16)
    batch = graphs.feature_map_to_batch(fmap)
    assert torch.equal(graphs.batch_to_feature_map(batch), fmap)
    print(f"[image] brick photo {tuple(photo.shape)} -> feature map {tuple(fmap.shape)} -> "
          f"{batch.num_nodes} nodes, {batch.num_edges} edges "
          f"(9HW - 6(H+W) + 4 = {9 * 32 * 32 - 6 * 64 + 4})")

    G = graphs.to_networkx(batch.get_example(0), node_attrs=['x'])
    degrees = torch.tensor([d for _, d in G.in_degree()])
    print(f"[image] networkx: {G.number_of_nodes()} nodes, in-degree min/max "
          f"{int(degrees.min())}/{int(degrees.max())} (corner pixels have 4 with self-loop)")
    for layers in (1, 2, 4):
        field = graphs.receptive_field(32, 32, (16, 16), layers)
        print(f"[image] receptive field of pixel (16, 16) after {layers} layer(s): "
              f"{int(field.sum())} pixels ({2 * layers + 1}x{2 * layers + 1})")

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import networkx as nx
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    axes[0].imshow(photo, cmap='gray')
    axes[0].set_title('brick photo (skimage)')
    axes[1].imshow(graphs.receptive_field(32, 32, (16, 16), 3), cmap='Blues')
    axes[1].imshow(fmap[0, 0], cmap='gray', alpha=0.5)
    axes[1].set_title('pixels reaching (16,16) in 3 layers')
    crop = graphs.grid_graph(5, 5)
    Gc = graphs.to_networkx(crop, remove_self_loops=True)
    nx.draw(Gc, pos={n: (p[0], -p[1]) for n, p in Gc.nodes(data='pos')}, ax=axes[2],
            node_size=80, arrows=False, width=0.6)
    axes[2].set_title('5x5 grid graph (8-neighbour)')
    fig.tight_layout()
    path = os.path.join(out, 'image_graph.png')
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"[image] figure: {path}")


def point_cloud_part(out: str, k: int) -> None:
    cortex = load_cortex('left')
    start = time.perf_counter()
    data = graphs.point_cloud_to_data(cortex.pos, k=k)
    seconds = time.perf_counter() - start
    print(f"[cloud] left cortex: {data.num_nodes} vertices -> kNN graph (k={k}) with "
          f"{data.num_edges} edges in {seconds * 1000:.0f} ms")
    src, dst = data.edge_index
    labelled = (cortex.labels[src] >= 0) & (cortex.labels[dst] >= 0)
    same = (cortex.labels[src] == cortex.labels[dst])[labelled].float().mean()
    print(f"[cloud] {100 * float(same):.1f}% of labelled kNN edges join two vertices of the "
          f"same Mesulam class (the atlas is spatially smooth)")
    lengths = data.edge_attr.norm(dim=1)
    print(f"[cloud] edge length: median {float(lengths.median()):.2f} mm, "
          f"max {float(lengths.max()):.2f} mm")

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import networkx as nx
    G = graphs.to_networkx(data)
    centre = 1000
    region = nx.ego_graph(G.reverse(copy=False), centre, radius=2).nodes
    sub = G.subgraph(region)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    pts = cortex.pos
    axes[0].scatter(pts[:, 1], pts[:, 2], c=cortex.labels, s=0.2, cmap='tab10')
    axes[0].scatter(pts[centre, 1], pts[centre, 2], c='red', s=30)
    axes[0].set_title('left cortex, Mesulam classes (y-z view)')
    nx.draw(sub, pos={n: (p[1], p[2]) for n, p in sub.nodes(data='pos')}, ax=axes[1],
            node_size=25, arrows=False, width=0.4,
            node_color=['red' if n == centre else 'grey' for n in sub.nodes])
    axes[1].set_title(f'2-hop kNN neighbourhood of vertex {centre}')
    fig.tight_layout()
    path = os.path.join(out, 'cortex_graph.png')
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"[cloud] figure: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='outputs/graphs', help='folder for the figures')
    parser.add_argument('--k', type=int, default=16, help='neighbours per cortex vertex')
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    try:
        image_part(args.out)
        point_cloud_part(args.out, args.k)
    except MissingDataError as error:
        fail_with_hint(error)


if __name__ == '__main__':
    main()

"""graphs: turn feature maps and point clouds into PyG graphs, and inspect them.

This package builds graphs and knows nothing of layers; :mod:`graphattn` builds
on it.
"""
from .bipartite import knn, radius
from .feature_map import (batch_to_feature_map, feature_map_to_batch, feature_map_to_nodes,
                          nodes_to_feature_map)
from .grid import grid_edge_count, grid_edges, grid_graph, grid_stencil
from .latent import LatentGraph, latent_edge_index, latent_graph, latent_to_networkx
from .neighbors import available_engines, nearest_neighbors
from .networkx import align_edge_values, from_networkx, receptive_field, to_networkx
from .point_cloud import point_cloud_to_data, relative_positions
from .point_graphs import knn_graph, neighbors_to_edge_index, radius_graph, to_neighbor_table
from .pyg_backend import use_as_pyg_backend

__all__ = [
    'grid_graph', 'grid_stencil', 'grid_edge_count', 'grid_edges',
    'feature_map_to_batch', 'batch_to_feature_map', 'feature_map_to_nodes',
    'nodes_to_feature_map',
    'knn_graph', 'radius_graph', 'knn', 'radius', 'use_as_pyg_backend',
    'nearest_neighbors', 'neighbors_to_edge_index',
    'to_neighbor_table',
    'available_engines', 'point_cloud_to_data', 'relative_positions',
    'to_networkx', 'from_networkx', 'align_edge_values', 'receptive_field',
    'latent_graph', 'latent_edge_index', 'LatentGraph', 'latent_to_networkx',
]

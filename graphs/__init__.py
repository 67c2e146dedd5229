"""graphs: turn feature maps and point clouds into PyG graphs, and inspect them.

This package builds graphs and knows nothing of layers; :mod:`graphattn` builds
on it.
"""
from .augment import random_pose, random_rotate, random_rotation
from .bipartite import knn, radius
from .collate import collate_clouds
from .crop_inference import predict_by_crops
from .feature_map import (batch_to_feature_map, feature_map_to_batch, feature_map_to_nodes,
                          nodes_to_feature_map)
from .grid import grid_edge_count, grid_edges, grid_graph, grid_stencil
from .latent import LatentGraph, latent_edge_index, latent_graph, latent_to_networkx
from .metrics import confusion_matrix, per_class_iou
from .neighbors import available_engines, nearest_neighbors
from .networkx import align_edge_values, from_networkx, receptive_field, to_networkx
from .point_cloud import point_cloud_to_data, relative_positions
from .point_graphs import knn_graph, neighbors_to_edge_index, radius_graph, to_neighbor_table
from .pyg_backend import use_as_pyg_backend
from .sampling import covering_crops, crop, random_crops, resample, split_crop

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
    # point-cloud toolkit: crops, augmentation, batching, crop inference, scores
    'crop', 'random_crops', 'covering_crops', 'resample', 'split_crop', 'random_rotation',
    'random_rotate', 'random_pose', 'collate_clouds', 'predict_by_crops', 'confusion_matrix',
    'per_class_iou',
]

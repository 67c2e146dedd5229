"""kNN graph construction: graphs.knn_graph against scipy's cKDTree called directly
and against brute force (chunked exact distances + topk).

Brute force is O(N^2): above ``--brute-max`` points it is timed on a random
sample of queries against the full cloud and scaled up to all N queries (the
table marks such rows 'extrapolated').
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

import graphs
from common import median_time, print_table, write_json


def scipy_direct(pos: np.ndarray, k: int):
    # Imported here: the device check imports this module for brute_force alone, on
    # images that may lack scipy.
    from scipy.spatial import cKDTree
    tree = cKDTree(pos)
    return tree.query(pos, k=k + 1, workers=-1)


def brute_force(pos: torch.Tensor, queries: torch.Tensor, k: int, block: int = 1 << 24):
    rows = max(1, block // pos.size(0))
    out = []
    for start in range(0, queries.size(0), rows):
        d = torch.cdist(queries[start:start + rows], pos)
        out.append(d.topk(k + 1, largest=False).indices)
    return torch.cat(out)


def run(sizes, k: int, brute_max: int, repeats: int, out_dir: str):
    rows = []
    for n in sizes:
        g = torch.Generator().manual_seed(n)
        pos = torch.rand(n, 3, generator=g)
        pos_np = pos.numpy().astype(np.float64)
        ours = median_time(lambda: graphs.knn_graph(pos, k), repeats=repeats)
        direct = median_time(lambda: scipy_direct(pos_np, k), repeats=repeats)
        ours_torch = None
        if n <= brute_max:
            ours_torch = median_time(lambda: graphs.knn_graph(pos, k, engine='torch'), repeats=1)
            brute = median_time(lambda: brute_force(pos, pos, k), repeats=1)
            how = 'measured'
        else:
            sample = pos[torch.randperm(n, generator=g)[:max(1000, brute_max // 10)]]
            brute = median_time(lambda: brute_force(pos, sample, k), repeats=1) * n / sample.size(0)
            how = f'extrapolated from {sample.size(0)} queries'
        rows.append({
            'points': n, 'k': k,
            'graphs.knn_graph (s)': round(ours, 3),
            'scipy cKDTree direct (s)': round(direct, 3),
            'ours / scipy': round(ours / direct, 2),
            "graphs engine='torch' (s)": '' if ours_torch is None else round(ours_torch, 2),
            'brute force (s)': round(brute, 2),
            'brute force': how,
            'brute / ours': round(brute / ours, 1),
        })
        print_table(f'kNN graph, 3-D uniform points, k={k}', rows[-1:])
    print_table(f'kNN graph construction, k={k} (median of {repeats})', rows)
    print(f"JSON: {write_json('knn', rows, out_dir)}")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[10_000, 100_000, 1_000_000])
    parser.add_argument('--k', type=int, default=16)
    parser.add_argument('--brute-max', type=int, default=100_000)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--out', default='benchmarks/results')
    args = parser.parse_args(argv)
    run(args.sizes, args.k, args.brute_max, args.repeats, args.out)


if __name__ == '__main__':
    main()

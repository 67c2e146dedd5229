"""Forward+backward time and peak memory of the 2-D modules against their peers.

Each case runs in a fresh subprocess (so its peak RSS is its own): the module
and input are built, one untimed forward+backward warms up, then the median of
``--repeats`` timed forward+backward passes is taken. Peak memory is the
process's high-water RSS minus its RSS just before the first pass.

Suites:
* ``lga``: LGA2d fused path, LGA2d message-passing path, and a naive
  ``F.unfold`` implementation of the same maths (written here as the
  baseline); C = 64, L = 4, batch 2. Also a plain copy of the layer's input
  (read + write of B*C*H*W floats), the memory-bandwidth floor of one layer.
* ``latentgnn``: LatentGNN2d fused path, its message-passing path, the authors'
  computation as batched matrix products (written here from the paper's
  equations, laid out as in their code) and a non-local block (embedded
  Gaussian); C = 256, d = 100, channel_stride 4, batch 2. Where the non-local
  block's N x N attention would not fit, the table says how much it needs.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import (current_rss, median_time, print_table,  # noqa: E402
                    run_case_in_subprocess, write_json)


# ---------------------------------------------------------------- baselines --
class UnfoldLGA(nn.Module):
    """LGA's maths, naively: unfold the 3x3 neighbourhoods (a 9x copy of each layer)."""

    def __init__(self, channels: int, num_layers: int):
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, 1)
        self.logits = nn.ModuleList(nn.Conv2d(channels, 9, 1) for _ in range(num_layers))
        self.values = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        inside = F.unfold(torch.ones(1, 1, h, w, dtype=x.dtype), 3, padding=1).view(1, 9, h, w)
        hid = self.proj(x)
        for logit, value in zip(self.logits, self.values):
            alpha = torch.softmax(logit(hid).masked_fill(inside == 0, float('-inf')), dim=1)
            patches = F.unfold(value(hid), 3, padding=1).view(b, c, 9, h, w)
            hid = torch.relu((patches * alpha.unsqueeze(1)).sum(2))
        return torch.cat([x, hid], dim=1)


class AuthorsLatentGNN(nn.Module):
    """LatentGNN (asymmetric, K = 1) as the authors compute it: bmm over (B, d, N)."""

    def __init__(self, channels: int, latent: int, stride: int):
        super().__init__()
        inter = channels // stride
        block = lambda cin, cout: nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False),  # noqa: E731
                                                nn.BatchNorm2d(cout))
        self.down_v, self.down_l = block(channels, inter), block(channels, inter)
        self.psi_v = nn.Sequential(block(inter, latent), nn.ReLU())
        self.psi_l = nn.Sequential(block(inter, latent), nn.ReLU())
        self.up = block(inter, channels)
        self.gamma = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        xv = F.normalize(self.down_v(x), dim=1)
        xl = F.normalize(self.down_l(x), dim=1)
        psi_v = F.normalize(self.psi_v(xv).flatten(2), dim=2)              # (B, d, N)
        psi_l = F.normalize(self.psi_l(xl).flatten(2), dim=1)              # (B, d, N)
        z = torch.bmm(psi_v, xv.flatten(2).transpose(1, 2))                # (B, d, C')
        zn = F.normalize(z, dim=-1)
        z = torch.bmm(torch.softmax(torch.bmm(zn, zn.transpose(1, 2)), -1), z)
        y = torch.bmm(z.transpose(1, 2), psi_l).view(b, -1, h, w)          # (B, C', H, W)
        return x + self.gamma * self.up(y)


class NonLocal2d(nn.Module):
    """Non-local block, embedded Gaussian: an N x N softmax attention."""

    def __init__(self, channels: int):
        super().__init__()
        inter = channels // 2
        self.theta, self.phi, self.g = (nn.Conv2d(channels, inter, 1) for _ in range(3))
        self.out = nn.Sequential(nn.Conv2d(inter, channels, 1), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q = self.theta(x).flatten(2).transpose(1, 2)
        attn = torch.softmax(q @ self.phi(x).flatten(2), dim=-1)
        y = (attn @ self.g(x).flatten(2).transpose(1, 2)).transpose(1, 2)
        return x + self.out(y.reshape(b, -1, h, w))


# -------------------------------------------------------------------- cases --
def build(suite: str, impl: str, size: int):
    from graphattn import LatentGNN2d, LGA2d
    if suite == 'lga':
        x = torch.randn(2, 64, size, size, requires_grad=True)
        if impl == 'copy':
            return None, x
        if impl == 'unfold':
            return UnfoldLGA(64, 4), x
        return LGA2d(64, num_layers=4, path='fused' if impl == 'fused' else 'message_passing'), x
    x = torch.randn(2, 256, size, size, requires_grad=True)
    if impl == 'authors':
        return AuthorsLatentGNN(256, 100, 4), x
    if impl == 'nonlocal':
        return NonLocal2d(256), x
    module = LatentGNN2d(256, latent_dims=[100], channel_stride=4,
                         path='fused' if impl == 'fused' else 'message_passing')
    with torch.no_grad():
        module.gamma.fill_(1.0)  # so the backward pass runs through the whole block
    return module, x


def run_case(suite: str, impl: str, size: int, repeats: int) -> Dict[str, float]:
    torch.manual_seed(0)
    module, x = build(suite, impl, size)
    if module is None:
        def step():
            x.detach().clone()
    else:
        def step():
            module(x).sum().backward()
            x.grad = None
            for p in module.parameters():
                p.grad = None
    before = current_rss()
    seconds = median_time(step, repeats=repeats, warmup=1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {'seconds': seconds, 'peak_bytes': max(peak - before, 0)}


def in_subprocess(suite: str, impl: str, size: int, repeats: int, timeout: int):
    return run_case_in_subprocess(__file__, [suite, impl, str(size), '--repeats', str(repeats)],
                                  timeout)


def nonlocal_bytes(size: int, batch: int = 2) -> int:
    """The N x N attention alone, stored twice for backward (scores and softmax), fp32."""
    n = size * size
    return 2 * batch * n * n * 4


def latent_messages_bytes(size: int, batch: int = 2, latent: int = 100, inter: int = 64) -> int:
    """LatentGNN message passing's N*d*C' message tensors (about three live at once), fp32."""
    return 3 * batch * size * size * latent * inter * 4


def planned_bytes(suite: str, impl: str, size: int) -> int:
    if impl == 'nonlocal':
        return nonlocal_bytes(size)
    if suite == 'latentgnn' and impl == 'message_passing':
        return latent_messages_bytes(size)
    return 0


IMPLS = {'lga': ['fused', 'message_passing', 'unfold', 'copy'],
         'latentgnn': ['fused', 'message_passing', 'authors', 'nonlocal']}


def run_suite(suite: str, sizes: List[int], repeats: int, timeout: int, out: str,
              memory_limit: int) -> List[Dict[str, object]]:
    rows = []
    for size in sizes:
        for impl in IMPLS[suite]:
            need = planned_bytes(suite, impl, size)
            if need > memory_limit:
                what = 'N x N attention' if impl == 'nonlocal' else "N x d x C' messages"
                result = {'error': f'not run: needs > {need / 2 ** 30:.0f} GiB ({what})'}
            else:
                result = in_subprocess(suite, impl, size, repeats, timeout)
            row = {'suite': suite, 'size': f'{size}x{size}', 'impl': impl}
            if 'error' in result:
                row.update({'ms': '', 'peak MiB': '', 'note': result['error']})
            else:
                row.update({'ms': round(1000 * result['seconds'], 1),
                            'peak MiB': round(result['peak_bytes'] / 2 ** 20, 1), 'note': ''})
            rows.append(row)
            print_table(f'{suite} {size}x{size}', [row])
    add_ratios(rows, suite)
    print_table(f'{suite}: forward+backward, median of {repeats}', rows)
    print(f"JSON: {write_json(suite, rows, out)}")
    return rows


def add_ratios(rows: List[Dict[str, object]], suite: str) -> None:
    """Side-by-side ratios against the first implementation of each size."""
    by_size: Dict[str, Dict[str, Dict[str, object]]] = {}
    for row in rows:
        by_size.setdefault(row['size'], {})[row['impl']] = row
    ours = IMPLS[suite][0]
    for size, impls in by_size.items():
        base = impls.get(ours)
        for row in impls.values():
            ok = base and base['ms'] != '' and row['ms'] != '' and row['impl'] != ours
            row['time / ours'] = round(row['ms'] / base['ms'], 2) if ok else ''
            ok = ok and base['peak MiB'] and row['peak MiB'] != ''
            row['memory / ours'] = round(row['peak MiB'] / base['peak MiB'], 2) if ok else ''


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--suites', nargs='+', default=['lga', 'latentgnn'],
                        choices=sorted(IMPLS))
    parser.add_argument('--sizes', type=int, nargs='+', default=[64, 128, 256, 512])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--timeout', type=int, default=600, help='seconds per case')
    parser.add_argument('--memory-limit', type=float, default=16.0,
                        help='GiB a case may plan to use')
    parser.add_argument('--out', default='benchmarks/results')
    parser.add_argument('--case', nargs=3, metavar=('SUITE', 'IMPL', 'SIZE'),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        suite, impl, size = args.case
        print(json.dumps(run_case(suite, impl, int(size), args.repeats)))
        return
    for suite in args.suites:
        run_suite(suite, args.sizes, args.repeats, args.timeout, args.out,
                  int(args.memory_limit * 2 ** 30))


if __name__ == '__main__':
    main()

"""How a stack of LGA layers passes signal and gradient at initialisation, by depth.

For ``LGA2d(64, num_layers=L, fuse=True, **options)`` on a (4, 64, 16, 16) input of unit
variance, at L = 1, 2, 4, 8, 16, one backward pass of a fixed random projection of the
output (the same for every model) gives:

* ``grad_ratio``: the gradient norm reaching the first layer's value map over the last
  layer's, for a random projection of the stack's output :math:`h^{(L)}` (1 means every
  layer is trained alike; a stack that vanishes gives << 1);
* ``layer_std``: the standard deviation of each layer's output (of the LGAConv, before
  the residual sum; the input's is 1);
* ``latent_input_part``: the std of the difference of the latents of two independent
  inputs: the part of :math:`h^{(L)}` that depends on the input (0: the stack forgot it);
* ``out_minus_in``: the std of the block's output minus its input (0: the identity).

Medians over ``--repeats`` initialisations. Example::

    python benchmarks/lga_depth_gradients.py \
        --out docs/runs/2026-12-04-collapse/depth_gradients.json
"""
from __future__ import annotations

import argparse
import json
import statistics

import torch

from graphattn import LGA2d

#: Named constructor options: the 0.1/0.2 stack and the current default.
FORMS = {
    'old': dict(fuse=True, residual=False, norm='none', output_init='default'),
    'new': dict(fuse=True),
    # each half of the new form alone
    'residual_only': dict(fuse=True, norm='none'),
    'norm_only': dict(fuse=True, residual=False),
}


def measure(depth: int, options: dict, seed: int):
    torch.manual_seed(seed)
    block = LGA2d(64, num_layers=depth, **options)
    x = torch.randn(4, 64, 16, 16)
    stds = []
    hooks = [conv.register_forward_hook(lambda m, a, o: stds.append(float(o.detach().std())))
             for conv in block.convs]
    out, latent = block(x, return_latent=True)
    for h in hooks:
        h.remove()
    # The loss reads the stack's output h^(L) (the latent), not the fused block output:
    # a fusion that starts as the identity (output_init='identity') passes no gradient
    # to the stack at step 0, as LatentGNN's gamma = 0 does not, and the ratio would be 0/0.
    weight = torch.randn(latent.shape, generator=torch.Generator().manual_seed(1000 + seed))
    (latent * weight).sum().backward()
    first = block.convs[0].lin_value.weight.grad.norm()
    last = block.convs[-1].lin_value.weight.grad.norm()
    with torch.no_grad():
        other = block(torch.randn(x.shape, generator=torch.Generator().manual_seed(2000 + seed)),
                      return_latent=True)[1]
    return {'grad_ratio': float(first / last), 'layer_std': stds,
            'latent_input_part': float((latent.detach() - other).std()),
            'out_minus_in': float((out - x).std()) if out.shape == x.shape else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--form', action='append', choices=sorted(FORMS), default=None)
    parser.add_argument('--depths', type=int, nargs='+', default=[1, 2, 4, 8, 16])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--out', default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {}
    for form in args.form or ['old', 'new', 'residual_only', 'norm_only']:
        rows = []
        for depth in args.depths:
            runs = [measure(depth, FORMS[form], seed) for seed in range(args.repeats)]
            ratios = [r['grad_ratio'] for r in runs]
            row = {'depth': depth, 'grad_ratio_median': statistics.median(ratios),
                   'grad_ratio': ratios,
                   'last_layer_std_median': statistics.median(r['layer_std'][-1] for r in runs),
                   'latent_input_part_median': statistics.median(
                       r['latent_input_part'] for r in runs),
                   'out_minus_in_std': [r['out_minus_in'] for r in runs],
                   'layer_std_seed0': runs[0]['layer_std']}
            rows.append(row)
            print(f"{form:>4} L={depth:<2} first/last value-map gradient "
                  f"{row['grad_ratio_median']:.3g}  last layer std "
                  f"{row['last_layer_std_median']:.3g}  latent's input part "
                  f"{row['latent_input_part_median']:.3g}  |out - in| std "
                  f"{statistics.median(row['out_minus_in_std']):.3g}", flush=True)
        results[form] = {'options': FORMS[form], 'rows': rows}
    if args.out:
        with open(args.out, 'w') as f:
            json.dump({'command': 'python benchmarks/lga_depth_gradients.py', 'input':
                       '(4, 64, 16, 16) standard normal', 'repeats': args.repeats,
                       'results': results}, f, indent=1)


if __name__ == '__main__':
    main()

"""Smoke tests of the benchmark code (tiny sizes, no timing asserted), so it cannot rot."""
import json
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), 'benchmarks'))

import layers  # noqa: E402
import plot  # noqa: E402
import points  # noqa: E402


@pytest.mark.parametrize('impl', points.IMPLS)
def test_point_cloud_cases_run(impl):
    result = points.run_case(impl, 300, repeats=1)
    assert result['seconds'] > 0 and result['peak_bytes'] >= 0


def test_point_cloud_lga_cases_compute_the_same_function():
    """The table and message-passing cases time the same maths."""
    outs = []
    for impl in ('lga_table', 'lga_mp'):
        module, forward = points.build(impl, 200)
        outs.append(forward())
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)


def test_unfold_baseline_equals_lga2d():
    """The naive baseline must compute LGA2d's function, or its timings mean nothing."""
    torch.manual_seed(0)
    from graphattn import LGA2d
    ours = LGA2d(8, num_layers=2)
    naive = layers.UnfoldLGA(8, 2)
    with torch.no_grad():
        naive.proj.weight.copy_(ours.proj.weight.view(8, 8, 1, 1))
        naive.proj.bias.copy_(ours.proj.bias)
        for conv, logit, value in zip(ours.convs, naive.logits, naive.values):
            logit.weight.copy_(conv.lin_att.weight.view(9, 8, 1, 1))
            logit.bias.copy_(conv.lin_att.bias)
            value.weight.copy_(conv.lin_value.weight.view(8, 8, 1, 1))
            value.bias.copy_(conv.lin_value.bias)
    x = torch.randn(2, 8, 7, 5)
    torch.testing.assert_close(naive(x), ours(x), rtol=1e-5, atol=1e-5)


def test_plot_reads_suite_json(tmp_path):
    for suite, impl in (('lga', 'fused'), ('latentgnn', 'fused')):
        rows = [{'size': f'{s}x{s}', 'impl': impl, 'ms': float(s)} for s in (64, 128)]
        (tmp_path / f'{suite}.json').write_text(json.dumps({'rows': rows}))
    out = plot.main(['--results', str(tmp_path), '--out', str(tmp_path / 'scaling.png')])
    assert os.path.getsize(out) > 1000

"""Smoke tests of the benchmark code (tiny sizes, no timing asserted), so it cannot rot."""
import json
import os
import sys

import pytest
import torch
import torch._dynamo

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), 'benchmarks'))

import common  # noqa: E402
import grid_kernel  # noqa: E402
import layers  # noqa: E402
import plot  # noqa: E402
import points  # noqa: E402


@pytest.mark.parametrize('impl', points.IMPLS)
def test_point_cloud_cases_run(impl, aot_eager_table_kernel):
    result = points.run_case(impl, 300, repeats=1)
    assert result['seconds'] > 0 and result['peak_bytes'] >= 0


def test_point_cloud_lga_cases_compute_the_same_function(aot_eager_table_kernel):
    """The table (eager and compiled) and message-passing cases time the same maths."""
    outs = []
    for impl in ('lga_table', 'lga_compiled', 'lga_mp'):
        module, forward = points.build(impl, 200)
        outs.append(forward())
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(outs[2], outs[0], rtol=1e-5, atol=1e-5)


def test_unfold_baseline_equals_lga2d():
    """The naive baseline must compute LGA2d's function, or its timings mean nothing."""
    torch.manual_seed(0)
    from graphattn import LGA2d
    ours = LGA2d(8, num_layers=2, residual=False, norm='none')   # the plain stack, as timed
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


def test_lga_cases_include_every_path_and_the_baselines():
    names = layers.impls('lga')
    assert names[0] == 'fused' and 'message_passing' in names
    assert names[-3:] == ['separable', 'unfold', 'copy']


def test_recompute_rows_and_stacks_build_what_they_name(monkeypatch):
    """'<path>-recompute' is that path with recompute=True; --stack picks the stack."""
    names = layers.impls('lga')
    assert {'fused-recompute', 'compiled-recompute'} <= set(names)
    assert 'message_passing-recompute' not in names
    module, _ = layers.build('lga', 'fused-recompute', 8)
    assert (module.path, module.recompute, module.residual, module.norm) == (
        'fused', True, False, 'none')
    monkeypatch.setattr(layers, 'STACK', 'default')
    module, _ = layers.build('lga', 'compiled', 8)
    assert (module.path, module.recompute, module.residual, module.norm) == (
        'compiled', False, True, 'layer')


@pytest.mark.parametrize('impl', layers.impls('lga'))
def test_lga_cases_run(impl):
    result = layers.run_case('lga', impl, 8, repeats=1)
    assert result['seconds'] > 0 and result['peak_bytes'] >= 0
    assert set(result['allocator']) == {'jemalloc_loaded', 'env'}


def test_separable_baseline_has_lga2d_output_shape():
    """Same depth, width and output as LGA2d (input concatenated), so the rows compare."""
    from graphattn import LGA2d
    x = torch.randn(2, 8, 7, 5)
    ours = LGA2d(8, num_layers=3)
    separable = layers.SeparableStack(8, 3)
    assert separable(x).shape == ours(x).shape == (2, 16, 7, 5)
    assert len(separable.depthwise) == len(ours.convs) == 3
    assert all(c.groups == 8 and c.kernel_size == (3, 3) for c in separable.depthwise)
    torch.testing.assert_close(separable(x)[:, :8], x)


def _child(env):
    args = ['lga', 'copy', '4', '--repeats', '1']
    return common.run_case_in_subprocess(layers.__file__, args, timeout=120, env=env)


def test_kept_memory_env_is_passed_to_the_case_process():
    env = common.allocator_env('kept')
    assert env == {'MALLOC_MMAP_THRESHOLD_': '1073741824',
                   'MALLOC_TRIM_THRESHOLD_': '1073741824', 'MALLOC_TOP_PAD_': '1073741824'}
    result = _child(env)
    assert result['allocator']['env'] == env
    assert layers.allocator_mismatch('kept', env, result['allocator']) == ''


def test_default_configuration_drops_inherited_allocator_vars(monkeypatch):
    monkeypatch.setenv('MALLOC_TOP_PAD_', '12345')
    monkeypatch.setenv('LD_PRELOAD', '')
    result = _child(common.allocator_env('default'))
    assert result['allocator']['env'] == {}
    assert layers.allocator_mismatch('kept', common.allocator_env('kept'),
                                     result['allocator']) != ''


@pytest.mark.skipif(common.find_jemalloc() is None, reason='libjemalloc.so.2 not unpacked here')
def test_jemalloc_configuration_loads_jemalloc_in_the_case_process():
    env = common.allocator_env('jemalloc')
    result = _child(env)
    assert result['allocator']['jemalloc_loaded'] is True
    assert layers.allocator_mismatch('jemalloc', env, result['allocator']) == ''


def test_missing_jemalloc_is_skipped_with_a_note(monkeypatch, capsys):
    monkeypatch.setattr(common, 'find_jemalloc', lambda: None)
    assert common.allocator_env('jemalloc') is None
    assert list(layers.available_allocators(['default', 'jemalloc'], 'cpu')) == ['default']
    assert 'jemalloc' in capsys.readouterr().out


def test_scaling_ratios_per_4x_pixels():
    times = {64: 10.0, 128: 40.0, 256: 250.0, 512: 1000.0}
    rows = [{'size': f'{s}x{s}', 'alloc': 'kept', 'impl': 'fused', 'ms': t, 'peak MiB': t / 10}
            for s, t in times.items()]
    (entry,) = layers.scaling_rows(rows)
    assert entry['128->256'] == '6.25 (6.25)' and entry['256->512'] == '4.00 (4.00)'
    assert entry['128->512 per 4x'] == '5.00 (5.00)'  # sqrt(1000 / 40)


def test_ratios_against_ours_and_separable_stay_within_size_and_allocator():
    rows = [{'size': '8x8', 'alloc': a, 'impl': i, 'ms': ms, 'peak MiB': 1.0}
            for a, base in (('default', 1.0), ('kept', 2.0))
            for i, ms in (('fused', base), ('separable', base / 2), ('unfold', base * 3))]
    layers.add_ratios(rows, 'fused', 'separable')
    unfold = [r for r in rows if r['impl'] == 'unfold']
    assert [r['time / ours'] for r in unfold] == [3.0, 3.0]
    assert [r['time / separable'] for r in unfold] == [6.0, 6.0]
    table = layers.side_by_side(rows, ['default', 'kept'])
    assert table[2]['time / ours (default, kept)'] == '3.0 / 3.0'


@pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA is available here')
def test_cuda_without_a_gpu_fails_clearly():
    with pytest.raises(SystemExit, match='torch.cuda.is_available'):
        layers.main(['--device', 'cuda', '--sizes', '8'])


def test_runner_writes_both_allocator_configurations(tmp_path):
    """The whole runner at a tiny size: one case per configuration, in subprocesses."""
    settings = layers.Settings(repeats=1, timeout=120)
    layers.run_suite('lga', [8], ['default', 'kept'], settings, str(tmp_path), only=['separable'])
    rows = json.loads((tmp_path / 'lga.json').read_text())['rows']
    assert [(r['alloc'], r['impl']) for r in rows] == [('default', 'separable'),
                                                       ('kept', 'separable')]
    assert all(r['ms'] > 0 and r['note'] == '' for r in rows)


def test_median_time_budget_cuts_repeats_but_times_one_pass(monkeypatch):
    clock = iter(range(0, 1000, 5))  # every pass takes 5 "seconds"
    monkeypatch.setattr(common.time, 'perf_counter', lambda: next(clock))
    calls = []
    assert common.median_time(lambda: calls.append(1), repeats=3, warmup=1, budget=12) == 5
    assert len(calls) == 3  # warm-up + two timed: a third would take the total to 15 > 12
    calls.clear()
    common.median_time(lambda: calls.append(1), repeats=3, warmup=1, budget=1)
    assert len(calls) == 2


def test_grid_kernel_schedules_give_the_eager_gradients(monkeypatch):
    """Every impl of the kernel benchmark computes the eager kernel's gradients (the compiled
    functions through aot_eager: inductor's C++ build takes a minute per shape here)."""
    from graphattn import compiled_grid_attention as cga
    from graphattn.compiled_kernel import compile_kernels
    torch._dynamo.reset()
    monkeypatch.setattr(cga, '_KERNELS', compile_kernels(cga._FUNCTIONS, 'aot_eager'))
    want = grid_kernel.build('eager', 6, 2, 5)['step']()
    for impl in grid_kernel.IMPLS:
        passes = grid_kernel.build(impl, 6, 2, 5)
        got = passes['step']()
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w)
        passes['backward']()   # the backward alone, through a kept forward graph
        passes['backward']()
    r = grid_kernel.run_case('compiled, split', 6, 2, 5, repeats=1)
    assert r['max_abs_diff'] < 1e-5 and r['backward_s'] > 0
    row = grid_kernel.row_of('compiled, split', 6, 2, r)
    assert row['map'] == '6²×2' and 'backward ms' in row
    torch._dynamo.reset()

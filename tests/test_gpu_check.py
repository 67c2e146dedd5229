"""The device check's CPU rehearsal: ``./tasks.sh gpu --dry-run`` in a subprocess.

The check itself runs only where a GPU is lent (a few minutes in some sessions); this
runs the same script end to end on the CPU at tiny sizes, so that it cannot rot in
between: the task, the test command, every row group, the ratios, the targets and the
two files it writes.
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GROUPS = ['LGA2d', 'LGA on points', 'LatentGNN2d', 'kNN graph', 'demo training step',
          'grid kernel']


def test_dry_run_writes_every_row_and_target(tmp_path):
    env = dict(os.environ, GPU_PYTHON=sys.executable, OMP_NUM_THREADS='1')
    env.pop('OUT', None)
    done = subprocess.run(['bash', os.path.join(ROOT, 'tasks.sh'), 'gpu', '--dry-run',
                           '--out', str(tmp_path)], capture_output=True, text=True,
                          timeout=600, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    data = json.loads((tmp_path / 'gpu_check.json').read_text())
    assert data['info']['mode'].startswith('dry run')
    assert data['tests']['exit_code'] == 0 and '1 passed' in data['tests']['summary']
    assert '--device cpu' in data['tests']['command']
    rows = data['rows']
    assert [g for g in GROUPS if not any(r['row'] == g for r in rows)] == []
    failed = [r for r in rows if 'ms' not in r]
    assert failed == [], failed                      # every case ran, none is a note
    assert all(r['ms'] > 0 for r in rows)
    impls = {(r['row'], r['impl']) for r in rows}
    for wanted in [('LGA2d', 'compiled'), ('LGA2d', 'separable'), ('LGA2d', 'unfold'),
                   ('LGA2d', 'auto, recompute=True'), ('LGA2d', 'compiled, recompute=True'),
                   ('grid kernel', 'compiled, fused'), ('grid kernel', 'compiled, split'),
                   ('grid kernel', 'compiled, split, backward only'), ('grid kernel', 'eager'),
                   ('LGA on points', 'table'), ('LGA on points', 'table, compiled'),
                   ('LGA on points', 'table, CSR products'),
                   ('LGA on points', 'PointTransformerConv'),
                   ('LGA on points', 'GATv2Conv'), ('LatentGNN2d', 'authors'),
                   ('LatentGNN2d', 'nonlocal'), ('demo training step', 'none'),
                   ('demo training step', 'latentgnn')]:
        assert wanted in impls
    # Ratios against ours within each group, and one target line per issue target.
    assert any('time / ours' in r for r in rows if r['row'] == 'LGA2d')
    assert len(data['targets']) == 5 + 6 + 1 + 1 + 4 + 1
    markdown = (tmp_path / 'gpu_check.md').read_text()
    assert '| row | size | impl | ms |' in markdown and '| LGA2d |' in markdown
    assert (tmp_path / 'tests.log').exists()


def test_without_cuda_the_check_refuses_with_the_reason(tmp_path):
    import torch
    if torch.cuda.is_available():
        return
    done = subprocess.run([sys.executable, os.path.join(ROOT, 'benchmarks', 'gpu_check.py'),
                           '--out', str(tmp_path)], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert done.returncode == 2 and '--dry-run' in done.stderr


def test_a_failing_group_is_a_row_and_the_next_group_runs(tmp_path, monkeypatch, capsys):
    """A group that fails outside its cases (here: a missing module, as scipy was on a
    bare device image) leaves a note row, its traceback in the log, and the check goes on."""
    sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))
    try:
        import gpu_check
    finally:
        sys.path.pop(0)
    ran = []

    def broken(report, sizes, device, budget, args):
        import not_a_module_anywhere  # noqa: F401

    def fine(report, sizes, device, budget, args):
        ran.append(True)
        report.add({'row': 'fine', 'size': '1', 'impl': 'x', 'ms': 1.0})

    monkeypatch.setitem(gpu_check.GROUPS, 'knn', broken)
    monkeypatch.setitem(gpu_check.GROUPS, 'train', fine)
    report = gpu_check.Report(str(tmp_path), {'date': 'now', 'device_name': 'cpu',
                                              'torch': '', 'cuda': None,
                                              'torch_geometric': '', 'triton': '', 'mode': ''})
    budget = gpu_check.Budget(60)
    for group in ('knn', 'train'):
        gpu_check.run_group(report, group, {}, None, budget, None)
    assert ran == [True]
    note = report.rows[0]
    assert note['row'] == 'knn' and note['note'].startswith(
        "group stopped: ModuleNotFoundError: No module named 'not_a_module_anywhere'")
    assert 'Traceback' in capsys.readouterr().err
    data = json.loads((tmp_path / 'gpu_check.json').read_text())
    assert [r['row'] for r in data['rows']] == ['knn', 'fine']


def test_a_compiles_first_call_is_noted_not_counted():
    """The peak is the timed passes'; a warm-up that peaked > 10% higher (inductor's
    autotuning clones the buffers a kernel writes) is a note, so the compiled rows are
    compared with the eager ones on the memory a training step needs."""
    sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))
    try:
        import gpu_check
    finally:
        sys.path.pop(0)
    row = gpu_check.case_result(0.0123456, 100.04, 250.0)
    assert row == {'ms': 12.35, 'peak MiB': 100.0,
                   'note': 'first call (compile, autotuning) peaked at 250.0 MiB'}
    assert 'note' not in gpu_check.case_result(0.5, 100.0, 109.0)
    assert gpu_check.case_result(0.5, None, None) == {'ms': 500.0, 'peak MiB': ''}

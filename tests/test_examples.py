"""Each example runs end to end for a few steps on tiny sizes."""
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import require_data

import datasets

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'examples')


@pytest.fixture(scope='module')
def real_data():
    require_data(datasets.load_fashion_mnist, 'test')
    require_data(datasets.load_cortex, 'left')


def test_demo_tiny_run_writes_table_and_figures(real_data, tmp_path):
    out = tmp_path / 'demo'
    done = subprocess.run([sys.executable, 'demo.py', '--tiny', '--no-progress', '--threads', '1',
                           '--out', str(out)],
                          cwd=EXAMPLES, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert '## Fashion-MNIST collages' in done.stdout and '## Cortex' in done.stdout
    for name in ('results.md', 'collages.json', 'cortex.json', 'demo.json',
                 'collage_predictions.png', 'lga_attention.png', 'latentgnn_assignments.png',
                 'cortex_predictions.png', 'cortex_lga_attention.png'):
        assert (out / name).stat().st_size > 0, name
    table = (out / 'results.md').read_text()
    assert 'ONE seed' in table                       # a one-seed run says so
    for model in ('trivial: all background', 'base + LGA', 'base + LGA + LGALoss',
                  'base + LatentGNN', 'base + non-local', 'trivial: majority class',
                  'trivial: position-only MLP', 'base + LGA (kNN graph)'):
        assert f'| {model} |' in table, model
    # The JSON holds numbers (one per seed) and the configuration that produced them.
    for name, count in (('collages.json', 6), ('cortex.json', 5)):
        saved = json.loads((out / name).read_text())
        assert saved['config']['seeds'] == [0]
        assert isinstance(saved['environment']['torch_threads'], int)
        # What decides the CPU kernels' rounding, so that runs can be paired to the digit.
        for key in ('torch_git', 'cpu_capability', 'onednn', 'processor'):
            assert key in saved['environment'], key
        assert len(saved['rows']) == count
        for row in saved['rows']:
            assert all(isinstance(v, float) and 0 <= v <= 100 for v in row['miou'])
            assert len(row['miou']) == len(row['pixel_acc']) == 1
            assert isinstance(row['params'], int) and isinstance(row['macs'], int)
            assert row['cpu_s_per_step'] is None or row['cpu_s_per_step'] > 0
    run = json.loads((out / 'demo.json').read_text())
    assert run['run'] == 'tiny' and run['wall_s'] > 0


def test_trivial_collage_predictor_scores_background_everywhere():
    from segment_collages import majority_scores
    labels = torch.zeros(2, 4, 4, dtype=torch.long)
    labels[:, :, 0] = 3                              # a quarter of the pixels are an item
    scores = majority_scores((None, labels))
    assert scores['pixel_acc'] == pytest.approx(75.0)
    assert scores['miou'] == pytest.approx(37.5)     # background IoU 0.75, item IoU 0


def test_position_mlp_ignores_the_graph():
    from torch_geometric.data import Data
    from segment_cortex import PositionMLP
    model = PositionMLP().eval()
    pos = torch.randn(10, 3)
    one = Data(pos=pos, edge_index=torch.randint(0, 10, (2, 30)), edge_attr=torch.randn(30, 3))
    other = Data(pos=pos, edge_index=torch.randint(0, 10, (2, 12)))
    assert torch.equal(model(one), model(other))
    assert torch.equal(model(one), model.mlp(pos))
    assert model(one).shape == (10, 4)


def test_inspect_graphs_example(real_data, tmp_path):
    done = subprocess.run([sys.executable, 'inspect_graphs.py', '--out', str(tmp_path)],
                          cwd=EXAMPLES, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert '8836 edges' in done.stdout
    assert (tmp_path / 'cortex_graph.png').exists()


def test_missing_data_gives_one_clear_message(tmp_path):
    env = dict(os.environ, FASHION_MNIST_DIR=str(tmp_path))
    script = ("import datasets; datasets.FASHION_MNIST_DIRS = ('/nonexistent',);"
              "import segment_collages, sys; sys.argv = ['x', '--steps', '1'];"
              "segment_collages.main()")
    done = subprocess.run([sys.executable, '-c', script], cwd=EXAMPLES, capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 2
    assert 'Traceback' not in done.stderr
    assert 'apt-get download dataset-fashion-mnist' in done.stderr


def test_unknown_model_lists_the_valid_ones():
    from models import SegNet
    with pytest.raises(ValueError, match="choose one of .*'lga'"):
        SegNet('transformer')


def test_attention_footprint_sums_to_one():
    from figures import attention_footprint
    alpha = torch.rand(9, 5, 6)
    # softmax-normalised maps with out-of-image neighbours at zero, as LGA2d returns them
    import graphs
    offsets = graphs.grid_stencil()
    rows, cols = torch.arange(5).view(-1, 1), torch.arange(6).view(1, -1)
    for t, (dx, dy) in enumerate(offsets.tolist()):
        inside = (rows + dy >= 0) & (rows + dy < 5) & (cols + dx >= 0) & (cols + dx < 6)
        alpha[t] *= inside
    alpha = alpha / alpha.sum(0, keepdim=True)
    foot = attention_footprint([alpha, alpha], offsets, (2, 3))
    assert float(foot.sum()) == pytest.approx(1.0, abs=1e-6)
    assert float(foot[0, 0]) == 0.0  # beyond two hops of (2, 3)


def _torchrun(script, *args):
    """``script args`` on two CPU processes (gloo) on a free port."""
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    return subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         f'--master_port={port}', script, *args],
        cwd=EXAMPLES, capture_output=True, text=True, timeout=300)


def test_collage_example_trains_under_torchrun(real_data, tmp_path):
    """Two CPU processes (gloo): one table, written once, from the rank-0 process."""
    done = _torchrun('segment_collages.py', '--models', 'lga', '--steps', '2', '--batch-size',
                     '4', '--train-size', '8', '--test-size', '4', '--out', str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count('| base + LGA |') == 1
    assert (tmp_path / 'collages.json').exists()


def test_cortex_example_trains_under_torchrun(real_data, tmp_path):
    """A point-cloud task on two CPU processes (gloo): each takes one of the step's two views
    (whole graphs), one table, written once, from the rank-0 process."""
    done = _torchrun('segment_cortex.py', '--models', 'lga', '--steps', '2', '--views', '2',
                     '--points', '512', '--no-progress', '--out', str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count('| base + LGA (kNN graph) |') == 1
    assert done.stdout.count('cortex: train left hemisphere') == 1
    assert json.loads((tmp_path / 'cortex.json').read_text())['rows'][1]['key'] == 'lga'


def test_point_batches_are_shared_by_whole_graphs():
    """PosedCloudsTask.shard: rank r gets graphs r, r + N, ... of the batch, each graph whole
    with its labels, exactly as if only those clouds had been collated."""
    import graphs
    from segment_cortex import CortexTask
    g = torch.Generator().manual_seed(0)
    clouds = [torch.randn(n, 3, generator=g) for n in (10, 12, 9, 11)]
    labels = [torch.randint(-1, 4, (c.size(0),), generator=g) for c in clouds]
    batch = graphs.collate_clouds(clouds, y=labels, k=4)
    for rank in range(2):
        part, y = CortexTask(num_points=16, k=4).shard(batch, batch.y, rank, 2)
        alone = graphs.collate_clouds(clouds[rank::2], y=labels[rank::2], k=4)
        assert part.num_graphs == 2 and torch.equal(y, alone.y)
        for key in ('pos', 'edge_index', 'edge_attr', 'batch', 'ptr', 'y'):
            assert torch.equal(part[key], alone[key]), key
    with pytest.raises(ValueError, match='multiple of the number of processes'):
        CortexTask().shard(batch, batch.y, 0, 3)


def test_distributed_shard_splits_a_batch_evenly():
    import distributed
    index = torch.arange(8)
    parts = [distributed.shard(index, r, 2) for r in range(2)]
    assert sorted(torch.cat(parts).tolist()) == list(range(8))
    with pytest.raises(ValueError, match='multiple of the number of processes'):
        distributed.shard(torch.arange(5), 0, 2)


def test_lga_loss_sweep_tiny_run(real_data, tmp_path):
    """The weight sweep (ablate_lga.py's part w): a row per weight on the test set, each with
    its test LGALoss; weight 0 is the plain LGA model."""
    done = subprocess.run([sys.executable, 'ablate_lga.py', '--tiny', '--parts', 'w',
                           '--weights', '0', '1', '--temperature', '0.5', '--out', str(tmp_path)],
                          cwd=EXAMPLES, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert '| w | base + LGA + LGALoss, weight 0 (plain LGA) |' in done.stdout
    assert '| w | base + LGA + LGALoss, weight 1 |' in done.stdout   # a table row per weight
    result = json.loads((tmp_path / 'ablations.json').read_text())
    sweep = [r for r in result['rows'] if r['part'] == 'w']
    assert [r['weight'] for r in sweep] == [0, 1]
    assert {r['temperature'] for r in sweep} == {0.5}
    for r in sweep:
        assert r['loss_form'] == 'divergence' and len(r['test_lga_loss']) == 1
        assert r['test_lga_loss'][0] > 0 and isinstance(r['miou'][0], float)


def test_cortex_view_poses_keep_the_shape(real_data):
    from datasets import load_cortex
    from segment_cortex import CortexTask
    cortex = load_cortex('left')
    keep = torch.arange(0, 32492, 64)

    def view(frame):
        return CortexTask(k=8, frame=frame).view(cortex, keep, torch.Generator().manual_seed(0))
    plain, turned, tilted = view('template'), view('up'), view('any')
    centred = (cortex.pos[keep] - cortex.pos[keep].mean(0)) / 50.0
    assert torch.equal(plain.pos, centred)                     # the template frame, centred
    assert torch.allclose(turned.pos[:, 2], centred[:, 2], atol=1e-6)   # 'up' keeps heights
    assert not torch.allclose(turned.pos[:, :2], centred[:, :2], atol=1e-2)
    assert not torch.allclose(tilted.pos[:, 2], centred[:, 2], atol=1e-2)

    def distances(p):   # explicit differences: cdist's matmul form loses small distances
        return (p[:, None] - p[None]).norm(dim=-1)
    for posed in (turned, tilted):
        assert torch.allclose(distances(plain.pos), distances(posed.pos), atol=1e-5)
    # kNN graphs with self-loops (LGA reads a node's own features through its self-loop)
    src, dst = plain.edge_index
    assert torch.equal(torch.unique(dst[src == dst]), torch.arange(keep.numel()))
    assert plain.edge_index.size(1) == 8 * keep.numel()


def _toy_cortex(n=300, seed=0):
    from datasets import Cortex
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, 3, generator=g) * 40
    labels = torch.randint(-1, 4, (n,), generator=g)
    return Cortex(pos=pos, faces=torch.zeros(0, 3, dtype=torch.long), labels=labels,
                  hemisphere='toy')


def test_cortex_views_cover_every_vertex_once():
    from segment_cortex import CortexTask
    parts = CortexTask(num_points=96).views(_toy_cortex(1000), torch.Generator().manual_seed(0))
    assert len(parts) == 11 and max(p.numel() for p in parts) <= 96
    assert torch.equal(torch.cat(parts).sort().values, torch.arange(1000))


def test_cortex_task_rejects_an_unknown_frame_or_norm():
    from segment_cortex import CortexTask, make_model
    with pytest.raises(ValueError, match="unknown frame 'tilted'; choose one of"):
        CortexTask(frame='tilted')
    with pytest.raises(ValueError, match="unknown latent_norm 'group'"):
        CortexTask(latent_norm='group')
    with pytest.raises(ValueError, match="unknown context 'transformer'"):
        make_model('transformer')


@pytest.mark.parametrize('context', ['position-mlp', 'none', 'lga', 'latentgnn'])
def test_cortex_prediction_is_a_distribution_at_every_vertex(context):
    import segment_cortex
    cortex = _toy_cortex()
    task = segment_cortex.CortexTask(num_points=64, k=8)
    model = segment_cortex.make_model(context)
    probs = task.predict(model, cortex)
    assert probs.shape == (300, 4)
    assert torch.allclose(probs.sum(1), torch.ones(300), atol=1e-5)
    # the same seed gives the same views and poses, so the same probabilities
    assert torch.equal(probs, task.predict(model, cortex))


def test_cortex_latentgnn_views_are_independent():
    """LatentGNN's latent nodes summarise each view of a batch on its own."""
    import graphs
    import segment_cortex
    torch.manual_seed(0)
    model = segment_cortex.make_model('latentgnn').eval()
    clouds = [torch.randn(40, 3), torch.randn(50, 3)]
    together = model(graphs.collate_clouds(clouds, k=8))
    alone = model(graphs.collate_clouds(clouds[:1], k=8))
    assert torch.allclose(together[:40], alone, atol=1e-5)


def test_cortex_training_uses_the_same_views_for_every_model():
    import experiment
    import segment_cortex

    class Spy(segment_cortex.CortexTask):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.seen = []

        def pose(self, pos, generator):
            self.seen.append(pos.clone())
            return super().pose(pos, generator)
    cortex = _toy_cortex(n=200)
    task = Spy(num_points=50, k=4)
    for context in ('position-mlp', 'none'):
        experiment.fit(task, context, cortex, experiment.Budget(2, 2), seed=3)
    assert len(task.seen) == 8
    assert all(torch.equal(a, b) for a, b in zip(task.seen[:4], task.seen[4:]))
    # a step's views are parts of one covering: no vertex twice
    step = torch.cat(task.seen[:2])
    assert step.shape == (100, 3) and torch.unique(step, dim=0).size(0) == 100


def test_cortex_run_scores_every_row_and_repeats_at_a_seed(tmp_path):
    """Through experiment.run: the majority row, then every trained row with its scores
    per seed; the same seed twice gives the same numbers, another seed others."""
    import experiment
    import segment_cortex
    task = segment_cortex.CortexTask(num_points=50, k=4, frame='template')
    data = (_toy_cortex(200, seed=1), _toy_cortex(120, seed=2))
    for cortex in data:   # a class per quadrant of the (x, y) plane: learnable from positions
        cortex.labels[:] = (cortex.pos[:, 0] > 0).long() + 2 * (cortex.pos[:, 1] > 0).long()
    budget = experiment.Budget(12, 2, seeds=(0, 0, 1))
    results, models, _ = experiment.run(task, list(segment_cortex.MODELS), budget,
                                        str(tmp_path), data=data, say=lambda *a, **k: None)
    assert [r['key'] for r in results] == ['majority', *segment_cortex.MODELS]
    assert set(models) == set(segment_cortex.MODELS)
    for row in results[1:]:
        assert row['seeds'] == [0, 0, 1]
        assert row['miou'][0] == row['miou'][1] and row['pixel_acc'][0] == row['pixel_acc'][1]
        assert all(0 <= v <= 100 for v in row['miou'] + row['pixel_acc'])
        assert row['params'] > 0 and row['macs'] > 0
    # the seed is used: another seed starts from other weights and batches
    assert all(r['loss_every_10_steps'][0] == r['loss_every_10_steps'][1] and
               r['loss_every_10_steps'][0] != r['loss_every_10_steps'][2] for r in results[1:])
    assert len({r['pixel_acc'][0] for r in results}) > 2   # the models learnt different things
    majority = results[0]
    counts = torch.bincount(data[0].labels[data[0].labels >= 0], minlength=4)
    test = data[1].labels[data[1].labels >= 0]
    assert majority['pixel_acc'][0] == pytest.approx(
        100 * float((test == counts.argmax()).float().mean()))
    table = experiment.table(task, results)
    assert '| trivial: majority class |' in table
    assert "| base + LatentGNN (norm='batch') |" in table
    assert 'GMACs / 50-point view' in table
    saved = json.loads((tmp_path / 'cortex.json').read_text())
    assert saved['config']['frame'] == 'template' and saved['config']['batch_size'] == 2


def test_cortex_lookup_copies_the_nearest_labelled_vertex():
    from datasets import Cortex
    from segment_cortex import lookup_scores
    cortex = _toy_cortex()
    assert lookup_scores(cortex, cortex)['miou'] == pytest.approx(100.0)
    # a test vertex next to an unlabelled train vertex takes the nearest *labelled* one
    pos = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [10.0, 0, 0]])
    left = Cortex(pos=pos, faces=torch.zeros(0, 3, dtype=torch.long),
                  labels=torch.tensor([-1, 2, 3]), hemisphere='toy')
    right = Cortex(pos=pos[:1].clone(), faces=left.faces, labels=torch.tensor([2]),
                   hemisphere='toy')
    assert lookup_scores(left, right)['pixel_acc'] == pytest.approx(100.0)


@pytest.mark.parametrize('build', [
    lambda c, seed: (torch.manual_seed(seed), __import__('models').SegNet(c))[1],
    lambda c, seed: (torch.manual_seed(seed), __import__('models').DehazeNet(c))[1],
    lambda c, seed: (torch.manual_seed(seed), __import__('segment_glass').GlassNet(
        {'none': 'base', 'lga': 'lga4'}.get(c, c)))[1],
])
@pytest.mark.parametrize('context', ['lga', 'latentgnn', 'nonlocal'])
def test_context_rows_share_the_base_weights_at_a_seed(build, context):
    """At one seed a row with a context block starts from the base row's weights: only its
    block differs. (Drawn between encoder and decoder, the block shifted the decoder's draw,
    and the collages' seed 2 'collapsed' with or without LGA: docs/lga.md.)"""
    base, row = build('none', 2).state_dict(), build(context, 2).state_dict()
    shared = {k: v for k, v in row.items() if not k.startswith('context.')}
    assert shared.keys() == base.keys()
    for key, value in shared.items():
        assert torch.equal(value, base[key]), key


@pytest.mark.parametrize('module, rows', [
    ('segment_cortex', ('none', 'lga', 'latentgnn')),
    ('segment_points', ('base', 'lga', 'latentgnn', 'latentgnn-batch', 'lga-neighbor',
                        'lga-pair')),
])
def test_point_context_rows_share_the_base_weights_at_a_seed(module, rows):
    """Both point-cloud scripts build models.PointSegNet: at one seed every row holds the
    base's weights, and only its block is its own."""
    from models import PointSegNet
    make = __import__(module).make_model
    torch.manual_seed(3)
    base = make(rows[0]).state_dict()
    for name in rows[1:]:
        torch.manual_seed(3)
        model = make(name)
        assert isinstance(model, PointSegNet) and model.context is not None
        row = model.state_dict()
        shared = {k: v for k, v in row.items() if not k.startswith('context.')}
        assert shared.keys() == base.keys() and len(row) > len(shared), name
        for key, value in shared.items():
            assert torch.equal(value, base[key]), (name, key)


def test_cortex_deeper_rival_matches_lga_in_size_and_shares_the_base():
    """The 'deeper' rival: the base's weights at a seed, then DEEPER_CONVS more EdgeConvs,
    within 5% of base + LGA's parameter count; its extra layers run (a different output)."""
    import segment_cortex
    make = segment_cortex.make_model
    size = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    torch.manual_seed(3)
    base = make('none')
    torch.manual_seed(3)
    deeper = make('deeper')
    assert len(deeper.extra) == segment_cortex.DEEPER_CONVS
    assert abs(size(deeper) / size(make('lga')) - 1) < 0.05
    state = deeper.state_dict()
    for key, value in base.state_dict().items():
        assert torch.equal(value, state[key]), key
    data = segment_cortex.CortexTask(num_points=64, k=8).view(
        _toy_cortex(), torch.arange(64), torch.Generator().manual_seed(0))
    base.eval(), deeper.eval()
    assert not torch.allclose(base(data), deeper(data))

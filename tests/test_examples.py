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
    from segment_cortex import PositionMLP
    model = PositionMLP().eval()
    pos = torch.randn(10, 3)
    edges = torch.randint(0, 10, (2, 30))
    assert torch.equal(model(pos, edges, torch.randn(30, 3)), model(pos))
    assert model(pos).shape == (10, 4)


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


def test_collage_example_trains_under_torchrun(real_data, tmp_path):
    """Two CPU processes (gloo): one table, written once, from the rank-0 process."""
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    done = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         f'--master_port={port}', 'segment_collages.py', '--models', 'lga', '--steps', '2',
         '--batch-size', '4', '--train-size', '8', '--test-size', '4', '--out', str(tmp_path)],
        cwd=EXAMPLES, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count('| base + LGA |') == 1
    assert (tmp_path / 'collages.json').exists()


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
    from segment_cortex import view
    cortex = load_cortex('left')
    keep = torch.arange(0, 32492, 64)
    plain, labels = view(cortex, torch.Generator().manual_seed(0), keep, k=8, frame='template')
    turned, same = view(cortex, torch.Generator().manual_seed(0), keep, k=8, frame='up')
    tilted, _ = view(cortex, torch.Generator().manual_seed(0), keep, k=8, frame='any')
    assert torch.equal(labels, same) and torch.equal(labels, cortex.labels[keep])
    centred = (cortex.pos[keep] - cortex.pos[keep].mean(0)) / 50.0
    assert torch.allclose(plain.pos, centred)                  # the template frame, centred
    assert torch.allclose(turned.pos[:, 2], centred[:, 2], atol=1e-6)   # 'up' keeps heights
    assert not torch.allclose(turned.pos[:, :2], centred[:, :2], atol=1e-2)

    def distances(p):   # explicit differences: cdist's matmul form loses small distances
        return (p[:, None] - p[None]).norm(dim=-1)
    for posed in (turned, tilted):
        assert torch.allclose(distances(plain.pos), distances(posed.pos), atol=1e-5)
    # kNN graphs with self-loops (LGA reads a node's own features through its self-loop)
    src, dst = plain.edge_index
    assert torch.equal(torch.unique(dst[src == dst]), torch.arange(keep.numel()))
    assert plain.edge_index.size(1) == 8 * keep.numel()


def test_cortex_views_cover_every_vertex_once():
    from segment_cortex import views
    parts = views(1000, 96, torch.Generator().manual_seed(0))
    assert len(parts) == 11 and max(p.numel() for p in parts) <= 96
    assert torch.equal(torch.cat(parts).sort().values, torch.arange(1000))


def test_cortex_pose_rejects_an_unknown_frame():
    from segment_cortex import pose
    with pytest.raises(ValueError, match="unknown frame 'tilted'; choose one of"):
        pose(torch.randn(10, 3), 'tilted', torch.Generator())


def _toy_cortex(n=300, seed=0):
    from datasets import Cortex
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, 3, generator=g) * 40
    labels = torch.randint(-1, 4, (n,), generator=g)
    return Cortex(pos=pos, faces=torch.zeros(0, 3, dtype=torch.long), labels=labels,
                  hemisphere='toy')


@pytest.mark.parametrize('context', ['position-mlp', 'none', 'lga', 'latentgnn'])
def test_cortex_prediction_is_a_distribution_at_every_vertex(context):
    import segment_cortex
    cortex = _toy_cortex()
    model = segment_cortex.make_model(context)
    probs = segment_cortex.predict(model, cortex, num_points=64, k=8)
    assert probs.shape == (300, 4)
    assert torch.allclose(probs.sum(1), torch.ones(300), atol=1e-5)
    # the same seed gives the same views and poses, so the same probabilities
    assert torch.equal(probs, segment_cortex.predict(model, cortex, num_points=64, k=8))


def test_cortex_latentgnn_views_are_independent():
    """LatentGNN's latent nodes summarise each view of a batch on its own."""
    import graphs
    import segment_cortex
    torch.manual_seed(0)
    model = segment_cortex.make_model('latentgnn').eval()
    clouds = [torch.randn(40, 3), torch.randn(50, 3)]
    batch = graphs.collate_clouds(clouds, k=8)
    together = segment_cortex.logits(model, batch)
    alone = segment_cortex.logits(model, graphs.collate_clouds(clouds[:1], k=8))
    assert torch.allclose(together[:40], alone, atol=1e-5)


def test_cortex_training_uses_the_same_views_for_every_model():
    import segment_cortex
    cortex = _toy_cortex(n=200)
    seen = []
    original = segment_cortex.pose

    def spy(pos, frame, generator):
        seen.append(pos.clone())
        return original(pos, frame, generator)
    segment_cortex.pose = spy
    try:
        for context in ('position-mlp', 'none'):
            segment_cortex.train_model(context, cortex, steps=2, num_points=50, k=4, seed=3,
                                       progress=False, views_per_step=2)
    finally:
        segment_cortex.pose = original
    assert len(seen) == 8
    assert all(torch.equal(a, b) for a, b in zip(seen[:4], seen[4:]))


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


@pytest.mark.parametrize('module, cls, rows', [
    ('segment_cortex', 'PointSeg', ('lga', 'latentgnn')),
    ('segment_points', 'Segmenter', ('lga', 'latentgnn')),
])
def test_point_context_rows_share_the_base_weights_at_a_seed(module, cls, rows):
    make = getattr(__import__(module), cls)
    base_name = 'none' if module == 'segment_cortex' else 'base'
    torch.manual_seed(3)
    base = make(base_name).state_dict()
    for name in rows:
        torch.manual_seed(3)
        row = make(name).state_dict()
        for key, value in row.items():
            if not key.startswith('context.'):
                assert torch.equal(value, base[key]), (name, key)

"""The examples' shared experiment runner (examples/experiment.py): budget, fit, run, table."""
import json

import pytest
import torch
from torch import nn

import experiment
from experiment import Budget, Task


class ToyTask(Task):
    """Two Gaussian blobs; rows differ only in their hidden width. Records every batch."""

    name = 'toy'
    rows = {'chance': 'trivial: one class', 'small': 'small MLP', 'wide': 'wide MLP'}
    metrics = {'acc': 'accuracy (%)'}

    def __init__(self):
        self.seen = []

    def make_data(self):
        g = torch.Generator().manual_seed(0)
        y = torch.randint(2, (64,), generator=g)
        x = torch.randn(64, 2, generator=g) + 2 * y[:, None].float()
        return (x[:48], y[:48]), (x[48:], y[48:])

    def build(self, row):
        width = 4 if row == 'small' else 16
        return nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, 2))

    def sample(self, train, batch_size, generator):
        idx = torch.randint(train[0].size(0), (batch_size,), generator=generator)
        self.seen.append(idx)
        return train[0][idx], train[1][idx]

    def evaluate(self, model, row, test):
        model.eval()
        with torch.no_grad():
            return {'acc': float((model(test[0]).argmax(1) == test[1]).float().mean()) * 100}

    def trivial(self, train, test):
        return {'chance': {'acc': float((test[1] == 0).float().mean()) * 100}}


def test_budget_rejects_what_cannot_train():
    with pytest.raises(ValueError, match='steps'):
        Budget(0, 4)
    with pytest.raises(ValueError, match='seed'):
        Budget(5, 4, seeds=())
    assert Budget(5, 4, seeds=[1, 2]).seeds == (1, 2)


def test_fit_depends_on_the_seed_alone():
    task = ToyTask()
    train, _ = task.make_data()
    a = experiment.fit(task, 'small', train, Budget(5, 8), seed=3)
    torch.randn(100)   # whatever ran before must not matter
    b = experiment.fit(task, 'small', train, Budget(5, 8), seed=3)
    c = experiment.fit(task, 'small', train, Budget(5, 8), seed=4)
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)
    assert a.losses == b.losses and a.losses != c.losses
    assert len(a.losses) == 5 and a.cpu_s_per_step >= 0


def test_rows_at_one_seed_see_the_same_batches():
    task = ToyTask()
    train, _ = task.make_data()
    experiment.fit(task, 'small', train, Budget(4, 8), seed=1)
    experiment.fit(task, 'wide', train, Budget(4, 8), seed=1)
    for first, second in zip(task.seen[:4], task.seen[4:]):
        assert torch.equal(first, second)


def test_the_optimiser_follows_the_budget():
    """A zero learning rate leaves the weights as drawn: the budget's lr reaches AdamW."""
    task = ToyTask()
    train, _ = task.make_data()
    torch.manual_seed(2)
    drawn = task.build('small')
    fitted = experiment.fit(task, 'small', train, Budget(3, 8, lr=0.0, weight_decay=0.0), 2)
    for p, q in zip(drawn.parameters(), fitted.model.parameters()):
        assert torch.equal(p, q)


def test_run_writes_every_seed_and_the_trivial_row_first(tmp_path):
    task = ToyTask()
    results, models, _ = experiment.run(task, ['wide', 'small'], Budget(6, 8, (0, 1)),
                                        out=str(tmp_path), say=lambda *a, **k: None)
    assert [r['key'] for r in results] == ['chance', 'wide', 'small']
    assert results[1]['seeds'] == [0, 1] and len(results[1]['acc']) == 2
    assert results[1]['params'] == 2 * 16 + 16 + 16 * 2 + 2
    assert set(models) == {'wide', 'small'}
    saved = json.loads((tmp_path / 'toy.json').read_text())
    assert [r['key'] for r in saved['rows']] == ['chance', 'wide', 'small']
    assert saved['config']['steps'] == 6 and saved['config']['seeds'] == [0, 1]
    text = (tmp_path / 'toy.md').read_text()
    assert '| trivial: one class |' in text and 'accuracy (%)' in text
    # The table's spread is over the seeds.
    mean = sum(results[1]['acc']) / 2
    assert f'{mean:.1f} ±' in experiment.table(task, results)


def test_run_names_unknown_rows():
    with pytest.raises(ValueError, match=r"unknown rows \['huge'\].*'small'"):
        experiment.run(ToyTask(), ['huge'], Budget(1, 1))


def test_run_matches_fit_for_each_seed():
    task = ToyTask()
    data = task.make_data()
    results, _, _ = experiment.run(task, ['small'], Budget(5, 8, (2,)), data=data,
                                   say=lambda *a, **k: None)
    alone = experiment.fit(task, 'small', data[0], Budget(5, 8), seed=2)
    assert results[1]['acc'] == [task.evaluate(alone.model, 'small', data[1])['acc']]


def test_shard_takes_every_nth_row_of_tensor_batches_and_names_the_fix_for_others():
    """Task.shard under torchrun: rows r, r + N, ... of inputs and target by default; a task
    whose batches are not tensors is told to give its own shard method."""
    x, y = torch.arange(12.).view(6, 2), torch.arange(6)
    parts = [ToyTask().shard(x, y, rank, 3) for rank in range(3)]
    assert torch.equal(parts[1][0], x[[1, 4]]) and torch.equal(parts[1][1], y[[1, 4]])
    assert sorted(torch.cat([t for _, t in parts]).tolist()) == list(range(6))
    with pytest.raises(TypeError, match=r'batches are list: give the task a shard\('):
        ToyTask().shard([x], y, 0, 2)

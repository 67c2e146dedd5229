"""One way to run a comparison: a task, its rows, a budget, and a table.

Every experiment in the examples (the demo's collages and cortex, glass on photos, dehazing,
the LGA ablations) asks the same question: with the same data, steps, batches and optimiser,
does a context block change the test score? This module holds what they share, so that each
experiment only says what is its own:

- :class:`Task`: the data, the models (one per *row*: a short key such as ``'base'`` or
  ``'lga4'``), how a training batch is drawn, the loss, the test scores and the table's
  columns. Rows that need no training (every pixel background, the hazy input itself) are the
  task's :meth:`Task.trivial` scores.
- :class:`Budget`: steps, batch size, seeds and the optimiser's settings (AdamW with a
  one-cycle schedule).
- :func:`fit`: the one training loop. It seeds the model's weights and the batches from the
  seed alone, so a row's numbers do not depend on what ran before it, and at one seed every
  row sees the same batches.
- :func:`run`: every row at every seed, the trivial rows first; the JSON (numbers as numbers,
  one entry per seed, with the configuration and the machine) is rewritten after every
  model, so a run stopped early keeps what it finished.
- :func:`table`: the results as Markdown (mean ± std over seeds).

A new task is a subclass of :class:`Task` (see ``segment_collages.CollageTask`` for a short
one); ``python examples/<task>.py --help`` runs each from the command line.
"""
from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

import distributed
from training import count_macs, count_parameters, markdown_table, mean_std, run_environment


@dataclasses.dataclass(frozen=True)
class Budget:
    """What every row of one comparison gets: ``steps`` optimiser steps of ``batch_size``
    examples, for each of ``seeds``, AdamW (``lr``, ``weight_decay``) under a one-cycle
    schedule whose warm-up is the fraction ``warmup`` of the steps."""

    steps: int
    batch_size: int
    seeds: Tuple[int, ...] = (0,)
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup: float = 0.15

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"a budget needs steps >= 1 and batch_size >= 1, got steps="
                             f"{self.steps}, batch_size={self.batch_size}")
        if not self.seeds:
            raise ValueError("a budget needs at least one seed")
        object.__setattr__(self, 'seeds', tuple(self.seeds))

    def describe(self) -> Dict[str, Any]:
        return {**dataclasses.asdict(self), 'seeds': list(self.seeds), 'optimizer': 'AdamW',
                'schedule': f'OneCycle, {self.warmup:.0%} warm-up'}


class Task:
    """An experiment: its data, its rows' models, its loss, its scores, its table.

    Subclasses override :meth:`make_data`, :meth:`build`, :meth:`sample` and
    :meth:`evaluate`, and may override :meth:`loss` (default: cross-entropy of
    ``model(inputs)`` against ``target``), :meth:`trivial`, :meth:`columns` and
    :meth:`macs_input`. Class attributes: ``name`` (the JSON's file name), ``rows`` (key ->
    display name, in table order), ``metrics`` (score key -> column header; the first is the
    headline) and ``unit`` (what one MAC count is per).
    """

    name: str = 'task'
    rows: Dict[str, str] = {}
    metrics: Dict[str, str] = {'miou': 'mIoU (%)', 'pixel_acc': 'pixel acc (%)'}
    unit: str = 'example'

    # -- what a task must say ---------------------------------------------------------------
    def make_data(self) -> Tuple[Any, Any]:
        """``(train, test)``, built once and kept in memory."""
        raise NotImplementedError

    def build(self, row: str) -> nn.Module:
        """A fresh model for ``row``; :func:`fit` seeds the generator before calling it."""
        raise NotImplementedError

    def sample(self, train: Any, batch_size: int, generator: torch.Generator) -> Tuple[Any, Any]:
        """One training batch ``(inputs, target)``, drawn with ``generator`` only."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, row: str, test: Any) -> Dict[str, Any]:
        """Test scores of ``row``'s trained model (``model.eval()`` is the task's to call)."""
        raise NotImplementedError

    # -- what a task may change ---------------------------------------------------------------
    def loss(self, model: nn.Module, row: str, inputs: Any, target: Any) -> torch.Tensor:
        return F.cross_entropy(model(inputs), target)

    def trivial(self, train: Any, test: Any) -> Dict[str, Dict[str, Any]]:
        """Rows with no training (key -> scores): where chance lies."""
        return {}

    def shard(self, inputs: Any, target: Any, rank: int,
              world_size: int) -> Tuple[Any, Any]:
        """This process's share of a training batch under ``torchrun`` (``world_size`` > 1).

        The default takes rows ``rank, rank + world_size, ...`` of tensor ``inputs`` and
        ``target`` (:func:`distributed.shard`); a task whose batches are not tensors (a PyG
        ``Batch`` of graphs: ``segment_cortex.PosedCloudsTask``) says how to split them. Every
        process draws the same batch, so the shares must be disjoint and cover it."""
        return _rows(inputs, rank, world_size), _rows(target, rank, world_size)

    def macs_input(self, test: Any) -> tuple:
        """Positional arguments of one forward pass whose MACs the table reports."""
        return (test[0][:1],)

    def display(self, row: str) -> str:
        return self.rows.get(row, row)

    def config(self) -> Dict[str, Any]:
        """The task's own settings, for the JSON."""
        return {}

    def columns(self, result: Dict[str, Any]) -> Dict[str, str]:
        """One table row: the model, each metric (mean ± std over seeds), parameters, MACs and
        the median CPU time of a training step."""
        step = result.get('cpu_s_per_step')
        return {'model': result['model'],
                **{header: mean_std(result[key]) for key, header in self.metrics.items()},
                'params': f"{result['params']:,}",
                f'GMACs / {self.unit}': f"{result['macs'] / 1e9:.3f}",
                'CPU ms / train step': '-' if not step else f'{1000 * step:.0f}'}


@dataclasses.dataclass
class Fitted:
    """A trained model and what its run cost."""

    model: nn.Module
    cpu_s_per_step: float     # median process time of one step (sums over threads)
    wall_s: float             # the whole run, sampling included
    losses: List[float]


def fit(task: Task, row: str, train: Any, budget: Budget, seed: int,
        progress: bool = False) -> Fitted:
    """Train ``row``'s model on ``train`` for ``budget.steps`` steps at ``seed``.

    The weights are drawn right after ``torch.manual_seed(seed)`` and the batches come from a
    generator seeded with ``seed``: two rows at one seed see the same batches, and a model's
    numbers do not depend on what the process ran before. Under ``torchrun`` each process
    draws the same batch, trains on its share of it (:meth:`Task.shard`) and DDP averages the
    gradients (:mod:`distributed`).

    The step time is process CPU time of the forward, backward and update (not the batch's
    sampling): unlike wall time it does not grow when other programs share the cores.
    """
    rank, world_size, device = distributed.setup()
    torch.manual_seed(seed)
    model = distributed.wrap(task.build(row), device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=budget.lr,
                                  weight_decay=budget.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=budget.lr,
                                                   total_steps=budget.steps,
                                                   pct_start=budget.warmup)
    generator = torch.Generator().manual_seed(seed)
    step_times: List[float] = []
    losses: List[float] = []
    start = time.time()
    bar = tqdm(range(budget.steps), desc=f'{row:>12} seed {seed}', leave=False,
               disable=not progress or rank > 0)
    model.train()
    for _ in bar:
        inputs, target = task.sample(train, budget.batch_size, generator)
        if world_size > 1:
            inputs, target = task.shard(inputs, target, rank, world_size)
        inputs, target = _to(inputs, device), _to(target, device)
        tick = time.process_time()
        loss = task.loss(model, row, inputs, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        step_times.append(time.process_time() - tick)
        losses.append(loss.item())
        bar.set_postfix(loss=f'{losses[-1]:.3f}')
    return Fitted(distributed.unwrap(model), statistics.median(step_times), time.time() - start,
                  losses)


def _rows(batch: Any, rank: int, world_size: int) -> Any:
    """This process's rows of a tensor batch (:meth:`Task.shard`'s default)."""
    if not isinstance(batch, torch.Tensor):
        raise TypeError("data-parallel training (torchrun) splits tensor batches by default; "
                        f"this task's batches are {type(batch).__name__}: give the task a "
                        "shard(inputs, target, rank, world_size) method")
    return batch[distributed.shard(torch.arange(batch.size(0)), rank, world_size)]


def _to(batch: Any, device: torch.device) -> Any:
    """A batch on the training device: tensors and PyG graphs (both have ``.to``)."""
    return batch.to(device) if hasattr(batch, 'to') else batch


def run(task: Task, rows: Sequence[str], budget: Budget, out: Optional[str] = None,
        progress: bool = False, data: Optional[Tuple[Any, Any]] = None,
        say: Callable[..., None] = print) -> Tuple[List[Dict[str, Any]], Dict[str, nn.Module],
                                                   Any]:
    """Every row at every seed of ``budget``; returns ``(results, models, test)``.

    ``results`` holds the trivial rows, then ``rows`` in order: one dict per row with its
    ``key``, ``model`` (the display name), ``seeds``, one list entry per seed for each score,
    ``params``, ``macs``, ``cpu_s_per_step`` (median over seeds), ``wall_s`` and
    ``loss_every_10_steps``. ``models`` holds each row's model of the first seed (for the
    figures). With ``out``, ``<out>/<task.name>.json`` is rewritten after every model, and
    ``<task.name>.md`` at the end. ``data`` reuses ``(train, test)`` already built.
    """
    unknown = [r for r in rows if r not in task.rows]
    if unknown:
        raise ValueError(f"unknown rows {unknown} for the {task.name} task; choose from "
                         f"{list(task.rows)}")
    rank = distributed.setup()[0]
    if rank > 0:
        say = lambda *args, **kwargs: None   # noqa: E731  (one voice under torchrun)
    train, test = data if data is not None else task.make_data()
    results: Dict[str, Dict[str, Any]] = {}
    for key, scores in task.trivial(train, test).items():
        results[key] = {'key': key, 'model': task.display(key), 'seeds': [],
                        **{k: [v] for k, v in scores.items()}, 'params': 0, 'macs': 0,
                        'cpu_s_per_step': None, 'wall_s': [], 'loss_every_10_steps': []}
    models: Dict[str, nn.Module] = {}
    step_times: Dict[str, List[float]] = {}
    # Seeds outside, rows inside: a run stopped early keeps every row of the seeds it finished.
    for seed in budget.seeds:
        for row in rows:
            fitted = fit(task, row, train, budget, seed, progress)
            scores = task.evaluate(fitted.model, row, test)
            if row not in results:
                model = fitted.model
                device = next(model.parameters()).device
                example = tuple(_to(a, device) for a in task.macs_input(test))
                results[row] = {'key': row, 'model': task.display(row), 'seeds': [],
                                **{k: [] for k in scores}, 'params': count_parameters(model),
                                'macs': count_macs(model, *example), 'cpu_s_per_step': None,
                                'wall_s': [], 'loss_every_10_steps': []}
                models[row] = model
            result = results[row]
            result['seeds'].append(seed)
            for k, v in scores.items():
                result[k].append(v)
            result['wall_s'].append(round(fitted.wall_s, 1))
            result['loss_every_10_steps'].append(fitted.losses[::10])
            step_times.setdefault(row, []).append(fitted.cpu_s_per_step)
            result['cpu_s_per_step'] = statistics.median(step_times[row])
            headline = next(iter(task.metrics))
            say(f"  {task.display(row):<36} seed {seed}: {task.metrics[headline]} "
                f"{scores[headline]:.2f} ({fitted.wall_s:.0f} s, "
                f"{1000 * fitted.cpu_s_per_step:.0f} CPU ms/step)", flush=True)
            if out is not None and rank == 0:
                write(task, list(results.values()), budget, out)
    ordered = [results[k] for k in results if k not in rows] + [results[r] for r in rows]
    if out is not None and rank == 0:
        write(task, ordered, budget, out)
    return ordered, models, test


def write(task: Task, results: List[Dict[str, Any]], budget: Budget, out: str) -> str:
    """``<out>/<task.name>.json`` (numbers, configuration, machine, commit) and ``.md``."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f'{task.name}.json')
    with open(path, 'w') as f:
        json.dump({'task': task.name, 'config': {**task.config(), **budget.describe()},
                   'commit': git_commit(), 'environment': run_environment(),
                   'rows': results}, f, indent=1)
    with open(os.path.join(out, f'{task.name}.md'), 'w') as f:
        f.write(table(task, results) + '\n')
    return path


def table(task: Task, results: List[Dict[str, Any]]) -> str:
    return markdown_table([task.columns(r) for r in results])


def git_commit() -> Optional[str]:
    """The checkout's commit, so a result file says which code made it."""
    try:
        done = subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__)))
    except OSError:
        return None
    return done.stdout.strip() or None

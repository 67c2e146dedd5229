"""DistributedDataParallel: two CPU processes (gloo) train like one process on the whole batch.

Each rank takes half of a batch (two of four feature maps, two of four point
clouds), DDP averages the gradients, and after three SGD steps every rank's
parameters must equal those of single-process training on the concatenated
batch. The models hold no batch statistics (LGA2d; LGA + LatentGNN with
norm='layer'), so the only coupling between ranks is the gradient average; the
per-rank losses are scaled so that this average is the gradient of the
single-process loss (maps: equal halves, so the mean of the ranks' means;
nodes: clouds of different sizes, so each rank sums and divides by the total
node count, times the world size that DDP divides by).
"""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import graphs
from graphattn import LGA, LGA2d, LatentGNN

WORLD_SIZE = 2
STEPS = 3
LR = 0.1


class NodeNet(torch.nn.Module):
    """LGA on each cloud's kNN graph, then LatentGNN over each cloud."""

    def __init__(self):
        super().__init__()
        self.lga = LGA(4, 6, num_layers=2, edge_dim=3, edge_encoder='mlp', fuse=True)
        self.latent = LatentGNN(4, [3], channel_stride=2, norm='layer')
        with torch.no_grad():
            self.latent.gamma.fill_(0.5)  # gamma = 0 would stop gradients into the block

    def forward(self, batch):
        x = self.lga(batch.x, batch.edge_index, batch.edge_attr)
        return self.latent(x, batch.batch, batch_size=batch.num_graphs)


def _models():
    torch.manual_seed(0)
    return LGA2d(3, 4, num_layers=2, fuse=True), NodeNet()


def _data():
    g = torch.Generator().manual_seed(1)
    maps = torch.randn(4, 3, 6, 5, generator=g)
    map_targets = torch.randn(4, 3, 6, 5, generator=g)
    clouds = []
    for n in (10, 14, 9, 13):
        data = graphs.point_cloud_to_data(torch.rand(n, 3, generator=g),
                                          torch.randn(n, 4, generator=g), k=5, loop=True)
        data.y = torch.randn(n, 4, generator=g)
        clouds.append(data)
    return maps, map_targets, clouds


def _batch(clouds):
    from torch_geometric.data import Batch
    return Batch.from_data_list(clouds)


def _train(grid, nodes, maps, map_targets, batch, total_nodes, scale):
    """STEPS of SGD on both models; node loss = scale * sum of squares / total_nodes."""
    opt = torch.optim.SGD(list(grid.parameters()) + list(nodes.parameters()), lr=LR)
    for _ in range(STEPS):
        opt.zero_grad()
        map_loss = (grid(maps) - map_targets).square().mean()
        node_loss = scale * (nodes(batch) - batch.y).square().sum() / total_nodes
        (map_loss + node_loss).backward()
        opt.step()


def _worker(rank, port, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=WORLD_SIZE)
    try:
        grid, nodes = _models()
        maps, map_targets, clouds = _data()
        total_nodes = sum(c.num_nodes for c in clouds)
        half = slice(2 * rank, 2 * rank + 2)
        ddp_grid = torch.nn.parallel.DistributedDataParallel(grid)
        ddp_nodes = torch.nn.parallel.DistributedDataParallel(nodes)
        _train(ddp_grid, ddp_nodes, maps[half], map_targets[half], _batch(clouds[half]),
               total_nodes, scale=WORLD_SIZE)
        torch.save({'grid': grid.state_dict(), 'nodes': nodes.state_dict()},
                   os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason='torch.distributed with gloo is not available')
def test_ddp_on_two_processes_equals_one_process_on_the_whole_batch(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=True)

    grid, nodes = _models()
    start = {k: v.clone() for k, v in grid.state_dict().items()}
    maps, map_targets, clouds = _data()
    _train(grid, nodes, maps, map_targets, _batch(clouds), sum(c.num_nodes for c in clouds),
           scale=1)
    assert any(not torch.equal(start[k], v) for k, v in grid.state_dict().items())
    expected = {'grid': grid.state_dict(), 'nodes': nodes.state_dict()}
    for rank in range(WORLD_SIZE):
        got = torch.load(os.path.join(tmp_path, f'rank{rank}.pt'))
        for model in ('grid', 'nodes'):
            assert got[model].keys() == expected[model].keys()
            for key, value in expected[model].items():
                assert torch.allclose(got[model][key], value, rtol=1e-5, atol=1e-6), \
                    (rank, model, key)


def test_convert_sync_batchnorm_keeps_state_dict_and_eval_outputs():
    # For multi-GPU training with norm='batch': every BatchNorm1d of LatentGNN
    # becomes a SyncBatchNorm (same keys, same eval function). Synchronised
    # training itself needs CUDA tensors (SyncBatchNorm refuses CPU ones when
    # world_size > 1), so it is not run here.
    from graphattn import LatentGNN2d
    torch.manual_seed(0)
    model = LatentGNN2d(8, [4], channel_stride=2, graph_conv=True)
    with torch.no_grad():
        model.gamma.fill_(1.0)
    x = torch.randn(2, 8, 5, 5)
    model(x)  # one training step of the running statistics
    model.eval()
    expected, keys = model(x), list(model.state_dict())
    converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert not any(type(m) is torch.nn.BatchNorm1d for m in converted.modules())
    assert sum(isinstance(m, torch.nn.SyncBatchNorm) for m in converted.modules()) == 6
    assert list(converted.state_dict()) == keys
    assert torch.equal(converted.eval()(x), expected)


def _cloud_task():
    """The cortex task on a toy cloud, recording every batch it trains on (after sharing)."""
    import experiment
    from datasets import Cortex
    from segment_cortex import CortexTask

    class Recording(CortexTask):
        def __init__(self):
            super().__init__(num_points=40, k=4)
            self.trained_on = []

        def loss(self, model, row, batch, y):
            self.trained_on.append([(d.pos, d.y) for d in batch.to_data_list()])
            return super().loss(model, row, batch, y)

    g = torch.Generator().manual_seed(0)
    cloud = Cortex(pos=torch.randn(160, 3, generator=g) * 40, faces=torch.zeros(0, 3),
                   labels=torch.randint(-1, 4, (160,), generator=g), hemisphere='toy')
    return Recording(), cloud, experiment.Budget(STEPS, 4)


def _cloud_worker(rank, port, out_dir):
    import experiment
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE))
    try:
        task, cloud, budget = _cloud_task()
        fitted = experiment.fit(task, 'lga', cloud, budget, seed=0)
        weights = {k: v.detach() for k, v in fitted.model.named_parameters()}
        torch.save({'batches': task.trained_on, 'params': weights},
                   os.path.join(out_dir, f'cloud{rank}.pt'))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason='torch.distributed with gloo is not available')
def test_a_point_cloud_task_trains_data_parallel_on_whole_graphs(tmp_path):
    """experiment.fit under two processes for a task whose batches are PyG graphs: the ranks
    train on disjoint halves of the one-process batch, whole graphs, and DDP keeps their
    weights equal (a rank trained alone on its half would drift from the other)."""
    import experiment
    mp.spawn(_cloud_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    task, cloud, budget = _cloud_task()
    experiment.fit(task, 'lga', cloud, budget, seed=0)   # the one-process batches
    ranks = [torch.load(os.path.join(tmp_path, f'cloud{r}.pt')) for r in range(WORLD_SIZE)]
    for step, whole in enumerate(task.trained_on):
        shares = [ranks[r]['batches'][step] for r in range(WORLD_SIZE)]
        assert all(len(share) == len(whole) // WORLD_SIZE for share in shares)
        for r, share in enumerate(shares):
            for (pos, y), (pos_, y_) in zip(share, whole[r::WORLD_SIZE]):
                assert torch.equal(pos, pos_) and torch.equal(y, y_)
    params = [r['params'] for r in ranks]
    torch.manual_seed(0)                     # fit draws the weights right after this
    start = dict(task.build('lga').named_parameters())
    # The weights, not the batch norms' running statistics: DDP copies rank 0's buffers to
    # every rank before each forward, so after the last one each rank keeps its own.
    assert params[0].keys() == params[1].keys() == start.keys()
    for key, value in params[0].items():
        assert torch.equal(value, params[1][key]), key
    assert any(not torch.equal(v, start[k]) for k, v in params[0].items())

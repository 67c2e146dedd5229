"""LatentGNN's node-level defaults (issue 17): a norm that survives one cloud per
step, a channel stride that leaves enough channels, state dicts of the old defaults,
and PyG Data/Batch input."""
import pytest
import torch
from torch_geometric.data import Batch, Data

from graphattn import LatentGNN, LatentGNN2d
from graphattn.latentgnn_base import default_channel_stride


def _cloud(g, n=128, c=16):
    """One cloud's features: their mean and scale differ from cloud to cloud, as the
    features of different point clouds (or crops of one) do."""
    shift = torch.randn(1, c, generator=g) * 2
    scale = torch.rand(1, c, generator=g) * 2 + 0.5
    return torch.randn(n, c, generator=g) * scale + shift


def _train_one_cloud_at_a_time(model, steps=20, seed=0):
    """A few Adam steps, one cloud per step, towards a target that needs each
    cloud's global context (its mean), so that gamma leaves 0."""
    g = torch.Generator().manual_seed(seed)
    target = torch.randn(16, 16, generator=g)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        x = _cloud(g)
        loss = ((model(x) - x.mean(0, keepdim=True) @ target) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return _cloud(g)


def _eval_drift(model, x):
    """|eval - train| / |train| of the block's contribution on a held-out cloud."""
    with torch.no_grad():
        model.train()
        train = model(x) - x
        model.eval()
        evaluated = model(x) - x
    assert train.norm() > 1e-3   # the block learned something (gamma != 0)
    return float((evaluated - train).norm() / train.norm())


def test_eval_output_stays_close_to_train_output_with_the_default_norm():
    """The issue's test: after a few steps on one cloud at a time, the node-level
    block's eval output stays close to its train-mode output."""
    torch.manual_seed(0)
    model = LatentGNN(16, [8], channel_stride=2)
    assert model.norm == 'layer'
    x = _train_one_cloud_at_a_time(model)
    assert _eval_drift(model, x) < 0.05


def test_the_old_default_drifts():
    """The same run with norm='batch' (the default up to 0.2): the running statistics
    of many clouds are not the statistics of one, and eval moves far from train."""
    torch.manual_seed(0)
    model = LatentGNN(16, [8], channel_stride=2, norm='batch')
    x = _train_one_cloud_at_a_time(model)
    assert _eval_drift(model, x) > 0.5


def test_defaults_per_class():
    assert LatentGNN(64, [8]).norm == 'layer'
    assert LatentGNN2d(64, [8]).norm == 'batch'
    assert isinstance(LatentGNN(64, [8]).up_norm, torch.nn.LayerNorm)
    assert isinstance(LatentGNN2d(64, [8]).up_norm, torch.nn.BatchNorm1d)
    # the repr names a norm only when it is not the class's default
    assert 'norm' not in repr(LatentGNN(64, [8])) and 'norm' not in repr(LatentGNN2d(64, [8]))
    assert "norm='batch'" in repr(LatentGNN(64, [8], norm='batch'))
    assert "norm='layer'" in repr(LatentGNN2d(64, [8], norm='layer'))


@pytest.mark.parametrize('channels,stride', [(2048, 4), (256, 4), (32, 4), (48, 4), (24, 3),
                                             (16, 2), (20, 2), (12, 1), (8, 1), (5, 1), (1, 1)])
def test_default_channel_stride(channels, stride):
    assert default_channel_stride(channels) == stride
    model = LatentGNN(channels, [4])
    assert model.channel_stride == stride
    assert model.hidden_channels == channels // stride
    assert model.hidden_channels >= min(8, channels)
    # an explicit stride is used as given
    if channels % 4 == 0:
        assert LatentGNN(channels, [4], channel_stride=4).hidden_channels == channels // 4


def test_default_channel_stride_checks_its_argument():
    with pytest.raises(ValueError, match="'in_channels'"):
        default_channel_stride(0)


def test_state_dict_of_the_old_norm_default_loads_with_norm_batch():
    old = LatentGNN(32, [6], norm='batch')   # what LatentGNN(32, [6]) built up to 0.2
    with torch.no_grad():
        old.gamma.fill_(0.5)
        old.up_norm.running_mean.normal_()
    state = old.state_dict()
    with pytest.warns(UserWarning, match="build it with norm='batch'"), \
            pytest.raises(RuntimeError, match='running_mean'):
        LatentGNN(32, [6]).load_state_dict(state)
    new = LatentGNN(32, [6], norm='batch')
    new.load_state_dict(state)
    x = torch.randn(10, 32)
    assert torch.equal(old.eval()(x), new.eval()(x))
    # the reverse direction names the problem too
    with pytest.warns(UserWarning, match='without running statistics'), \
            pytest.raises(RuntimeError, match='Missing key'):
        LatentGNN(32, [6], norm='batch').load_state_dict(LatentGNN(32, [6]).state_dict())
    # non-strict loading stays possible, with the warning
    with pytest.warns(UserWarning, match="norm='batch'"):
        result = LatentGNN(32, [6]).load_state_dict(state, strict=False)
    assert 'up_norm.running_mean' in result.unexpected_keys


def test_state_dict_of_the_old_stride_default_names_the_stride():
    old = LatentGNN(16, [6], channel_stride=4)   # the 0.2 default at C = 16
    with pytest.raises(RuntimeError, match='build it with channel_stride=4'):
        LatentGNN(16, [6]).load_state_dict(old.state_dict())
    LatentGNN(16, [6], channel_stride=4).load_state_dict(old.state_dict())


def test_state_dict_hint_inside_a_bigger_model():
    old = torch.nn.Sequential(torch.nn.Linear(3, 32), LatentGNN(32, [4], norm='batch'))
    new = torch.nn.Sequential(torch.nn.Linear(3, 32), LatentGNN(32, [4]))
    with pytest.warns(UserWarning, match="norm='batch'"), pytest.raises(RuntimeError):
        new.load_state_dict(old.state_dict())


def test_data_and_batch_input():
    torch.manual_seed(0)
    model = LatentGNN(16, [4]).eval()
    with torch.no_grad():
        model.gamma.fill_(1.0)
    a, b = Data(x=torch.randn(5, 16)), Data(x=torch.randn(7, 16))
    batch = Batch.from_data_list([a, b])
    expected = model(batch.x, batch.batch)
    torch.testing.assert_close(model(batch), expected)
    torch.testing.assert_close(model(a), model(a.x))
    # explicit arguments win over the Batch's fields
    one_graph = model(batch, torch.zeros(12, dtype=torch.long))
    torch.testing.assert_close(one_graph, model(batch.x))
    # the Batch's graph count is used: a trailing empty graph is allowed
    empty = Batch.from_data_list([a, Data(x=torch.zeros(0, 16))])
    assert empty.num_graphs == 2
    out, assignments = model(empty, return_assignments=True)
    torch.testing.assert_close(out, model(a.x))
    assert assignments[0].latent_adj.shape[0] == 2
    with pytest.raises(ValueError, match="without node features"):
        model(Data(pos=torch.randn(4, 3)))
    with pytest.raises(ValueError, match="'x'"):
        model(Data(x=torch.randn(4, 3)))


def test_data_input_from_point_cloud_to_data():
    import graphs
    pos = torch.randn(20, 3)
    data = graphs.point_cloud_to_data(pos, torch.randn(20, 16), k=4,
                                      batch=torch.tensor([0] * 8 + [1] * 12))
    model = LatentGNN(16, [4]).eval()
    torch.testing.assert_close(model(data), model(data.x, data.batch))

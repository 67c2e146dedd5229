"""LatentGNN2d against a reference written from the equations in the authors'
tensor layout: 1x1 convs on (B, C, H, W), affinities as (B, d, N), bmm."""
import math

import pytest
import torch
import torch.nn.functional as F

from graphattn import LatentGNN, LatentGNN2d
from graphattn.latentgnn_official import latentgnn_num_parameters

C, STRIDE = 16, 4


def l2(x, dim):
    return x / x.norm(dim=dim, keepdim=True).clamp_min(1e-12)


def conv_norm(x, sd, name, training, relu=False, frozen=False):
    """1x1 conv, then BatchNorm2d (batch stats in training) or a frozen affine."""
    y = F.conv2d(x, sd[f'{name}.0.weight'])
    mean, var = sd[f'{name}.1.running_mean'], sd[f'{name}.1.running_var']
    w, b = sd[f'{name}.1.weight'], sd[f'{name}.1.bias']
    if frozen:
        scale = w / var.sqrt()
        y = y * scale.view(1, -1, 1, 1) + (b - mean * scale).view(1, -1, 1, 1)
    else:
        y = F.batch_norm(y, mean, var, w, b, training=training, momentum=0.1, eps=1e-5)
    return F.relu(y) if relu else y


def reference(x, sd, mode, num_kernels, graph_conv, residual=True, training=True,
              frozen=False):
    B, _, H, W = x.shape
    N = H * W
    kw = dict(training=training, frozen=frozen)
    if mode == 'asymmetric':
        xv = l2(conv_norm(x, sd, 'down_channel_v2l', **kw), 1)
        xl = l2(conv_norm(x, sd, 'down_channel_l2v', **kw), 1)
    else:
        xv = l2(conv_norm(x, sd, 'down_channel', **kw), 1)
    outs = []
    for k in range(num_kernels):
        p = f'LatentGNN_Kernel_{k}.'
        if mode == 'asymmetric':
            psi_v = l2(conv_norm(xv, sd, p + 'psi_v2l', relu=True, **kw).view(B, -1, N), 2)
            psi_l = l2(conv_norm(xl, sd, p + 'psi_l2v', relu=True, **kw).view(B, -1, N), 1)
        else:
            psi_v = psi_l = l2(conv_norm(xv, sd, p + 'psi', relu=True, **kw).view(B, -1, N), 1)
        z = torch.bmm(psi_v, xv.view(B, -1, N).transpose(1, 2))          # (B, d, C')
        zn = l2(z, 2)
        z = torch.bmm(torch.softmax(torch.bmm(zn, zn.transpose(1, 2)), -1), z)
        v = torch.bmm(z.transpose(1, 2), psi_l).view(B, -1, H, W)         # (B, C', H, W)
        if graph_conv:
            v = conv_norm(v, sd, p + 'GraphConvWeight', relu=True, **kw)
        outs.append(v)
    y = conv_norm(torch.cat(outs, 1), sd, 'up_channel', **kw)
    return x + sd['gamma'] * y if residual else y


def official_state_dict(mode, dims, graph_conv, seed=0, channels=C, stride=STRIDE):
    g = torch.Generator().manual_seed(seed)
    c = channels // stride
    sd = {}

    def block(name, cin, cout):
        sd[f'{name}.0.weight'] = torch.randn(cout, cin, 1, 1, generator=g,
                                             dtype=torch.float64) / math.sqrt(cin)
        sd[f'{name}.1.weight'] = 1 + 0.3 * torch.randn(cout, generator=g, dtype=torch.float64)
        sd[f'{name}.1.bias'] = 0.2 * torch.randn(cout, generator=g, dtype=torch.float64)
        sd[f'{name}.1.running_mean'] = 0.1 * torch.randn(cout, generator=g, dtype=torch.float64)
        sd[f'{name}.1.running_var'] = 0.5 + torch.rand(cout, generator=g, dtype=torch.float64)
        sd[f'{name}.1.num_batches_tracked'] = torch.tensor(7)

    if mode == 'asymmetric':
        block('down_channel_v2l', channels, c)
        block('down_channel_l2v', channels, c)
    else:
        block('down_channel', channels, c)
    for k, d in enumerate(dims):
        names = ['psi_v2l', 'psi_l2v'] if mode == 'asymmetric' else ['psi']
        for name in names:
            block(f'LatentGNN_Kernel_{k}.{name}', c, d)
        if graph_conv:
            block(f'LatentGNN_Kernel_{k}.GraphConvWeight', c, c)
    block('up_channel', c * len(dims), channels)
    sd['gamma'] = torch.tensor([0.7], dtype=torch.float64)
    return sd


DIMS = {1: [5], 2: [5, 3], 3: [4, 6, 3]}


@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('graph_conv', [False, True])
@pytest.mark.parametrize('num_kernels', [1, 2, 3])
@pytest.mark.parametrize('mode', ['asymmetric', 'symmetric'])
def test_equals_authors_computation(mode, num_kernels, graph_conv, training):
    dims = DIMS[num_kernels]
    sd = official_state_dict(mode, dims, graph_conv, seed=num_kernels)
    model = LatentGNN2d(C, dims, channel_stride=STRIDE, num_kernels=num_kernels, mode=mode,
                        graph_conv=graph_conv).double()
    model.load_official_state_dict(sd)
    model.train(training)
    x = torch.randn(2, C, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    ref_sd = {k: v.clone() for k, v in sd.items()}
    expected = reference(x, ref_sd, mode, num_kernels, graph_conv, training=training)
    out = model(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    # batch-norm running statistics move exactly as BatchNorm2d's
    ours = model.state_dict()
    for key, value in LatentGNN2d.convert_official_state_dict(ref_sd).items():
        if key.endswith('num_batches_tracked'):  # F.batch_norm does not count steps
            continue
        torch.testing.assert_close(ours[key].double(), value.double(), atol=1e-10, rtol=0)


@pytest.mark.parametrize('mode', ['asymmetric', 'symmetric'])
def test_message_passing_path_equals_authors(mode):
    sd = official_state_dict(mode, [5, 3], True, seed=11)
    model = LatentGNN2d(C, [5, 3], channel_stride=STRIDE, num_kernels=2, mode=mode,
                        graph_conv=True, path='message_passing').double()
    model.load_official_state_dict(sd)
    x = torch.randn(2, C, 3, 3, dtype=torch.float64)
    expected = reference(x, {k: v.clone() for k, v in sd.items()}, mode, 2, True)
    torch.testing.assert_close(model(x), expected, atol=1e-6, rtol=0)


def test_node_level_module_loads_the_same_weights():
    sd = official_state_dict('asymmetric', [5], True, seed=3)
    # the authors' BatchNorm2d weights: norm='batch' (LatentGNN2d's default, not LatentGNN's)
    node = LatentGNN(C, [5], channel_stride=STRIDE, graph_conv=True, norm='batch').double()
    node.load_official_state_dict(sd)
    x = torch.randn(3, C, 2, 4, dtype=torch.float64)
    expected = reference(x, {k: v.clone() for k, v in sd.items()}, 'asymmetric', 1, True)
    nodes = x.permute(0, 2, 3, 1).reshape(-1, C)
    batch = torch.arange(3).repeat_interleave(8)
    out = node(nodes, batch).view(3, 2, 4, C).permute(0, 3, 1, 2)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_without_residual_and_frozen_norm():
    sd = official_state_dict('asymmetric', [5], True, seed=4)
    model = LatentGNN2d(C, [5], channel_stride=STRIDE, graph_conv=True, residual=False,
                        norm='frozen').double()
    model.load_official_state_dict(sd)  # num_batches_tracked is accepted and dropped
    assert sum(p.numel() for p in model.parameters()) == latentgnn_num_parameters(
        C, [5], STRIDE, graph_conv=True, norm='frozen')
    x = torch.randn(2, C, 3, 2, dtype=torch.float64)
    expected = reference(x, sd, 'asymmetric', 1, True, residual=False, frozen=True)
    torch.testing.assert_close(model.train()(x), expected, atol=1e-6, rtol=0)


def test_official_keys_with_dataparallel_prefix_and_bad_keys():
    sd = official_state_dict('symmetric', [4], False)
    model = LatentGNN2d(C, [4], channel_stride=STRIDE, mode='symmetric').double()
    model.load_official_state_dict({'module.' + k: v for k, v in sd.items()})
    assert torch.equal(model.down.weight, sd['down_channel.0.weight'].view(C // STRIDE, C))
    with pytest.raises(KeyError, match='unexpected key'):
        model.load_official_state_dict({**sd, 'something.else': torch.zeros(1)})
    with pytest.raises(RuntimeError):  # a missing key is reported by load_state_dict
        model.load_official_state_dict({k: v for k, v in sd.items() if k != 'gamma'})


def test_identity_at_init_and_shapes():
    model = LatentGNN2d(C, [6], channel_stride=STRIDE, graph_conv=True)
    x = torch.randn(2, C, 5, 3)
    assert torch.equal(model(x), x)
    assert model.kernels[0].graph_conv.weight.std() < 0.05
    with torch.no_grad():
        model.gamma.fill_(1.0)
    out = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, model(x))
    assert out.shape == x.shape
    assert torch.equal(model(x[:0]), x[:0])


def test_fused_equals_message_passing_and_sparse():
    model = LatentGNN2d(C, [5, 4], channel_stride=STRIDE, num_kernels=2, graph_conv=True)
    model = model.double().eval()
    with torch.no_grad():
        model.gamma.fill_(1.0)
    x = torch.randn(2, C, 4, 3, dtype=torch.float64)
    fused, a_f = model(x, path='fused', return_assignments=True)
    mp, a_m = model(x, path='message_passing', return_assignments=True)
    torch.testing.assert_close(fused, mp, atol=1e-5, rtol=0)
    for f, m in zip(a_f, a_m):
        assert torch.equal(f.v2l_edge_index, m.v2l_edge_index)
        torch.testing.assert_close(f.v2l_weight, m.v2l_weight)
        torch.testing.assert_close(f.l2v_weight, m.l2v_weight)
    # top-m with m = d keeps every edge: the complete graph again
    full = LatentGNN2d(C, [4, 4], channel_stride=STRIDE, num_kernels=2).double().eval()
    with torch.no_grad():
        full.gamma.fill_(1.0)
    sparse = LatentGNN2d(C, [4, 4], channel_stride=STRIDE, num_kernels=2,
                         sparse_top_m=4).double().eval()
    sparse.load_state_dict(full.state_dict())
    torch.testing.assert_close(sparse(x), full(x), atol=1e-5, rtol=0)

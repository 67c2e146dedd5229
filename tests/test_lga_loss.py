import math

import pytest
import torch

import graphs
from graphattn import LGALoss, patch_labels
from graphattn.lga_loss import pair_divergence

DT = torch.float64


def test_patch_labels_majority_ties_and_ignore():
    lm = torch.tensor([[1, 1, 2, 2],
                       [1, 3, 2, -100],
                       [0, 5, -100, -100],
                       [5, 0, -100, -100]])
    out = patch_labels(lm, (2, 2))
    # top-left {1,1,1,3} -> 1; top-right {2,2,2,ign} -> 2;
    # bottom-left {0,5,5,0} tie -> 0 (smallest); bottom-right all ignored -> ignore.
    assert torch.equal(out, torch.tensor([[1, 2], [0, -100]]))
    batch = torch.stack([lm, torch.full_like(lm, 7)])
    out = patch_labels(batch, 2)
    assert out.shape == (2, 2, 2) and bool((out[1] == 7).all())
    # Non-square patches (1 x 2) and a custom ignore_index.
    lm = torch.tensor([[4, 4, 255, 1], [2, 255, 3, 3]])
    assert torch.equal(patch_labels(lm, (2, 2), ignore_index=255),
                       torch.tensor([[4, 1], [2, 3]]))
    # Same size: identity.
    assert torch.equal(patch_labels(lm, (2, 4), ignore_index=255), lm)


def test_patch_labels_bad_input():
    with pytest.raises(ValueError, match="'label_map'.*'grid_size'"):
        patch_labels(torch.zeros(1, 5, 4, dtype=torch.long), (2, 2))
    with pytest.raises(TypeError, match="'label_map'"):
        patch_labels(torch.zeros(4, 4), (2, 2))
    with pytest.raises(ValueError, match="'label_map'"):
        patch_labels(torch.zeros(4, dtype=torch.long), (2, 2))
    with pytest.raises(ValueError, match="'grid_size'"):
        patch_labels(torch.zeros(4, 4, dtype=torch.long), (2, 0))
    with pytest.raises(ValueError, match="negative"):
        patch_labels(torch.full((4, 4), -1), (2, 2))


def test_divergences():
    torch.manual_seed(0)
    p = torch.log_softmax(torch.randn(5, 4, dtype=DT), -1)
    q = torch.log_softmax(torch.randn(5, 4, dtype=DT), -1)
    kl = lambda a, b: (a.exp() * (a - b)).sum(-1)
    assert torch.allclose(pair_divergence(p, q), kl(p, q) + kl(q, p))
    m = torch.log((p.exp() + q.exp()) / 2)
    assert torch.allclose(pair_divergence(p, q, 'js'), 0.5 * kl(p, m) + 0.5 * kl(q, m))
    assert torch.allclose(pair_divergence(p, p), torch.zeros(5, dtype=DT))
    with pytest.raises(ValueError, match="'divergence'"):
        pair_divergence(p, q, 'hellinger')


def _separated_map(labels, scale=20.0):
    """One distribution per class, far apart: one-hot logits scaled."""
    return (torch.nn.functional.one_hot(labels, 4).to(DT) * scale).permute(0, 3, 1, 2)


@pytest.mark.parametrize('divergence', ['sym_kl', 'js'])
def test_zero_when_classes_are_separated(divergence):
    labels = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]])
    latent = _separated_map(patch_labels(labels, 2))  # (1, 4, 2, 2)
    loss = LGALoss(divergence=divergence, num_random_pairs=10)(latent, labels)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_positive_with_gradients():
    torch.manual_seed(0)
    labels = torch.randint(0, 3, (2, 8, 8))
    latent = torch.randn(2, 5, 4, 4, dtype=DT, requires_grad=True)
    for div in ('sym_kl', 'js'):
        loss = LGALoss(divergence=div)(latent, labels)
        assert loss.item() > 0
        grad, = torch.autograd.grad(loss, latent)
        assert bool(grad.abs().sum() > 0)
    # Same label everywhere but different distributions: positive.
    loss = LGALoss()(latent, torch.zeros(2, 4, 4, dtype=torch.long))
    assert loss.item() > 0
    # Different labels with identical distributions: margin per pair.
    same = torch.zeros(1, 5, 1, 2, dtype=DT)
    loss = LGALoss(margin=0.7)(same, torch.tensor([[[0, 1]]]))
    assert loss.item() == pytest.approx(0.7)


def test_hand_computed_value():
    latent = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], dtype=DT)
    ei = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    y = torch.tensor([0, 0, 1])
    lp = torch.log_softmax(latent, -1)
    d01 = float(((lp[0].exp() - lp[1].exp()) * (lp[0] - lp[1])).sum())
    expected = (2 * d01 + 2 * max(0.0, 1.0 - 0.0)) / 4
    assert (LGALoss()(latent, y, ei)).item() == pytest.approx(expected)
    assert (LGALoss(reduction='sum')(latent, y, ei)).item() == pytest.approx(4 * expected)


def test_ignore_index_respected():
    torch.manual_seed(0)
    labels = torch.randint(0, 2, (1, 4, 4))
    labels[0, :2, :2] = -100  # patch (0, 0) fully ignored
    latent = torch.randn(1, 3, 2, 2, dtype=DT, requires_grad=True)
    loss_fn = LGALoss(num_random_pairs=0)
    grad, = torch.autograd.grad(loss_fn(latent, labels), latent)
    assert bool((grad[0, :, 0, 0] == 0).all())
    assert bool(grad[0, :, 1, 1].abs().sum() > 0)
    # Changing the ignored node's features does not change the loss.
    other = latent.detach().clone()
    other[0, :, 0, 0] += 5
    assert (loss_fn(other, labels)).item() == pytest.approx((loss_fn(latent, labels)).item())
    # All ignored: zero and differentiable.
    loss = loss_fn(latent, torch.full((1, 4, 4), -100))
    assert loss.item() == 0.0
    loss.backward()


def test_node_mode_with_batch_and_random_pairs():
    torch.manual_seed(0)
    pos = torch.rand(14, 3)
    batch = torch.tensor([0] * 6 + [1] * 8)
    ei = graphs.knn_graph(pos, 3, batch)
    y = torch.randint(0, 3, (14,))
    latent = torch.randn(14, 4, requires_grad=True)
    loss = LGALoss(num_random_pairs=20)(latent, y, ei, batch)
    assert loss.item() > 0
    loss.backward()
    # Random pairs only, no edges.
    assert (LGALoss(num_random_pairs=50)(latent, y, batch=batch)).item() > 0
    # Separated distributions: zero with edges and random pairs.
    sep = torch.nn.functional.one_hot(y, 4).float() * 30
    assert (LGALoss(num_random_pairs=20)(sep, y, ei, batch)).item() == pytest.approx(0, abs=1e-5)


def test_bad_input():
    with pytest.raises(ValueError, match="'divergence'"):
        LGALoss(divergence='kl')
    with pytest.raises(ValueError, match="'margin'"):
        LGALoss(margin=1.0, divergence='js')
    with pytest.raises(ValueError, match="'reduction'"):
        LGALoss(reduction='none')
    loss = LGALoss()
    with pytest.raises(ValueError, match="'target'"):
        loss(torch.randn(2, 3, 4, 4), torch.zeros(2, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="'label_map'"):
        loss(torch.randn(1, 3, 4, 4), torch.zeros(1, 6, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="'edge_index'"):
        loss(torch.randn(5, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="'target'"):
        loss(torch.randn(5, 3), torch.zeros(4, dtype=torch.long), torch.zeros(2, 1).long())
    with pytest.raises(ValueError, match="'input'"):
        loss(torch.randn(5), torch.zeros(5, dtype=torch.long))
    assert math.isclose(LGALoss(divergence='js').margin, 0.5)


def test_random_pairs_need_a_sorted_integer_batch():
    from graphattn import LGALoss
    loss = LGALoss(num_random_pairs=4)
    latent, target = torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match="'batch' must be sorted"):
        loss(latent, target, batch=torch.tensor([1, 0, 1, 0, 1, 0]))
    with pytest.raises(TypeError, match="'batch' must be an integer tensor"):
        loss(latent, target, batch=torch.zeros(6))
    with pytest.raises(ValueError, match="'batch' must hold non-negative"):
        loss(latent, target, batch=torch.tensor([-1, 0, 0, 0, 0, 0]))


def test_temperature_equals_scaling_the_latent():
    torch.manual_seed(0)
    latent = torch.rand(2, 6, 4, 4) * 0.05                     # small post-ReLU-like values
    target = torch.randint(0, 3, (2, 16, 16))
    cold = LGALoss(temperature=0.02)(latent, target)
    torch.testing.assert_close(cold, LGALoss()(latent / 0.02, target))
    nodes, labels = latent.flatten(2).transpose(1, 2).reshape(-1, 6), torch.randint(0, 3, (32,))
    edge_index = torch.randint(0, 32, (2, 40))
    torch.testing.assert_close(LGALoss(temperature=0.5)(nodes, labels, edge_index),
                               LGALoss()(nodes / 0.5, labels, edge_index))


def test_temperature_sharpens_a_vanishing_gradient():
    """On near-uniform distributions the loss barely moves F_out; a low temperature fixes it."""
    torch.manual_seed(0)
    latent = (torch.rand(1, 6, 4, 4) * 0.05).requires_grad_()
    target = torch.randint(0, 3, (1, 16, 16))
    grads = []
    for tau in (1.0, 0.02):
        (g,) = torch.autograd.grad(LGALoss(temperature=tau)(latent, target), latent)
        grads.append(g.abs().sum())
    assert grads[1] > 100 * grads[0]


@pytest.mark.parametrize('tau', [0, -1.0, float('nan'), 'cold'])
def test_temperature_must_be_positive(tau):
    with pytest.raises((TypeError, ValueError), match='temperature'):
        LGALoss(temperature=tau)

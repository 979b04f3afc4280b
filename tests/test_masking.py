"""Masking schedules: rates, ranges, loss weights, and the loss on hand-built cases."""

import math

import pytest
import torch

from diffusion_lab.masking import (
    CosineSchedule,
    LogLinearSchedule,
    SeedDiscreteSchedule,
    rate_buckets,
    token_nll,
)


@pytest.mark.parametrize("schedule", [LogLinearSchedule(0.2, 0.7), CosineSchedule(0.2, 0.7), SeedDiscreteSchedule(0.2, 0.7)])
def test_rates_stay_in_range(schedule):
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        rates = schedule.rate(schedule.sample_t(64, g))
        assert rates.min() >= 0.2 - 1e-6 and rates.max() <= 0.7 + 1e-6


def test_loglinear_is_antithetic_and_weight_is_inverse_t():
    s = LogLinearSchedule(1e-3, 1.0)
    t = s.sample_t(8, torch.Generator().manual_seed(1))
    gaps = torch.sort(t).values.diff()
    assert torch.allclose(gaps, torch.full_like(gaps, (1 - 1e-3) / 8), atol=1e-5)  # evenly spread
    assert torch.allclose(s.loss_weight(torch.tensor([0.5, 0.25])), torch.tensor([2.0, 4.0]))


def test_cosine_weight_is_dm_over_m():
    s = CosineSchedule()
    t = torch.tensor([0.3], requires_grad=True)
    m = s.rate(t)
    (dm,) = torch.autograd.grad(m.sum(), t)
    assert torch.allclose(s.loss_weight(t.detach()), dm / m.detach(), rtol=1e-4)
    assert abs(s.inverse_rate(float(s.rate(torch.tensor(0.4)))) - 0.4) < 1e-6


def test_seed_discrete_one_rate_per_batch_from_tenths():
    s = SeedDiscreteSchedule(0.3, 0.5)
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(30):
        t = s.sample_t(5, g)
        assert len(set(t.tolist())) == 1
        seen.add(round(t[0].item(), 2))
    assert seen == {0.3, 0.4, 0.5}


def test_bad_rates_raise():
    with pytest.raises(ValueError, match="min_rate"):
        LogLinearSchedule(0.0, 1.0)
    with pytest.raises(ValueError, match="max_rate"):
        LogLinearSchedule(0.5, 1.5)


def test_loglinear_loss_hand_built():
    """Two sequences, t = (0.5, 0.25): loss = (2 * nll_masked_0 + 4 * nll_masked_1) / real tokens."""
    vocab, ids = 5, torch.tensor([[1, 2, 3, 0], [2, 2, 1, 4]])
    att = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    logits = torch.randn(2, 4, vocab, generator=torch.Generator().manual_seed(0))
    masked = torch.tensor([[True, False, True, False], [False, True, False, False]])
    nll = -torch.log_softmax(logits, -1).gather(-1, ids[..., None])[..., 0]
    expected = (2 * (nll[0, 0] + nll[0, 2]) + 4 * nll[1, 1]) / 7  # 7 real tokens, not 3 masked
    got = LogLinearSchedule().loss(logits, ids, att, masked, torch.tensor([0.5, 0.25]))
    assert torch.allclose(got, expected)
    # the original recipe: plain mean over masked tokens
    got_seed = SeedDiscreteSchedule().loss(logits, ids, att, masked, torch.tensor([0.5, 0.5]))
    assert torch.allclose(got_seed, (nll[0, 0] + nll[0, 2] + nll[1, 1]) / 3)
    assert torch.allclose(token_nll(logits, ids), nll)


def test_q_xt_masks_at_rate_and_keeps_prefix_and_padding():
    s = LogLinearSchedule(prefix_keep=2)
    ids = torch.randint(5, 50, (200, 40))
    att = torch.ones_like(ids)
    att[:, 30:] = 0
    x_t, masked = s.q_xt(ids, att, torch.full((200,), 0.3), mask_token_id=3, generator=torch.Generator().manual_seed(0))
    assert not masked[:, :2].any() and not masked[:, 30:].any()
    assert (x_t[masked] == 3).all() and (x_t[~masked] == ids[~masked]).all()
    assert abs(masked[:, 2:30].float().mean().item() - 0.3) < 0.02


def test_rate_buckets():
    assert rate_buckets(torch.tensor([0.01, 0.1, 0.11, 0.95, 1.0])).tolist() == pytest.approx([0.1, 0.1, 0.2, 1.0, 1.0])
    assert math.isclose(float(rate_buckets(torch.tensor([0.55]))), 0.6, rel_tol=1e-6)

"""Metric functions checked against hand-computed values (diffusion_lab.metrics)."""

import json
import math

import pytest
import torch
from PIL import Image

from diffusion_lab.metrics import (
    apply_bias_temperature,
    apply_temperature,
    classification_metrics,
    discordant_counts,
    fit_bias_temperature,
    fit_temperature,
    mcnemar_pvalue,
    mcnemar_pvalue_from_counts,
    mean_ci95,
    nll,
    reliability_diagram,
    wilson_interval,
)


def test_wilson_interval_known_values():
    # 8/10 at 95%: the textbook Wilson interval (0.4902, 0.9433); Wald would give (0.552, 1.048)
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.49016, abs=1e-4)
    assert high == pytest.approx(0.94332, abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.27753, abs=1e-4)
    with pytest.raises(ValueError):
        wilson_interval(1, 0)


def test_three_item_nll_brier_accuracy_by_hand():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
    labels = torch.tensor([0, 1, 0])
    m = classification_metrics(probs, labels)
    assert m["n"] == 3
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["nll"] == pytest.approx(-(math.log(0.7) + math.log(0.8) + math.log(0.3)) / 3)
    # (0.09 + 0.04 + 0.01) + (0.01 + 0.04 + 0.01) + (0.49 + 0.09 + 0.16) = 0.94
    assert m["brier"] == pytest.approx(0.94 / 3)
    assert m["confusion_matrix"] == [[1, 0, 1], [0, 1, 0], [0, 0, 0]]
    assert m["accuracy_ci95"] == pytest.approx(list(wilson_interval(2, 3)))
    json.dumps(m)  # plain Python types only


def test_nll_is_finite_for_a_zero_probability_on_the_label():
    assert math.isfinite(nll(torch.tensor([[1.0, 0.0]]), torch.tensor([1])))


def test_ece_zero_when_calibrated_and_positive_when_overconfident():
    # confidence 0.8 with 8/10 right and confidence 0.6 with 3/5 right: calibrated in every bin
    probs = torch.tensor([[0.8, 0.2]] * 10 + [[0.4, 0.6]] * 5)
    labels = torch.tensor([0] * 8 + [1] * 2 + [1] * 3 + [0] * 2)
    assert classification_metrics(probs, labels)["ece"] == pytest.approx(0.0, abs=1e-6)
    over = torch.tensor([[0.99, 0.01]] * 10)
    half_right = torch.tensor([0] * 5 + [1] * 5)
    assert classification_metrics(over, half_right)["ece"] == pytest.approx(0.49, abs=1e-5)


def test_mcnemar_exact_against_binomial_by_hand():
    # b = 7 (A right, B wrong), c = 1 (A wrong, B right), 5 concordant: p = 2 * (C(8,0)+C(8,1)) / 2^8
    a = torch.tensor([True] * 7 + [False] + [True] * 3 + [False] * 2)
    b = torch.tensor([False] * 7 + [True] + [True] * 3 + [False] * 2)
    assert discordant_counts(a, b) == (7, 1) and discordant_counts(b, a) == (1, 7)
    assert mcnemar_pvalue_from_counts(7, 1) == pytest.approx(2 * 9 / 256) and mcnemar_pvalue_from_counts(0, 0) == 1.0
    assert mcnemar_pvalue(a, b) == pytest.approx(2 * 9 / 256)
    assert mcnemar_pvalue(b, a) == pytest.approx(2 * 9 / 256)
    assert mcnemar_pvalue(a, a) == 1.0
    assert mcnemar_pvalue([True, False], [False, True]) == 1.0  # b = c = 1: p capped at 1


def test_mean_ci95_student_t():
    mean, low, high = mean_ci95([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t_{0.975, 2} * s / sqrt(n), s = 1
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    mean, low, high = mean_ci95([0.7])
    assert mean == 0.7 and math.isnan(low) and math.isnan(high)


def _synthetic(n, seed, scale=2.0, classes=3):
    g = torch.Generator().manual_seed(seed)
    true_logits = torch.randn(n, classes, generator=g) * scale
    labels = torch.multinomial(torch.softmax(true_logits, 1), 1, generator=g).squeeze(1)
    return true_logits, labels


def test_temperature_recovers_two_and_keeps_argmax():
    true_logits, labels = _synthetic(50_000, seed=0)
    overconfident = 2.0 * true_logits
    t = fit_temperature(overconfident, labels)
    assert t == pytest.approx(2.0, abs=0.1)
    calibrated = apply_temperature(overconfident, t)
    assert torch.equal(calibrated.argmax(1), overconfident.argmax(1))
    before = nll(torch.softmax(overconfident.double(), 1), labels)
    assert nll(calibrated, labels) < before


def test_temperature_is_robust_and_bounded():
    true_logits, labels = _synthetic(200, seed=1)
    # perfectly separable: NLL = log(1 + 2 exp(-5/T)) keeps falling as T -> 0 (flat in float64
    # below T ~ 0.14), so T ends small and inside the bound, not NaN or 0
    separable = torch.nn.functional.one_hot(labels, 3).double() * 5.0
    assert 0.05 <= fit_temperature(separable, labels) < 0.2
    # so huge that NLL(T = 1) is already exactly 0: any T ties, and ties keep T = 1
    assert fit_temperature(separable * 1e4, labels) == 1.0
    # log-likelihood-sized values (generative classifier log joints) are fine too
    t = fit_temperature(true_logits - 5_000.0, labels)
    assert math.isfinite(t) and 0.05 <= t <= 20
    assert fit_temperature(torch.zeros(4, 2), torch.tensor([0, 1, 0, 1])) == 1.0


def test_bias_temperature_recovers_a_shifted_prior_and_the_accuracy_it_cost():
    true_logits, labels = _synthetic(20_000, seed=3)
    # the scores of a model that ranks items right but favours class 0 by 1.5 nats, at twice the scale
    shifted = 2.0 * (true_logits + torch.tensor([1.5, 0.0, 0.0]))
    T, b = fit_bias_temperature(shifted[:10_000], labels[:10_000])  # fitted on the first half only
    assert T == pytest.approx(2.0, abs=0.15)
    assert b[0] == 0.0 and b[1] == pytest.approx(1.5, abs=0.15) and b[2] == pytest.approx(1.5, abs=0.15)
    test = slice(10_000, None)
    acc = lambda z: float((z.argmax(1) == labels[test]).double().mean())  # noqa: E731
    fixed = apply_bias_temperature(shifted[test], T, b)
    assert acc(shifted[test]) < acc(true_logits[test]) - 0.02  # the shift costs accuracy
    assert acc(fixed) == pytest.approx(acc(true_logits[test]), abs=0.01)  # the offsets give it back
    # T alone cannot: it keeps the shifted argmax
    assert torch.equal(apply_temperature(shifted[test], T).argmax(1), shifted[test].argmax(1))
    with pytest.raises(ValueError, match="NaN or inf"):
        fit_bias_temperature(torch.tensor([[0.0, float("nan")]]), torch.tensor([0]))


def test_reliability_diagram_writes_png(tmp_path):
    true_logits, labels = _synthetic(300, seed=2)
    out = reliability_diagram(
        {
            "calibrated": (torch.softmax(true_logits, 1), labels),
            "overconfident": (torch.softmax(3 * true_logits, 1), labels),
        },
        tmp_path / "plots" / "reliability.png",
        title="test",
    )
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size[0] > 100


def test_flops_per_token_counts_the_untied_head_and_attention_but_not_embeddings():
    from transformers import BertConfig, BertForMaskedLM

    from diffusion_lab.metrics.flops import flops_per_token

    cfg = BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64)
    model = BertForMaskedLM(cfg)
    emb = sum(p.numel() for n, p in model.named_parameters() if "embed" in n)
    body = sum(p.numel() for p in model.parameters()) - emb
    assert flops_per_token(model, 10) == 6 * (body + 16 * 100) + 12 * 2 * 10 * 16
    assert flops_per_token(model, 20) - flops_per_token(model, 10) == 12 * 2 * 10 * 16

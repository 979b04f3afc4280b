"""``classifier.bayes_weight``: the Bayes readout's cross-entropy as a training term (``classifiers.bayes_term``),
checked against exact likelihoods of context-free models, draw for draw."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from diffusion_lab.classifiers.bayes_term import bayes_cross_entropy, class_estimates
from diffusion_lab.classifiers.conditional_layout import ConditionalLayout
from diffusion_lab.classifiers.generative import GenerativeClassifier
from diffusion_lab.classifiers.per_class_layout import PerClassLayout
from diffusion_lab.config_schema import validate
from diffusion_lab.errors import ConfigError
from diffusion_lab.likelihood import stratified_mask_draws
from diffusion_lab.masking import real_tokens
from tests.conftest import TINY, TableBackbone, compose

V, MASK, LABEL_TOKENS, NOLABEL = 40, 39, [36, 37, 38], 35
PRIOR = [math.log(0.5), math.log(0.3), math.log(0.2)]


def _tables(num_classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    tables = []
    for _ in range(num_classes):
        t = 2.0 * torch.randn(V, generator=g)
        t[MASK] = -30.0
        tables.append(torch.log_softmax(t, 0))
    return torch.stack(tables)


class Recorder(torch.nn.Module):
    """Context-free per-class model that records what it was asked to score."""

    causal, condition_embedding = False, None

    def __init__(self, logp, seen):
        super().__init__()
        self.logp, self.seen = logp, seen

    def forward(self, x, att=None, condition=None):
        self.seen.append(x.clone())
        return TableBackbone(self.logp)(x)


class ConditionTable(torch.nn.Module):
    """Context-free conditional model: row r gets ``logp[condition[r]]`` at every position; records each call."""

    causal = False
    condition_embedding = True  # the layout passes each row's class as its condition
    num_conditions = 4

    def __init__(self, tables):
        super().__init__()
        self.tables, self.calls = tables, []

    def forward(self, x, att=None, condition=None):
        self.calls.append((x.clone(), condition.clone()))
        return self.tables[condition][:, None, :].expand(x.shape[0], x.shape[1], V).clone()


def _lm(backbone):
    return torch.nn.ModuleDict({"backbone": backbone})


def _per_class(tables, seen=None):
    lms = [_lm(Recorder(t, [] if seen is None else seen)) for t in tables]
    return GenerativeClassifier(lms, "per_class", len(tables), PRIOR, MASK, optimizer=None, layout=PerClassLayout(),
                                bayes_weight=1.0)


def _conditional(tables):
    return GenerativeClassifier([_lm(ConditionTable(tables))], "conditional", len(tables), PRIOR, MASK, optimizer=None,
                                label_token_ids=LABEL_TOKENS, nolabel_token_id=NOLABEL, layout=ConditionalLayout(),
                                bayes_weight=1.0)


def _batch(seed=1):
    x = torch.randint(1, 30, (5, 11), generator=torch.Generator().manual_seed(seed))
    att = torch.ones_like(x)
    att[3, 7:] = 0
    att[4, 2:] = 0
    score = att.bool().clone()
    score[1, :4] = False  # a window whose first tokens are visible context of the previous window
    return x, att, score, torch.tensor([0, 2, 1, 1, 0])


def _exact_ce(tables, x, att, score, labels, prefix, seed, num_draws=1):
    """By hand: the same draws (same generator state), exact log p(x_i | y=c) = tables[c, x_i] at each
    draw's masked tokens, times L / l_k, averaged over the K draws; the Bayes posterior with the prior; its
    cross-entropy."""
    maskable = real_tokens(torch.cat([torch.ones_like(att[:, :prefix]), att], 1), prefix,
                           torch.cat([torch.zeros_like(score[:, :prefix]), score], 1))
    draws = stratified_mask_draws(maskable, num_draws, torch.Generator().manual_seed(seed))
    s = torch.zeros(len(x), len(tables), dtype=torch.float64)
    for k in range(num_draws):
        masked, weight = draws.masked[:, k, prefix:], draws.weight[:, k].double()
        assert (masked <= score).all()  # only scored tokens are ever masked
        s += torch.stack([(tables[c][x] * masked).double().sum(1) * weight for c in range(len(tables))], 1)
    s /= num_draws
    return torch.nn.functional.cross_entropy(s + torch.tensor(PRIOR, dtype=torch.float64), labels), s


@pytest.mark.parametrize("num_draws", [1, 3])
@pytest.mark.parametrize("layout", ["per_class", "conditional"])
def test_the_term_is_the_exact_bayes_cross_entropy_of_its_draws(layout, num_draws):
    tables = _tables()
    clf = _per_class(tables) if layout == "per_class" else _conditional(tables)
    x, att, score, labels = _batch()
    for seed in range(5):  # draw for draw
        expected, s = _exact_ce(tables, x, att, score, labels, clf.layout.prefix, seed, num_draws)
        got = bayes_cross_entropy(clf, x, att, labels, torch.Generator().manual_seed(seed), score, num_draws)
        assert got.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-5)
        est = class_estimates(clf, x, att, torch.Generator().manual_seed(seed), score, num_draws)
        torch.testing.assert_close(est, s, rtol=1e-5, atol=1e-4)


def test_more_draws_lower_the_estimates_variance():
    """The lever of ``classifier.bayes_draws``: the class difference s_0 - s_1 of one window, over many draws,
    varies less with K = 4 stratified draws than with one (both unbiased for the same exact ELBO)."""
    tables = _tables(2)
    clf = _conditional(tables)
    x, att, score, labels = _batch()
    spread = {}
    for k in (1, 4):
        diffs = torch.stack([class_estimates(clf, x, att, torch.Generator().manual_seed(seed), score, k)
                             for seed in range(200)])
        diffs = diffs[..., 0] - diffs[..., 1]  # [draws, W]
        spread[k] = diffs.var(0)
        means = diffs.mean(0)
    exact = (tables[0][x] - tables[1][x]).double().mul(score).sum(1)  # the ELBO's class difference, all tokens
    torch.testing.assert_close(means, exact, rtol=0.1, atol=0.5)
    assert (spread[4] < spread[1] / 2).all()


def test_k_draws_score_every_class_on_each_draw_in_one_pass():
    tables = _tables()
    clf = _conditional(tables)
    x, att, score, labels = _batch(2)
    bayes_cross_entropy(clf, x, att, labels, torch.Generator().manual_seed(0), score, num_draws=2)
    (rows, condition), = clf.lms[0].backbone.calls
    assert rows.shape[0] == 5 * 2 * 3 and condition.tolist() == [0, 1, 2] * 10
    masks = rows.view(5, 2, 3, -1)[..., 1:] == MASK
    assert (masks == masks[:, :, :1]).all()  # the classes of a draw share its positions
    assert (masks[:, 0] != masks[:, 1]).any()  # the two draws differ
    counts = masks[:, :, 0].sum(-1)
    assert (counts[:, 0] <= counts[:, 1]).all()  # stratified: draw 0 from the lower half of {1..L}


def test_every_class_sees_the_same_masked_draw_in_one_pass():
    tables = _tables()
    clf = _conditional(tables)
    x, att, score, labels = _batch(2)
    bayes_cross_entropy(clf, x, att, labels, torch.Generator().manual_seed(0), score)
    calls = clf.lms[0].backbone.calls
    assert len(calls) == 1  # one batched pass for every class of every window
    rows, condition = calls[0]
    assert rows.shape[0] == 5 * 3 and condition.tolist() == [0, 1, 2] * 5
    per_window = rows.view(5, 3, -1)
    assert per_window[:, :, 0].tolist() == [LABEL_TOKENS] * 5  # each class's label token in the slot
    masks = per_window[:, :, 1:] == MASK
    assert (masks == masks[:, :1]).all() and masks.any(-1).all()  # the same positions for every class
    seen = []
    per_class = _per_class(tables, seen)
    bayes_cross_entropy(per_class, x, att, labels, torch.Generator().manual_seed(0), score)
    assert len(seen) == 3 and all(len(r) == 5 for r in seen)  # each model scores every window once
    assert all(torch.equal(r == MASK, seen[0] == MASK) for r in seen) and (seen[0] == MASK).any(-1).all()


def _encoder_classifier(bayes_weight, infill_weight=0.0):
    from diffusion_lab.masking import LogLinearSchedule
    from diffusion_lab.models.diffusion_lm import DiffusionLM
    from diffusion_lab.models.encoder import EncoderDenoiser

    torch.manual_seed(0)
    backbone = EncoderDenoiser(V, pad_token_id=0, num_conditions=3, max_length=24, model_type="bert", hidden_size=32,
                               num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    lm = DiffusionLM(backbone, LogLinearSchedule(), optimizer=None, mask_token_id=MASK, seed=3)
    return GenerativeClassifier([lm], "conditional", 2, PRIOR[:2], MASK, optimizer=None, label_token_ids=[36, 37],
                                nolabel_token_id=38, uncond_prob=0.3, infill_weight=infill_weight, seed=5,
                                bayes_weight=bayes_weight)


@pytest.mark.parametrize("infill_weight", [0.0, 0.5])
def test_weight_zero_is_the_generative_loss_and_a_positive_weight_only_adds_the_term(infill_weight):
    x, att, _, _ = _batch(3)
    labels = torch.tensor([0, 1, 1, 0, 1])
    losses = {}
    for weight in (0.0, 1.0, 2.5):
        clf = _encoder_classifier(weight, infill_weight)
        logged = {}
        clf.log = lambda name, value, _logged=logged, **_: _logged.__setitem__(name, value)
        before = clf.bayes_generator.get_state()
        losses[weight] = (clf.layout.training_loss(clf, x, att, labels), logged)
        if weight == 0:
            assert torch.equal(clf.bayes_generator.get_state(), before) and "train/bayes_ce" not in logged
        reference = _encoder_classifier(weight, infill_weight)
        reference.log = lambda *a, **k: None
        generative = reference.layout.generative_loss(reference, x, att, labels)
        if weight == 0:
            assert torch.equal(losses[0.0][0], generative)  # bit for bit
        else:  # the term draws from its own stream: the generative term is the lambda = 0 one
            ce = logged["train/bayes_ce"]
            torch.testing.assert_close(losses[weight][0], generative + weight * ce, rtol=0, atol=1e-5)
            assert ce > 0
    torch.testing.assert_close(losses[1.0][1]["train/bayes_ce"], losses[2.5][1]["train/bayes_ce"])


def test_the_term_reaches_the_condition_embedding():
    clf = _encoder_classifier(1.0)
    x, att, _, _ = _batch(4)
    ce = bayes_cross_entropy(clf, x, att, torch.tensor([0, 1, 1, 0, 1]), torch.Generator().manual_seed(0))
    ce.backward()
    grad = clf.lms[0].backbone.condition_embedding.weight.grad
    assert grad is not None and grad[:2].abs().sum() > 0  # the class conditions get a gradient
    assert grad[2].abs().sum() == 0  # "no label" is never a class of the posterior


@pytest.mark.parametrize("value", ["-0.1", "nan", "inf"])
def test_a_negative_or_non_finite_weight_fails_at_start_up(value, tmp_path):
    with pytest.raises(ConfigError, match=r"classifier\.bayes_weight"):
        validate(compose([*TINY, "task=train_classifier", f"classifier.bayes_weight={value}"], tmp_path))


def test_zero_draws_fail_at_start_up(tmp_path):
    with pytest.raises(ConfigError, match=r"classifier\.bayes_draws=0: must be a positive integer"):
        validate(compose([*TINY, "task=train_classifier", "classifier.bayes_draws=0"], tmp_path))


def test_a_windowed_infill_run_logs_the_term(tiny_run):
    _, out = tiny_run(["task=train_classifier", "task.val_draws=1", "classifier.num_draws=2", "eval.max_test=16",
                       "task.baselines=[]", "classifier.bayes_weight=0.5", "classifier.infill_weight=0.5",
                       "classifier.bayes_draws=2",
                       "data.long_text=windows", "data.max_length=8"], "dial")
    rows = list(csv.DictReader(next(out.rglob("metrics.csv")).open()))
    ce = [float(r["train/bayes_ce"]) for r in rows if r.get("train/bayes_ce")]
    assert ce and all(math.isfinite(v) and v > 0 for v in ce)
    saved = torch.load(out / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert (saved["hyper_parameters"]["bayes_weight"], saved["hyper_parameters"]["bayes_draws"]) == (0.5, 2)

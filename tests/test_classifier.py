"""Generative classifier: scoring maths on models with known likelihoods, then tiny end-to-end runs."""

import json
import math
from types import SimpleNamespace

import pytest
import torch
from scipy.stats import binom

from diffusion_lab.classifiers.per_class_layout import PerClassLayout
from diffusion_lab.classifiers.scoring import class_log_likelihoods
from tests.conftest import TableBackbone

V, MASK = 12, 11

def per_class_clf(tables):
    lms = [SimpleNamespace(backbone=TableBackbone(t)) for t in tables]
    return SimpleNamespace(layout=PerClassLayout(), lms=lms, num_classes=len(tables), mask_token_id=MASK)


def _tables(num_classes, seed=0, spread=3.0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(V, generator=g)
    tables = [torch.log_softmax(base + spread * torch.randn(V, generator=g), 0) for _ in range(num_classes)]
    for t in tables:
        t[MASK] = -30.0
    return [torch.log_softmax(t, 0) for t in tables]


def test_per_class_bound_matches_exact_class_likelihoods_and_posteriors_sum_to_one():
    tables = _tables(3)
    clf = per_class_clf(tables)
    x = torch.randint(0, MASK, (4, 10), generator=torch.Generator().manual_seed(1))
    att = torch.ones_like(x)
    exact = torch.stack([t[x].sum(1) for t in tables], 1).double()
    scores = class_log_likelihoods(clf, x, att, num_draws=2000, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(scores.log_lik, exact, rtol=0.03)
    posterior = torch.softmax(scores.log_lik, -1)
    assert torch.allclose(posterior.sum(-1), torch.ones(4, dtype=torch.float64))
    assert scores.forward_passes == 2000 * 3


def test_adaptive_pruning_drops_losing_classes_and_saves_passes():
    tables = _tables(4, seed=2, spread=6.0)
    clf = per_class_clf(tables)
    x = torch.multinomial(tables[0].exp(), 30, replacement=True, generator=torch.Generator().manual_seed(3))[None]
    att = torch.ones_like(x)
    full = class_log_likelihoods(clf, x, att, num_draws=16, generator=torch.Generator().manual_seed(0))
    pruned = class_log_likelihoods(clf, x, att, num_draws=16, generator=torch.Generator().manual_seed(0),
                                   adaptive=True, first_stage_draws=2, margin=5.0)
    assert pruned.forward_passes < full.forward_passes
    assert pruned.log_lik.argmax(1).item() == full.log_lik.argmax(1).item() == 0


def test_seed_mean_loss_uses_five_independent_draws_per_class():
    clf = per_class_clf(_tables(2))
    x = torch.randint(0, MASK, (3, 20))
    scores = class_log_likelihoods(clf, x, torch.ones_like(x), estimator="seed_mean_loss",
                                   generator=torch.Generator().manual_seed(0))
    assert scores.forward_passes == 10 and scores.log_lik.shape == (3, 2)
    assert (scores.log_lik < 0).all()  # minus a mean cross-entropy (length-normalised)


# --- end to end (tiny) -------------------------------------------------------------------------------
CLF = ["task=train_classifier", "task.val_draws=1", "classifier.num_draws=2", "eval.max_test=48"]


@pytest.mark.parametrize("mode", ["conditional", "per_class"])
def test_train_classifier_writes_a_complete_report(tiny_run, mode):
    results, out = tiny_run([*CLF, "dataset.num_test=64", f"classifier={mode}",
                             "task.baselines=[discriminative,tfidf_lr]"], mode)
    saved = json.loads((out / "results.json").read_text())
    readouts = {"generative_infill", "generative_hybrid"} if mode == "conditional" else set()
    expected = {"generative", "discriminative", "tfidf_lr"} | readouts
    assert set(saved["models"]) == expected
    for name, metrics in saved["models"].items():
        for key in ("accuracy", "accuracy_ci95", "macro_f1", "nll", "brier", "ece", "ece_after_ts", "n",
                    "examples_per_s", "forward_passes_per_example", "temperature"):
            assert key in metrics, (name, key)
        assert metrics["n"] == 48 and metrics["accuracy_ci95"][0] <= metrics["accuracy"] <= metrics["accuracy_ci95"][1]
    assert saved["models"]["generative"]["forward_passes_per_example"] == 4  # K=2 draws x 2 classes
    assert set(saved["mcnemar_p"]) == expected - {"generative"}
    assert all(0 <= p <= 1 for p in saved["mcnemar_p"].values())
    right = {name: round(m["accuracy"] * 48) for name, m in saved["models"].items()}
    for name, counts in saved["mcnemar_discordant"].items():  # only_model - only_reference = the gap in items right
        b, c = counts["only_reference"], counts["only_model"]
        assert c - b == right[name] - right["generative"]
        assert saved["mcnemar_p"][name] == pytest.approx(min(1.0, 2 * binom.cdf(min(b, c), b + c, 0.5)) if b + c else 1.0)
    assert "duplicates_removed" in saved and saved["n_test"] == 48
    assert saved["train_tokens_per_s"] > 0  # experiments/throughput reads it
    logs = [f for f in out.rglob("metrics.csv") if "discriminative" not in f.parts]
    assert logs and "train/tokens_per_s" in logs[0].read_text().splitlines()[0]
    for name in ("reliability.png", "predictions.csv", "checkpoints/best.ckpt", "tokenizer"):
        assert (out / name).exists(), name


def test_three_class_generative_classifier_beats_chance(tiny_run):
    results, _ = tiny_run([*CLF, "dataset=synthetic_sentiment_3class", "dataset.num_train=600", "dataset.num_test=120",
                           "eval.max_test=null", "trainer.max_epochs=6", "optimizer.lr=3e-3", "classifier.num_draws=4",
                           "model.backbone.hidden_size=64", "model.backbone.num_hidden_layers=2",
                           "model.backbone.intermediate_size=128", "task.baselines=[]"])
    acc = results["models"]["generative"]["accuracy"]
    n = results["models"]["generative"]["n"]
    assert n == 120
    assert acc > 1 / 3 + 3 * math.sqrt((1 / 3) * (2 / 3) / n), acc  # > chance + 3 standard errors


def test_unknown_baseline_and_missing_label_column_are_clear_errors(tiny_run, tmp_path):
    with pytest.raises(ValueError, match="task.baselines"):
        tiny_run([*CLF, "task.baselines=[svm]"], "bad_baseline")
    data = tmp_path / "d.csv"
    data.write_text("review,stars\nnice film,1\nbad film,0\n" * 10)
    with pytest.raises(ValueError, match="label"):
        tiny_run([*CLF, "dataset=text_files", f"dataset.train_path={data}", f"dataset.test_path={data}",
                  "dataset.text_column=review"], "bad_column")

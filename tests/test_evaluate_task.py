"""task=evaluate: the suite on a tiny classifier run, its report, and the maths behind its explanations."""

import json
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from diffusion_lab.errors import ConfigError
from tests.conftest import DATA_DIR, TINY, TableBackbone, compose

SECTIONS = ("calibration", "robustness", "shift", "ood", "explanations")
HAVE_DATA = (DATA_DIR / "rt_polarity").is_dir() and (DATA_DIR / "wikitext2").is_dir()
#: the shared corpora when present; otherwise synthetic stand-ins with the same labels (same code path)
DATASETS = (["eval.shift_dataset=rt_polarity", "eval.ood_dataset=wikitext2"] if HAVE_DATA else
            ["eval.shift_dataset=synthetic_sentiment",
             "eval.ood_dataset=synthetic_sentiment_3class"])
SMALL_EVAL = ["eval.num_draws=2", "eval.max_val=24", "eval.max_examples=48", "eval.robustness_examples=16",
              "eval.strengths=[0.3]", "eval.deletion_examples=8", "eval.deletion_ks=[1,3]", "eval.explain_examples=2",
              "eval.batch_size=16", *DATASETS]


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory):
    """A tiny conditional classifier with both baselines, evaluated by the train_classifier hook."""
    from diffusion_lab.app import run

    out = tmp_path_factory.mktemp("clf")
    cfg = compose([*TINY, "task=train_classifier", "task.val_draws=1", "classifier.num_draws=2", "dataset.num_test=48",
                   "eval.max_test=48", "eval.after_training=true", *SMALL_EVAL], out)
    run(cfg)
    return out


def test_training_hook_writes_every_section_for_every_model(evaluated_run):
    ev = json.loads((evaluated_run / "evaluation.json").read_text())
    models = {"generative", "generative_infill", "discriminative", "tfidf_lr"}
    assert ev["meta"]["models"] == ["generative", "generative_infill", "discriminative", "tfidf_lr"]
    for section in SECTIONS:
        assert ev[section], section
        assert set(ev[section]) <= models, section
    for section in ("calibration", "robustness", "shift", "ood"):
        assert set(ev[section]) == models, section
    assert set(ev["explanations"]) == {"generative", "discriminative"}
    trained = json.loads((evaluated_run / "results.json").read_text())["models"]
    for name in ("discriminative", "tfidf_lr"):  # deterministic models on the run's own test items: same numbers
        assert ev["calibration"][name]["before"]["accuracy"] == trained[name]["accuracy"], name
        assert ev["calibration"][name]["before"]["nll"] == pytest.approx(trained[name]["nll"], abs=1e-5), name
    assert ev["meta"]["tfidf_sees"] == "token window"
    for name, entry in ev["calibration"].items():
        assert entry["n_test"] == 48 and entry["seed"] == 0 and entry["before"]["n"] == 48
        # temperature scaling (fitted on validation) never changes a prediction and never raises validation NLL
        assert entry["predictions_changed_by_scaling"] == 0, name
        assert entry["before"]["accuracy"] == entry["after"]["accuracy"], name
        assert entry["val_nll_after"] <= entry["val_nll_before"] + 1e-9, name
        assert 0.05 <= entry["temperature"] <= 20.0
    for perts in ev["robustness"].values():
        assert set(perts) == {"char_typos", "word_deletion", "word_swap", "mask_top_words"}
        for row in perts.values():
            assert row["strengths"] == [0.0, 0.3] and len(row["accuracy"]) == len(row["ece"]) == 2
            assert row["n"] == 16 and row["seed"] == 0
    for entry in ev["shift"].values():
        assert entry["n"] == 48 and entry["seed"] == 0 and 0 <= entry["before"]["accuracy"] <= 1
    gen_ood = ev["ood"]["generative"]
    assert {"log_px", "log_px_per_token", "log_px_unconditional", "max_softmax"} <= set(gen_ood)
    assert {"max_softmax", "energy"} <= set(ev["ood"]["discriminative"])
    for kind in ("log_px", "log_px_per_token"):
        assert 0 <= gen_ood[kind]["all"]["auroc"] <= 1 and gen_ood[kind]["all"]["n_in"] == 48
        assert "length_matched" in gen_ood[kind]
    for entry in ev["explanations"].values():
        curve = entry["deletion"]
        assert curve["ks"] == [1, 3] and len(curve["attributed"]) == len(curve["random"]) == 2 and curve["n"] == 8
        assert len(curve["attributed_ci95"]) == len(curve["random_ci95"]) == 2
        ex = entry["examples"][0]
        assert len(ex["tokens"]) == len(ex["attributions"]) and entry["seed"] == 0
    for name in ("report.html", "explanations.html", "calibration.png", "calibration_after_ts.png", "robustness.png",
                 "ood.png", "deletion.png", "results.json"):
        assert (evaluated_run / name).is_file(), name
    report = (evaluated_run / "report.html").read_text()
    assert "<script" not in report and "data:image/png;base64," in report and "Domain shift" in report


def test_standalone_task_skips_what_it_is_told_to_and_html_escapes_example_text(evaluated_run, tmp_path):
    from diffusion_lab.app import run
    from diffusion_lab.evaluation.suite_page import render_report

    out = tmp_path / "eval"
    result = run(compose([*TINY, "task=evaluate", f"run_dir={evaluated_run}", *SMALL_EVAL, "eval.models=[generative,tfidf_lr]",
                          "eval.shift_dataset=null", "eval.perturbations=[word_deletion]", "logger=wandb"], out))
    ev = json.loads((out / "evaluation.json").read_text())
    media = {p.parent.parent.name for p in (out / "wandb").glob("offline-run-*/files/media/*/evaluate/*")}
    assert {"images", "table", "html"} <= media  # figures, the heatmap table and the report, offline
    assert result["status"] == "finished" and set(ev["calibration"]) == {"generative", "tfidf_lr"}
    assert ev["shift"] == {} and "shift" in ev["skipped"] and set(ev["explanations"]) == {"generative"}
    # the generative model on the same items, seed and draws gives the same numbers as in the hook
    hook = json.loads((evaluated_run / "evaluation.json").read_text())
    assert ev["calibration"]["generative"]["before"] == hook["calibration"]["generative"]["before"]

    example = ev["explanations"]["generative"]["examples"][0]
    example.update(text="<script>alert('x')</script> a fine film", tokens=["<script>", "alert", "</script>"],
                   attributions=[1.0, -0.5, 0.2], label="<b>neg</b>")
    html = render_report(ev, {}, tmp_path / "report.html").read_text()
    assert "<script>" not in html and "</script>" not in html and "<b>neg</b>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; a fine film" in html


def test_a_new_evaluation_model_is_one_table_entry(evaluated_run, tmp_path, monkeypatch):
    """EVAL_MODELS is the only place a model name is dispatched on: a new entry (here a second name for the
    run's discriminative baseline) is scored, calibrated, OOD-tested and explained with no other change."""
    from diffusion_lab.app import run
    from diffusion_lab.evaluation.models import EVAL_MODELS, EvalModel

    monkeypatch.setitem(EVAL_MODELS, "disc_again", EvalModel("discriminative", "bayes", "energy", "energy",
                                                            "gradient_x_input"))
    out = tmp_path / "eval"
    run(compose([*TINY, "task=evaluate", f"run_dir={evaluated_run}", *SMALL_EVAL,
                 "eval.models=[discriminative,disc_again]", "eval.shift_dataset=null",
                 "eval.perturbations=[word_deletion]"], out))
    ev = json.loads((out / "evaluation.json").read_text())
    assert ev["meta"]["models"] == ["discriminative", "disc_again"]
    assert ev["calibration"]["disc_again"]["before"] == ev["calibration"]["discriminative"]["before"]
    assert ev["ood"]["disc_again"]["energy"]["all"] == ev["ood"]["discriminative"]["energy"]["all"]
    assert ev["explanations"]["disc_again"]["method"].startswith("gradient x input")


def test_evaluate_needs_a_classifier_run(tmp_path):
    from omegaconf import OmegaConf

    from diffusion_lab.app import run

    lm_run = tmp_path / "lm"
    lm_run.mkdir()
    OmegaConf.save(compose([*TINY, "task=train_lm"], lm_run), lm_run / "config_resolved.yaml")
    with pytest.raises(ConfigError, match="'train_lm' run and holds no classifier"):
        run(compose(["task=evaluate", f"run_dir={lm_run}"], tmp_path / "e1"))
    with pytest.raises(ConfigError, match="needs run_dir="):
        run(compose(["task=evaluate"], tmp_path / "e2"))
    with pytest.raises(ConfigError, match="no such directory"):
        run(compose(["task=evaluate", f"run_dir={tmp_path / 'nope'}"], tmp_path / "e3"))


def test_shift_dataset_with_other_labels_is_a_clear_error():
    from diffusion_lab.evaluation.data import load_shift_items

    cfg = compose(["print_config=false"])
    with pytest.raises(ValueError, match="same labels"):
        load_shift_items("synthetic_sentiment_3class", cfg, ["negative", "positive"], 10, 0)


# --- explanations of a context-free model: exact by hand -------------------------------------------------
V, MASK = 12, 11

def _table_classifier(seed=0):
    from diffusion_lab.classifiers.generative import GenerativeClassifier

    g = torch.Generator().manual_seed(seed)
    tables = []
    for _ in range(2):
        t = torch.randn(V, generator=g) * 2
        t[MASK] = -30.0
        tables.append(torch.log_softmax(t, 0))

    class TableLM(nn.Module):
        def __init__(self, t):
            super().__init__()
            self.backbone = TableBackbone(t)

    clf = GenerativeClassifier([TableLM(t) for t in tables], "per_class", 2, [math.log(0.5)] * 2, MASK, optimizer=None)
    return clf.eval(), tables


def test_context_free_attributions_equal_log_probability_differences_by_hand():
    from diffusion_lab.evaluation.explain import generative_attributions
    from diffusion_lab.likelihood import stratified_mask_draws

    clf, tables = _table_classifier()
    x = torch.randint(0, MASK, (3, 9), generator=torch.Generator().manual_seed(4))
    att = torch.ones_like(x)
    att[2, 6:] = 0  # a shorter row: padding gets no attribution
    joint, attrs = generative_attributions(clf, x, att, num_draws=5, generator=torch.Generator().manual_seed(7))
    draws = stratified_mask_draws(att.bool(), 5, torch.Generator().manual_seed(7))  # the same draws, by hand
    for i in range(3):
        a = int(joint[i].argmax())
        diff = (tables[a] - tables[1 - a])[x[i]].double()  # log p(x_j | a) - log p(x_j | b)
        hand = (draws.masked[i].double() * draws.weight[i, :, None].double() * diff).mean(0)
        n = int(att[i].sum())
        assert len(attrs[i]) == n
        assert torch.allclose(torch.tensor(attrs[i], dtype=torch.float64), hand[:n], atol=1e-6)
        exact_ratio = float(joint[i, a] - joint[i, 1 - a])
        assert sum(attrs[i]) == pytest.approx(exact_ratio, abs=1e-6)  # they add up to the log-likelihood ratio
    # and, averaged over many draws, each token's attribution is its exact log-probability difference
    _, many = generative_attributions(clf, x[:1], att[:1], num_draws=4000, generator=torch.Generator().manual_seed(1))
    a = int(joint[0].argmax())
    exact = (tables[a] - tables[1 - a])[x[0]]
    assert torch.allclose(torch.tensor(many[0]).float(), exact, atol=0.08 * float(exact.abs().max()))


def test_gradient_x_input_of_a_linear_bag_of_embeddings_is_exact():
    from diffusion_lab.evaluation.explain import gradient_x_input

    emb = nn.Embedding(V, 4)
    head = nn.Linear(4, 2)

    class Bag(nn.Module):  # logits = W (sum_i e_i) + b: gradient x input of the margin is exact per token
        backbone = SimpleNamespace(input_embeddings=lambda: emb)

        def forward(self, ids, att, inputs_embeds=None):
            return head((inputs_embeds * att[..., None]).sum(1))

    x = torch.randint(0, V, (2, 5), generator=torch.Generator().manual_seed(0))
    att = torch.ones_like(x)
    logits, attrs = gradient_x_input(Bag(), x, att)
    for i in range(2):
        a = int(logits[i].argmax())
        w = head.weight[a] - head.weight[1 - a]
        assert torch.allclose(torch.tensor(attrs[i]), (emb(x[i]) @ w).detach(), atol=1e-6)

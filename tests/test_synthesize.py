"""task=synthesize: the contamination guard, the filters, and a tiny end-to-end loop on synthetic_sentiment
(test split read once, at the end; the synthetic data reloads through dataset=text_files)."""

from __future__ import annotations

import json

import pytest
from hydra.utils import instantiate

from diffusion_lab.judges import Verdict
from diffusion_lab.synthesis.filters import SyntheticFilter, round_counts
from diffusion_lab.synthesis.text_overlap import ContaminationGuard
from tests.conftest import TINY, compose

TEST_REVIEW = "The plot was dull, and also the ending felt tedious; I watched it last night"
AGREE = Verdict("classifier", "positive", 0.9, "reads positive")


def _screen(texts, real=(), **kw):
    f = SyntheticFilter(ContaminationGuard(["an unrelated validation text", TEST_REVIEW], 8), list(real), **kw)
    return f.screen(texts, ["positive"] * len(texts), [AGREE] * len(texts), 1)


def test_an_8gram_of_a_test_review_is_dropped_and_counted():
    leak = "wow, THE plot was dull and also the ending felt great fun"  # 8 words of the review, other case/punctuation
    near_miss = "the plot was dull and also the finale felt great fun"  # 7 shared words in a row only
    records = _screen([leak, near_miss, "a clean and lovely film"])
    assert [r["dropped_by"] for r in records] == ["contamination", None, None]
    assert records[0]["guard_hits"] == 2 and "8-gram" in records[0]["reason"]  # 9 shared words: two 8-grams
    row = round_counts(records, 0.5, "classifier")
    assert row["dropped_contamination"] == 1 and row["contamination_hits"] == 1 and row["kept"] == 2


def test_length_duplicates_agreement_and_threshold():
    texts = ["too short", "the movie was good fun", "The movie was good, fun!", "the movie was good fun indeed",
             "an entirely different lovely picture", "a film i did not like at all"]
    f = SyntheticFilter(ContaminationGuard([], 8), ["a real training review text"], min_words=3, max_jaccard=0.5)
    verdicts = [AGREE] * 5 + [Verdict("classifier", "negative", 0.1, "reads negative")]
    records = f.screen(texts, ["positive"] * 6, verdicts, 1)
    assert [r["dropped_by"] for r in records] == ["length", None, "exact_duplicate", "near_duplicate", None,
                                                  "judge_agreement"]
    row = round_counts(records, 0.95, "classifier")  # above every score: the survivors fall to judge_score
    assert row["kept"] == 0 and row["dropped_judge_score"] == 2 and row["agreement_classifier"] == pytest.approx(5 / 6)


SYNTH = ["task=synthesize", "task.per_class=4", "task.rounds=2", "task.score_thresholds=[0.0,0.6]",
         "task.real_train_size=64", "classifier.num_draws=2", "task.train.val_draws=1", "judge.num_draws=2",
         "eval.max_test=16", "sampler=ddpm_cache", "task.filters.min_words=1", "task.filters.require_agreement=false",
         "task.examples=2"]


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    """A tiny loop with one injected leak per round; records every training and every test-split read."""
    from diffusion_lab.app import run
    from diffusion_lab.synthesis.real_data import RealData
    from diffusion_lab.tasks import synthesize

    out = tmp_path_factory.mktemp("synth")
    cfg = compose([*TINY, *SYNTH], out)
    test_texts = instantiate(cfg.dataset).load(cfg.seed).test["text"]
    leak_source = next(t for t in test_texts if len(t.split()) >= 9)
    events, inner_cfgs = [], []
    orig_train, orig_test, orig_generate = synthesize.train_inner, RealData.final_test, synthesize._generate

    def train(cfg, out_dir, *a, **k):
        events.append(("train", out_dir.name))
        from diffusion_lab.synthesis.inner_runs import inner_config

        inner_cfgs.append(inner_config(cfg, out_dir, *a, **k))
        return orig_train(cfg, out_dir, *a, **k)

    def final_test(self):
        events.append(("test", None))
        return orig_test(self)

    def generate(*a, **k):
        texts, intended = orig_generate(*a, **k)
        leak = f"round {a[4]} so " + " ".join(leak_source.split()[:8])  # differs per round: not an exact duplicate
        return [*texts, leak], [*intended, intended[0]]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(synthesize, "train_inner", train)
        mp.setattr(RealData, "final_test", final_test)
        mp.setattr(synthesize, "_generate", generate)
        results = run(cfg)
    return results, out, events, inner_cfgs


def test_the_test_split_is_read_once_after_every_training(synthesized):
    results, out, events, inner_cfgs = synthesized
    assert [e for e in events if e[0] == "test"] == [("test", None)]
    assert events[-1] == ("test", None)  # after the last training: nothing downstream of it is chosen on test
    assert sum(e[0] == "train" for e in events) >= 2 and results["test_reads"] == 1
    assert results["test_access"]["scorings"] >= 1 and results["test_configurations"] >= 1  # in the test ledger
    placeholder = str(out / "data" / "no_test.jsonl")
    for sub in inner_cfgs:  # no inner run is ever given the real test split, and none scores its test loader
        assert sub.task.score_test is False and sub.dataset.test_path == placeholder
    for name in ("real_only", "round_1/tau_0"):
        saved = json.loads((out / name / "results.json").read_text())
        assert saved["split"] == "validation" and "models" not in saved


def test_the_outcome_table_and_guard_counts(synthesized):
    results, out, _, _ = synthesized
    assert results["guard"]["dropped"] == 2 and results["guard"]["ngram"] == 8  # one leak per round
    assert set(results["test"]["models"]) >= {"real_only", "real_plus_synthetic"}
    for metrics in results["test"]["models"].values():
        assert metrics["n"] == 16 and "ece_after_ts" in metrics and len(metrics["accuracy_ci95"]) == 2
    assert "real_plus_synthetic" in results["test"]["mcnemar_p_vs_real_only"]
    assert results["real_same_size"] == "trained" or results["real_same_size"].startswith("unavailable")
    rows = results["rounds"]
    assert len(rows) == 4 and {r["round"] for r in rows} == {1, 2}
    assert all(r["generated"] == 9 and r["dropped_contamination"] == 1 for r in rows)
    assert (out / "rounds.md").exists() and (out / "rounds.csv").exists()
    examples = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    assert any(e["dropped_by"] == "contamination" for e in examples) or any(e["kept"] for e in examples)


def test_the_synthetic_dataset_reloads_through_text_files(synthesized):
    results, out, _, _ = synthesized
    rows = [json.loads(line) for line in (out / "synthetic.jsonl").read_text().splitlines()]
    assert len(rows) == results["chosen"]["synthetic_kept"] > 0
    for row in rows:
        assert {"text", "label", "intended_label", "round", "verdicts", "generator", "judge"} <= set(row)
        assert row["verdicts"][0]["judge"] == "classifier" and row["generator"]["sampler"]["name"] == "ddpm_cache"
    assert not any(r["text"].startswith("round ") for r in rows)  # the leaks never reach the data
    tiny = [o for o in TINY if not o.startswith("dataset.")]
    cfg = compose([*tiny, "dataset=text_files", f"dataset.train_path={out / 'synthetic.jsonl'}",
                   f"dataset.test_path={out / 'data' / 'validation.jsonl'}", "dataset.val_size=1",
                   "dataset.label_names=[negative,positive]"])
    splits = instantiate(cfg.dataset).load(0)
    reloaded = sorted([*splits.train["text"], *splits.validation["text"]])
    assert reloaded == sorted({" ".join(r["text"].split()) for r in rows})
    names = [splits.label_names[y] for y in [*splits.train["label"], *splits.validation["label"]]]
    assert sorted(names) == sorted(r["label"] for r in rows)


def test_the_loop_chooses_on_and_scores_the_configured_readout(tmp_path):
    """``task.score_model=generative_infill``: every inner run is scored on validation with the one-pass label
    readout only, the choice reads it, and the test comparison is that readout (one pass per window)."""
    from diffusion_lab.app import run

    cfg = compose([*TINY, *SYNTH, "task.rounds=1", "task.score_thresholds=[0.0]", "task.score_model=generative_infill",
                   "classifier.infill_weight=0.5"], tmp_path)
    results = run(cfg)
    for name in ("real_only", "round_1/tau_0"):
        saved = json.loads((tmp_path / name / "results.json").read_text())
        assert set(saved["validation"]) == {"generative_infill"}
    assert results["test"]["score_model"] == "generative_infill"
    assert "generative_infill" in results["chosen"]["chosen_on"]
    for metrics in results["test"]["models"].values():  # Bayes would spend K draws x 2 classes per window
        assert metrics["forward_passes_per_example"] == pytest.approx(1.0)


def test_a_readout_the_classifier_lacks_is_refused_before_any_training(tmp_path):
    from diffusion_lab.app import run

    cfg = compose([*TINY, *SYNTH, "classifier=per_class", "task.score_model=generative_infill"], tmp_path)
    with pytest.raises(ValueError, match="generative_infill.*classifier=conditional"):
        run(cfg)
    assert not (tmp_path / "real_only").exists()
    cfg = compose([*TINY, *SYNTH, "task.score_model=tfidf_lr"], tmp_path / "b")
    with pytest.raises(ValueError, match="'tfidf_lr' is not a generative readout.*generative, generative_infill"):
        run(cfg)

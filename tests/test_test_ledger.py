"""The test-access ledger (issue 37): every scoring of a test split is one line; results.json counts the distinct
configurations that have scored the same test items; a multirun scores validation only unless asked."""

import json
import os
import subprocess
import sys

import pytest

from diffusion_lab import test_ledger
from tests.conftest import REPO, TINY, compose


def test_items_hash_ignores_order_and_sees_every_text_and_label():
    texts, labels = ["a good film", "a bad film", "fine"], [1, 0, 1]
    h = test_ledger.items_hash(texts, labels)
    assert h == test_ledger.items_hash(texts[::-1], labels[::-1])
    assert h != test_ledger.items_hash(texts, [1, 0, 0])
    assert h != test_ledger.items_hash(["a good film", "a bad film", "fine!"], labels)
    assert h != test_ledger.items_hash(texts[:2], labels[:2])


def test_config_hash_ignores_where_a_run_lives_but_not_what_it_is():
    base = {"seed": 0, "classifier": {"num_draws": 4}, "output_dir": "/a", "eval": {"max_test": 10, "test_ledger": "x"}}
    moved = {**base, "output_dir": "/b", "logger": {"name": "csv"}, "eval": {"max_test": 10, "test_ledger": "y"}}
    assert test_ledger.config_hash(base) == test_ledger.config_hash(moved)
    assert test_ledger.config_hash(base) != test_ledger.config_hash({**base, "classifier": {"num_draws": 8}})
    assert test_ledger.config_hash(base) != test_ledger.config_hash({**base, "seed": 1})


def test_record_counts_distinct_configurations_on_the_same_items(tmp_path):
    path = tmp_path / "sub" / "ledger.jsonl"
    kw = {"dataset": "imdb", "n": 3, "task": "score", "metrics": {"generative": 0.8}}
    first = test_ledger.record(path, items="i1", run="r1", config="c1", **kw)
    assert (first["configurations"], first["scorings"]) == (1, 1)
    again = test_ledger.record(path, items="i1", run="r2", config="c1", **kw)  # the same configuration re-scored
    assert (again["configurations"], again["scorings"]) == (1, 2)
    other = test_ledger.record(path, items="i1", run="r3", config="c2", **kw)
    assert (other["configurations"], other["scorings"]) == (2, 3)
    elsewhere = test_ledger.record(path, items="i2", run="r4", config="c3", **kw)  # other test items
    assert (elsewhere["configurations"], elsewhere["scorings"]) == (1, 1)
    with open(path, "a") as f:
        f.write("{cut off\n")  # a damaged line is counted as nothing and never fails the next run
    assert test_ledger.record(path, items="i1", run="r5", config="c4", **kw)["configurations"] == 3
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.startswith("{\"")]
    assert [x["run"] for x in lines] == ["r1", "r2", "r3", "r4", "r5"]
    assert lines[0]["metrics"] == {"generative": 0.8} and lines[0]["dataset"] == "imdb" and lines[0]["n"] == 3


@pytest.fixture(scope="module")
def ledger_run(tmp_path_factory):
    """A tiny conditional classifier with its own ledger."""
    from diffusion_lab.app import run

    root = tmp_path_factory.mktemp("ledger")
    ledger = root / "ledger.jsonl"
    out = root / "trained"
    results = run(compose([*TINY, "task=train_classifier", "task.val_draws=1", "classifier.num_draws=2",
                           "task.baselines=[tfidf_lr]", f"eval.test_ledger={ledger}"], out))
    return out, ledger, results


def _score(run_dir, out, ledger, *overrides):
    from diffusion_lab.app import run

    return run(compose(["logger=csv", "print_config=false", "task=score", f"run_dir={run_dir}",
                        f"eval.test_ledger={ledger}", *overrides], out))


def test_train_classifier_and_task_score_share_one_ledger(ledger_run, tmp_path):
    run_dir, ledger, trained = ledger_run
    assert trained["test_configurations"] == 1 and trained["test_access"]["scorings"] == 1
    on_disk = json.loads((run_dir / "results.json").read_text())
    assert on_disk["test_access"]["ledger"] == str(ledger.resolve())
    line = json.loads(ledger.read_text().splitlines()[0])
    assert line["task"] == "train_classifier" and line["n"] == trained["n_test"]
    assert line["metrics"]["generative"] == trained["models"]["generative"]["accuracy"]
    # re-scoring the run as trained is the same configuration; new scoring options are a new one
    same = _score(run_dir, tmp_path / "same", ledger, "score.split=test")
    assert (same["test_configurations"], same["test_access"]["scorings"]) == (1, 2)
    other = _score(run_dir, tmp_path / "k1", ledger, "score.split=test", "score.num_draws=1")
    assert (other["test_configurations"], other["test_access"]["scorings"]) == (2, 3)
    val = _score(run_dir, tmp_path / "val", ledger)  # validation is never a test access
    assert "test_access" not in val and len(ledger.read_text().splitlines()) == 3


def test_evaluate_records_its_test_items(ledger_run, tmp_path):
    from diffusion_lab.app import run

    run_dir, ledger, _ = ledger_run
    before = len(ledger.read_text().splitlines())
    out = tmp_path / "eval"
    run(compose(["logger=csv", "print_config=false", "task=evaluate", f"run_dir={run_dir}", f"eval.test_ledger={ledger}",
                 "eval.max_examples=8", "eval.max_val=8", "eval.perturbations=[]", "eval.shift_dataset=null",
                 "eval.ood_dataset=null", "eval.deletion_examples=2", "eval.explain_examples=1",
                 "eval.deletion_ks=[1]"], out))
    lines = ledger.read_text().splitlines()
    assert len(lines) == before + 1 and json.loads(lines[-1])["task"] == "evaluate"
    meta = json.loads((out / "evaluation.json").read_text())["meta"]
    assert meta["test_access"]["scorings"] == 1  # 8 of the test items: not the items train_classifier scored


def test_no_ledger_when_switched_off(tmp_path):
    from diffusion_lab.app import run

    results = run(compose([*TINY, "task=train_classifier", "task.val_draws=1", "classifier.num_draws=1",
                           "task.baselines=[]", "eval.test_ledger=null"], tmp_path / "off"))
    assert "test_access" not in results and results["models"]["generative"]["n"] > 0


@pytest.mark.slow
def test_a_multirun_scores_validation_only_unless_asked(tmp_path):
    """Through the real CLI: a 2-job sweep of train_classifier writes validation metrics only, and never
    touches the ledger; task=score split=test under -m is refused with the honest protocol in the message."""
    ledger, sweep = tmp_path / "ledger.jsonl", tmp_path / "sweep"
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    tiny = [o for o in TINY if not o.startswith("callbacks=")] + ["callbacks.progress_bar=null"]
    args = ["-m", *tiny, "task=train_classifier", "task.val_draws=1", "classifier.num_draws=1", "task.baselines=[]",
            "seed=0,1", f"eval.test_ledger={ledger}", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run([sys.executable, "-m", "diffusion_lab", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.name.isdigit())
    assert len(jobs) == 2
    for job in jobs:
        results = json.loads((job / "results.json").read_text())
        assert "models" not in results and results["validation"]["generative"]["accuracy"] >= 0
        assert "test_in_sweep" in results["test_not_scored"]
    assert not ledger.exists()
    args = ["-m", "task=score", f"run_dir={jobs[0]}", "score.split=test", "logger=csv", f"eval.test_ledger={ledger}",
            f"hydra.sweep.dir={tmp_path / 'score_sweep'}"]
    proc = subprocess.run([sys.executable, "-m", "diffusion_lab", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0 and "eval.test_in_sweep=true" in proc.stdout + proc.stderr
    assert not ledger.exists()

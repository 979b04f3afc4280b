"""Learning curves (issue 37): n training examples per class from the one honest split pipeline, optimizer
steps that grow with n, and the recipe as a real multirun whose report draws one line per model."""

import json
import os
import subprocess
import sys

import pytest

from diffusion_lab.data.cleaning import assemble_splits, per_class_indices
from tests.conftest import REPO, TINY, compose


def test_per_class_indices_take_the_first_n_of_each_class_in_order():
    labels = [0, 1, 1, 0, 2, 1, 0, 0, 1]
    assert per_class_indices(labels, 2, 3) == [0, 1, 2, 3, 4]
    assert per_class_indices(labels, 1, 3) == [0, 1, 4]  # class 2 has one row: all of it


def _rows(n_per_class: int, classes: int, tag: str):
    texts = [f"{tag} text {i} of class {c}" for c in range(classes) for i in range(n_per_class)]
    return texts, [c for c in range(classes) for _ in range(n_per_class)]


def test_max_train_per_class_never_changes_validation_or_test():
    names = ["a", "b", "c"]
    kw = {"label_names": names, "seed": 3, "val_size": 30}
    full = assemble_splits(_rows(100, 3, "train"), _rows(20, 3, "test"), **kw)
    small = assemble_splits(_rows(100, 3, "train"), _rows(20, 3, "test"), max_train_per_class=8, **kw)
    assert sorted(small.train["label"]) == [0] * 8 + [1] * 8 + [2] * 8
    assert set(small.train["text"]) <= set(full.train["text"])  # taken from the pool left after validation
    assert small.validation["text"] == full.validation["text"] and small.test["text"] == full.test["text"]
    other_seed = assemble_splits(_rows(100, 3, "train"), _rows(20, 3, "test"), max_train_per_class=8,
                                 **{**kw, "seed": 4})
    assert set(other_seed.train["text"]) != set(small.train["text"])  # another seed, another draw of n
    with pytest.raises(ValueError, match="max_train_per_class"):
        assemble_splits(_rows(10, 3, "train"), _rows(5, 3, "test"), max_train_per_class=0, **kw)


def test_scaled_schedule_grows_with_the_training_set_within_floor_and_cap():
    from diffusion_lab.tasks.train_classifier import scaled_schedule

    cfg = compose(["+experiment=learning_curve"])
    assert scaled_schedule(cfg, 16)["max_steps"] == 30                   # 20 x 16 / 16 = 20 -> the floor
    assert scaled_schedule(cfg, 64)["max_steps"] == 80                   # 20 x 64 / 16
    big = scaled_schedule(cfg, 1024)
    assert big["max_steps"] == 300 and big["val_check_interval"] == 100  # the cap, 3 validations
    assert big["check_val_every_n_epoch"] is None and big["max_epochs"] == -1
    assert scaled_schedule(cfg, 64, steps=7)["max_steps"] == 7            # the twin gets the generative count
    assert scaled_schedule(compose(["task=train_classifier"]), 64) == {}  # off by default


@pytest.mark.slow
def test_the_recipe_runs_as_a_multirun_and_report_draws_one_line_per_model(tmp_path):
    """Tiny models on the synthetic data, n in {4, 8} x seeds {0, 1}: every job trains the three models on
    its n per class, scores the test items (counted in the ledger), and the report has the curve."""
    sweep, ledger = tmp_path / "sweep", tmp_path / "ledger.jsonl"
    tiny = [o for o in TINY if not o.startswith(("callbacks=", "trainer.max_epochs", "dataset.num_train"))]
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    args = ["-m", "+experiment=learning_curve", "dataset=synthetic_sentiment", "tokenizer=bpe", "model=roberta_tiny",
            *tiny, "callbacks.progress_bar=null", "dataset.num_train=200", "data.max_length=16", "eval.max_test=16",
            "task.scale_steps.min_steps=2", "task.scale_steps.max_steps=6", "task.scale_steps.epochs=1",
            "classifier.num_draws=1", "classifier.sequential=false", "dataset.max_train_per_class=4,8", "seed=0,1",
            f"eval.test_ledger={ledger}", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run([sys.executable, "-m", "diffusion_lab", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = sorted((p for p in sweep.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    results = [json.loads((j / "results.json").read_text()) for j in jobs]
    assert len(results) == 4 and all(set(r["models"]) >= {"generative", "discriminative", "tfidf_lr"} for r in results)
    for r in results:
        n = r["dataset_stats"]["max_train_per_class"]
        assert r["dataset_stats"]["sizes"]["train"] == 2 * n
        assert r["optimizer_steps"] == min(max(-(-2 * n // 16), 2), 6)  # ceil(1 epoch x 2n / 16), clamped
    assert sorted(r["test_configurations"] for r in results)[-1] >= 2  # the rows that share a seed share items
    assert len(ledger.read_text().splitlines()) == 4
    from diffusion_lab.app import run

    report = run(compose(["task=report", f"run_dir={sweep}", "logger=csv"], tmp_path / "report"))
    assert set(report["swept_keys"]) == {"dataset.max_train_per_class", "seed"}
    assert (sweep / "accuracy_by_model_vs_dataset.max_train_per_class.png").is_file()
    assert "discriminative/accuracy" in (sweep / "report_seeds.csv").read_text().splitlines()[0]


@pytest.mark.slow
def test_the_driver_records_a_row_once_and_skips_it_after(tmp_path):
    """experiments/learning_curve/run.sh (through experiments/run_row.sh, shared by the study drivers): a row's
    results.json lands in ROWS_DIR with its command, wall time and uptime; a second run skips the committed row."""
    rows = tmp_path / "rows"
    tiny = [o for o in TINY if not o.startswith(("callbacks=", "trainer.max_epochs", "dataset.num_train"))]
    extra = ["tokenizer=bpe", "model=roberta_tiny", *tiny, "callbacks.progress_bar=null", "dataset.num_train=200",
             "data.max_length=16", "eval.max_test=16", "task.scale_steps.min_steps=2", "task.scale_steps.max_steps=2",
             "classifier.num_draws=1", "classifier.sequential=false", "task.baselines=[tfidf_lr]",
             f"eval.test_ledger={tmp_path / 'ledger.jsonl'}"]
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "DATASET": "synthetic_sentiment", "NS": "4", "SEEDS": "0", "EXTRA": " ".join(extra),
           "ROWS_DIR": str(rows), "RUNS": str(tmp_path / "runs")}
    driver = ["bash", "experiments/learning_curve/run.sh"]
    proc = subprocess.run(driver, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    row = json.loads((rows / "synthetic_sentiment_n4_s0.json").read_text())
    assert set(row["models"]) >= {"generative", "tfidf_lr"} and row["dataset_stats"]["max_train_per_class"] == 4
    assert row["study"]["command"].startswith("python -m diffusion_lab +experiment=learning_curve")
    assert "load average" in row["study"]["uptime_before"] and row["study"]["wall_s"] >= 0
    assert "test_access" not in row  # the ledger's path is this machine's
    again = subprocess.run(driver, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "skip" in again.stdout and len(list((tmp_path / "runs").iterdir())) == 1

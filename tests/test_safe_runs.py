"""Issue 35: loading a run never runs code from it, a run never writes into another run's directory,
SIGTERM/SIGINT are recorded, a failed baseline does not discard the finished models."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from tests.conftest import REPO, TINY, TINY_TRAIN_LM, compose

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
#: the CLI form of the tiny settings (callbacks=default keeps OnExceptionCheckpoint, without a progress bar)
CLI_TINY = [o for o in TINY if o != "callbacks=none"] + ["~callbacks.progress_bar", *TINY_TRAIN_LM]


class Bomb:
    """Unpickling this runs a shell command: what a hostile run directory would carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _run(overrides, out):
    from diffusion_lab.app import run

    task_given = any(o.startswith("task=") for o in overrides)
    return run(compose([*TINY, *([] if task_given else TINY_TRAIN_LM), *overrides], out))


def _cli(args, timeout=300):
    return subprocess.run([sys.executable, "-m", "diffusion_lab", *args], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lm") / "run"
    _run([], out)
    return out


@pytest.fixture(scope="module")
def clf_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("clf") / "run"
    _run(["task=train_classifier", "dataset=synthetic_sentiment"], out)
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(run, dst)
    return dst


def _plant(ckpt: Path, marker: Path) -> None:
    state = torch.load(ckpt, weights_only=True)
    state["extra"] = Bomb(marker)
    torch.save(state, ckpt)


def _digest(run: Path) -> dict[str, str]:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file()}


# --- 1: loading a run never executes code from it ---------------------------------------------------

@pytest.mark.parametrize("task,ckpt,extra", [
    ("generate", "best.ckpt", []),
    ("generate", "last.ckpt", ["checkpoint=last"]),
    ("visualize", "best.ckpt", ["task.length=8", "sampler.steps=2"]),
])
def test_a_pickle_bomb_in_an_lm_checkpoint_is_refused(lm_run, tmp_path, task, ckpt, extra):
    from diffusion_lab.runs import UnsafeCheckpointError

    run, marker = _copy(lm_run, tmp_path), tmp_path / "pwned"
    _plant(run / "checkpoints" / ckpt, marker)
    with pytest.raises(UnsafeCheckpointError, match=r"refused: .*posix\.system.*could run code"):
        _run([f"task={task}", f"run_dir={run}", *extra], tmp_path / "out")
    assert not marker.exists()


def test_a_pickle_bomb_in_last_ckpt_is_refused_on_resume_before_the_run_is_touched(lm_run, tmp_path):
    from diffusion_lab.runs import UnsafeCheckpointError

    run, marker = _copy(lm_run, tmp_path), tmp_path / "pwned"
    _plant(run / "checkpoints" / "last.ckpt", marker)
    before = _digest(run)
    with pytest.raises(UnsafeCheckpointError, match="last.ckpt refused"):
        _run(["resume=true", "trainer.max_epochs=2"], run)
    assert not marker.exists()
    after = _digest(run)  # the refused attempt is recorded beside the run, nothing of it is replaced
    assert json.loads((run / "results_failed.json").read_text())["status"] == "failed"
    assert {k: v for k, v in after.items() if k not in ("config_resolved.yaml", "results_failed.json")} == \
        {k: v for k, v in before.items() if k != "config_resolved.yaml"}


def test_lightning_resume_itself_loads_weights_only(lm_run, tmp_path, monkeypatch):
    """Even past our own check (a file swapped after it), Lightning's restore refuses the bomb."""
    import diffusion_lab.tasks.train_lm as train_lm

    run, marker = _copy(lm_run, tmp_path), tmp_path / "pwned"
    _plant(run / "checkpoints" / "last.ckpt", marker)
    monkeypatch.setattr(train_lm, "check_checkpoint_readable", lambda path: None)
    with pytest.raises(Exception, match="(?i)weights only load failed|posix.system"):
        _run(["resume=true", "trainer.max_epochs=2"], run)
    assert not marker.exists()


@pytest.mark.parametrize("where", ["checkpoints/best.ckpt", "discriminative/checkpoints/best.ckpt"])
def test_a_pickle_bomb_in_a_classifier_checkpoint_is_refused_by_evaluate(clf_run, tmp_path, where):
    from diffusion_lab.runs import UnsafeCheckpointError

    run, marker = _copy(clf_run, tmp_path), tmp_path / "pwned"
    _plant(run / where, marker)
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        _run(["task=evaluate", f"run_dir={run}"], tmp_path / "out")
    assert not marker.exists()


def test_tfidf_is_saved_as_plain_arrays_and_reloads_to_the_same_probabilities(clf_run):
    from diffusion_lab.classifiers.build import TFIDF_FILE, load_classifier_run
    from diffusion_lab.classifiers.tfidf import TfidfLogReg

    assert (clf_run / TFIDF_FILE).exists() and not (clf_run / "tfidf_lr.joblib").exists()
    with np.load(clf_run / TFIDF_FILE, allow_pickle=False) as data:  # would raise on any pickled object
        assert {"terms", "idf", "coef", "intercept", "classes"} <= set(data.files)
    *_, baselines = load_classifier_run(clf_run)
    texts = ["a wonderful film", "a dull and boring film"]
    fresh = TfidfLogReg.load(clf_run / TFIDF_FILE)
    assert np.allclose(baselines["tfidf_lr"].log_probs(texts)[0], fresh.log_probs(texts)[0])
    results = json.loads((clf_run / "results.json").read_text())
    assert "tfidf_lr" in results["models"]


def test_a_pickle_in_the_tfidf_file_is_refused_and_a_legacy_joblib_is_never_unpickled(clf_run, tmp_path, caplog):
    from diffusion_lab.classifiers.build import TFIDF_FILE, load_classifier_run

    run, marker = _copy(clf_run, tmp_path), tmp_path / "pwned"
    with open(run / TFIDF_FILE, "wb") as f:
        np.savez(f, terms=np.array([Bomb(marker)], dtype=object))
    with pytest.raises(ValueError, match="refused: it holds pickled objects"):
        load_classifier_run(run)
    with pytest.raises(ValueError, match="refused"):
        _run(["task=evaluate", f"run_dir={run}"], tmp_path / "out")
    (run / TFIDF_FILE).unlink()
    import pickle

    (run / "tfidf_lr.joblib").write_bytes(pickle.dumps(Bomb(marker)))
    *_, baselines = load_classifier_run(run)
    assert "tfidf_lr" not in baselines and "tfidf_lr.joblib is not loaded" in caplog.text
    assert not marker.exists()


# --- 2 and 4: a new run never writes into another run's directory -----------------------------------

@pytest.mark.slow
def test_a_new_run_pointed_at_a_finished_run_is_refused_with_nothing_written(lm_run, tmp_path):
    run = _copy(lm_run, tmp_path)
    before = _digest(run)
    proc = _cli([*CLI_TINY, "seed=1", f"hydra.run.dir={run}"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "already holds a task=train_lm run, status finished" in proc.stderr
    assert f"resume=true run_dir={run}" in proc.stderr
    # a run that would fail at start-up anyway is refused the same way, before its own error
    proc = _cli([*CLI_TINY, "trainer.max_steps=0", f"hydra.run.dir={run}"])
    assert proc.returncode == 2 and "already holds" in proc.stderr
    assert _digest(run) == before  # .hydra/, app.log, config, metrics, results: all untouched


def test_in_process_run_refuses_a_finished_run_directory_and_writes_nothing(lm_run, tmp_path):
    from diffusion_lab.errors import ConfigError

    run = _copy(lm_run, tmp_path)
    before = _digest(run)
    with pytest.raises(ConfigError, match="output_dir=.* already holds"):
        _run(["seed=1"], run)
    assert _digest(run) == before


@pytest.mark.slow
def test_resume_in_place_with_a_changed_config_is_refused_before_hydra_writes(lm_run, tmp_path):
    run = _copy(lm_run, tmp_path)
    before = _digest(run)
    proc = _cli([*CLI_TINY, "resume=true", "optimizer.lr=0.5", f"hydra.run.dir={run}"])
    assert proc.returncode == 2 and "optimizer.lr" in proc.stderr, proc.stderr[-2000:]
    assert _digest(run) == before


@pytest.mark.slow
def test_a_sweep_directory_holding_finished_jobs_is_refused(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", *(o for o in CLI_TINY if o not in TINY_TRAIN_LM), "task=visualize", "task.mode=masking", "seed=0", f"hydra.sweep.dir={sweep}"]
    assert _cli(args).returncode == 0
    before = _digest(sweep)
    proc = _cli(args)
    assert proc.returncode == 2 and "hydra.sweep.dir job" in proc.stderr, proc.stderr[-2000:]
    assert _digest(sweep) == before


@pytest.mark.slow
def test_an_unwritable_run_directory_is_one_config_error_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    proc = _cli([*CLI_TINY, f"hydra.run.dir={blocker / 'run'}"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("config error: hydra.run.dir=") and "cannot be written" in lines[-1]
    assert "Traceback" not in proc.stderr


# --- 3: SIGTERM and SIGINT are recorded ---------------------------------------------------------------

class SignalSelf(Callback):
    """Sends this process ``signal`` at the start of the second epoch (as SLURM or ``timeout`` would)."""

    def __init__(self, signal_name: str = "SIGTERM"):
        self.signal = getattr(signal, signal_name)

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            os.kill(os.getpid(), self.signal)


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_records_interrupted_keeps_the_exception_checkpoint_and_says_how_to_resume(tmp_path, sig, code):
    out = tmp_path / "run"
    proc = _cli([*CLI_TINY, "trainer.max_epochs=5", "+callbacks.signal_self._target_=tests.test_safe_runs.SignalSelf",
                 f"+callbacks.signal_self.signal_name={sig}", f"hydra.run.dir={out}"])
    assert proc.returncode == code, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "interrupted" and sig in results["error"]
    assert (out / "checkpoints" / "on_exception.ckpt").exists()
    assert "interrupted (" in proc.stderr and f"resume=true run_dir={out}" in " ".join(proc.stderr.split())


def test_a_signal_outside_training_is_recorded_too(tmp_path, monkeypatch):
    """SIGTERM while scoring (after fit): our handler, not Lightning's, records it."""
    import diffusion_lab.tasks.train_lm as train_lm
    from diffusion_lab.app import Interrupted

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(train_lm, "collect_results", terminated)
    with pytest.raises(SystemExit) as err:
        _run([], tmp_path / "run")
    assert err.value.code == 143
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["status"] == "interrupted" and "SIGTERM" in results["error"]
    assert signal.getsignal(signal.SIGTERM) is not None and Interrupted.__mro__[1] is KeyboardInterrupt


# --- 9: a failed baseline is recorded beside the models that finished -------------------------------

def test_a_failed_baseline_keeps_the_finished_models(tmp_path, monkeypatch):
    from diffusion_lab.classifiers.tfidf import TfidfLogReg

    def no_terms(self, *args, **kwargs):
        raise ValueError("empty vocabulary; perhaps the documents only contain stop words")

    monkeypatch.setattr(TfidfLogReg, "fit", no_terms)
    results = _run(["task=train_classifier", "dataset=synthetic_sentiment"], tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["status"] == "finished" and results["status"] == "finished"
    assert {"generative", "discriminative"} <= set(saved["models"]) and "tfidf_lr" not in saved["models"]
    assert "empty vocabulary" in saved["failed_models"]["tfidf_lr"]


# --- weaker cases: file modes, a full disk ------------------------------------------------------------

def test_results_json_follows_the_umask_like_every_other_file(tmp_path):
    from diffusion_lab.runs import write_results

    old = os.umask(0o022)
    try:
        path = write_results(tmp_path, {"status": "finished"})
        other = tmp_path / "other.txt"
        other.write_text("x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == other.stat().st_mode & 0o777 == 0o644


def test_a_full_disk_at_the_failure_record_is_said_not_hidden(tmp_path, monkeypatch, caplog):
    import diffusion_lab.app as app

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(app, "write_results", disk_full)
    assert app.record_status(tmp_path, "failed", RuntimeError("boom"), 0.0) is None
    assert "No space left on device" in caplog.text and "results.json" in caplog.text


def test_the_failure_line_points_at_the_record_that_exists(tmp_path):
    from diffusion_lab.app import _status_file
    from diffusion_lab.runs import write_results

    assert _status_file(tmp_path).startswith("no failure record could be written")
    write_results(tmp_path, {"status": "finished"})
    write_results(tmp_path, {"status": "failed"}, "results_failed.json")
    assert _status_file(tmp_path) == f"status in {tmp_path / 'results_failed.json'}"


def test_resuming_a_finished_run_keeps_its_results(lm_run, tmp_path):
    """The resumed run rewrites results.json; the finished one's is kept beside it, like metrics.csv."""
    run = _copy(lm_run, tmp_path)
    finished = (run / "results.json").read_text()
    _run(["resume=true", "trainer.max_epochs=2"], run)
    assert (run / "results_before_resume_0.json").read_text() == finished
    assert json.loads((run / "results.json").read_text())["status"] == "finished"

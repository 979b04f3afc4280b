"""Issue 14: nothing lost, nothing silent (run isolation, atomic results, resume safety, clear errors).

Each test reproduces one defect of the issue (numbered as there) on a tiny run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from lightning.pytorch import Callback

from diffusion_lab.errors import ConfigError
from tests.conftest import REPO, TINY, TINY_TRAIN_LM, compose

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false",
       "OMP_NUM_THREADS": "1"}


def _run(overrides, out):
    from diffusion_lab.app import run

    task_given = any(o.startswith("task=") for o in overrides)
    return run(compose([*TINY, *([] if task_given else TINY_TRAIN_LM), *overrides], out))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished tiny train_lm run (2 epochs), copied by the tests that damage it."""
    out = tmp_path_factory.mktemp("trained") / "run"
    _run(["trainer.max_epochs=2"], out)
    return out


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(run_dir, dst)
    return dst


# --- 1: two runs in the same second ---------------------------------------------------------------


@pytest.mark.slow
def test_1_two_runs_started_in_the_same_second_keep_their_own_directories(tmp_path):
    """Both runs use the same time-stamped name (as two runs in one second would); the per-process
    token of the default ``hydra.run.dir`` keeps them apart and both results survive."""
    from omegaconf import OmegaConf

    default = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "config.yaml").hydra, resolve=False)
    assert default["run"]["dir"].endswith("-${dl.run_token:}") and default["sweep"]["dir"].endswith("-${dl.run_token:}")
    same_second = "hydra.run.dir=outputs/task/2026-01-01/10-00-00-${dl.run_token:}"
    procs = [subprocess.Popen([sys.executable, "-m", "diffusion_lab", "task=visualize", "task.mode=masking",
                               "logger=none", f"seed={seed}", same_second], cwd=tmp_path, env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in (0, 1)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    dirs = sorted((tmp_path / "outputs" / "task" / "2026-01-01").iterdir())
    assert len(dirs) == 2, dirs
    seeds = sorted(json.loads((d / "masking.json").read_text())["seed"] for d in dirs)
    assert seeds == [0, 1]
    assert all(json.loads((d / "results.json").read_text())["status"] == "finished" for d in dirs)


# --- 5: atomic results, a report that survives a damaged file ---------------------------------------


def test_5_exception_during_write_results_keeps_the_previous_file(tmp_path, monkeypatch):
    from diffusion_lab import runs

    runs.write_results(tmp_path, {"status": "finished", "acc": 0.9})
    before = (tmp_path / "results.json").read_text()

    def boom(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        runs.write_results(tmp_path, {"status": "finished", "acc": 0.1, "big": list(range(10000))})
    assert (tmp_path / "results.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # no temp file left behind


def test_5_kill_9_during_write_results_keeps_the_previous_file(tmp_path):
    code = (
        "import os, signal, sys\n"
        "from diffusion_lab import runs\n"
        "runs.write_results(sys.argv[1], {'status': 'finished', 'acc': 0.9})\n"
        "real = os.fsync\n"
        "os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # dies with the new text half-way\n"
        "runs.write_results(sys.argv[1], {'status': 'finished', 'acc': 0.1, 'big': list(range(100000))})\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, env=ENV, capture_output=True,
                          timeout=600)  # generous: a loaded machine takes minutes to import torch + lightning
    assert proc.returncode == -signal.SIGKILL
    assert json.loads((tmp_path / "results.json").read_text()) == {"status": "finished", "acc": 0.9}


def test_5_report_names_an_unreadable_results_file_and_goes_on(tmp_path):
    from diffusion_lab.sweep_results.collect import collect

    for name, text in (("0", '{"status": "finished", "val/nll": 1.5}'), ("1", '{"status": "fini')):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(text)
    jobs = {j.path.name: j for j in collect([tmp_path])}
    assert jobs["0"].status == "finished" and jobs["0"].metrics["val/nll"] == 1.5
    assert jobs["1"].status == "unreadable" and str(tmp_path / "1" / "results.json") in jobs["1"].error


# --- 2 and 6: resume compares configs and the run kind ---------------------------------------------


def test_2_resume_with_a_changed_key_is_refused_naming_it(trained):
    with pytest.raises(ConfigError) as err:
        _run(["resume=true", f"run_dir={trained}", "masking=seed_discrete", "optimizer.lr=0.01"],
             trained.parent / "r1")
    msg = str(err.value)
    assert "optimizer.lr: 0.001 -> 0.01" in msg and "masking.name" in msg and "resume_override=[" in msg
    assert "\n" not in msg
    assert not (trained / "metrics_before_resume_0.csv").exists()  # refused before touching the run


def test_2_resume_override_names_the_accepted_keys_and_updates_the_run_config(trained, tmp_path):
    from omegaconf import OmegaConf

    from diffusion_lab.runs import check_resume_config, record_resume_config

    run = _copy(trained, tmp_path)
    cfg = compose([*TINY, *TINY_TRAIN_LM, "resume=true", f"run_dir={run}", "optimizer.lr=0.01",
                   "trainer.max_epochs=3", "resume_override=[optimizer.lr]"], tmp_path / "new")
    assert list(check_resume_config(cfg, run)) == ["optimizer.lr"]  # max_epochs is a budget: free
    record_resume_config(cfg, run)
    assert OmegaConf.load(run / "config_resolved.yaml").optimizer.lr == 0.01
    assert OmegaConf.load(run / "config_before_resume_0.yaml").optimizer.lr == 0.001


def test_6_resume_of_another_kind_of_run_is_refused(trained, tmp_path):
    from diffusion_lab.runs import require_run_kind

    with pytest.raises(ConfigError, match=r"is a task=train_lm run; task=evaluate needs .* task=train_classifier"):
        require_run_kind(trained, ["train_classifier"], "task=evaluate")
    cfg = compose([*TINY, "task=train_classifier", "resume=true", f"run_dir={trained}"], tmp_path / "x")
    from diffusion_lab.app import check_resume

    with pytest.raises(ConfigError, match="resume=true with task=train_classifier needs"):
        check_resume(cfg)


# --- 7: corrupt checkpoints -------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["zeroed", "truncated", "empty"])
def test_7_corrupt_last_checkpoint_is_one_clear_error_and_the_run_is_untouched(trained, tmp_path, damage):
    from diffusion_lab.runs import CheckpointError

    run = _copy(trained, tmp_path)
    last = run / "checkpoints" / "last.ckpt"
    data = last.read_bytes()
    last.write_bytes({"zeroed": bytes(len(data)), "truncated": data[: len(data) // 3], "empty": b""}[damage])
    metrics = (run / "metrics.csv").read_text()
    with pytest.raises(CheckpointError) as err:
        _run(["resume=true", f"run_dir={run}"], tmp_path / "r")
    msg = str(err.value)
    assert str(last) in msg and f"checkpoint={run / 'checkpoints' / 'best.ckpt'}" in msg
    assert "checkpoint=last" not in msg and "weights_only" not in msg and "\n" not in msg
    assert (run / "metrics.csv").read_text() == metrics and not list(run.glob("metrics_before_resume_*"))


def test_7_corrupt_best_checkpoint_suggests_last_not_itself(trained, tmp_path):
    from diffusion_lab.runs import CheckpointError, load_checkpoint

    run = _copy(trained, tmp_path)
    best = run / "checkpoints" / "best.ckpt"
    best.write_bytes(b"\0" * 100)
    with pytest.raises(CheckpointError, match="last.ckpt") as err:
        load_checkpoint(best)
    assert "best.ckpt or" not in str(err.value).split("try ")[1]


# --- 12: interruptions, empty budgets, one-line errors ----------------------------------------------


class Boom(Callback):
    def on_train_start(self, trainer, pl_module):
        raise RuntimeError("boom")


class CtrlC(Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt


def test_12_ctrl_c_saves_a_checkpoint_and_results_say_interrupted(tmp_path):
    handler = signal.getsignal(signal.SIGINT)
    callbacks = ["callbacks=default", "~callbacks.progress_bar", "~callbacks.model_summary", "~callbacks.lr_monitor",
                 "+callbacks.ctrl_c._target_=tests.test_reliability.CtrlC"]
    try:
        with pytest.raises(SystemExit):  # Lightning's graceful shutdown ends with sys.exit(1)
            _run(["trainer.max_epochs=3", *callbacks], tmp_path / "run")
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores SIGINT after a Ctrl-C
    out = tmp_path / "run"
    assert json.loads((out / "results.json").read_text())["status"] == "interrupted"
    assert (out / "checkpoints" / "on_exception.ckpt").stat().st_size > 0


def test_12_max_steps_zero_is_refused_not_finished(tmp_path):
    from diffusion_lab.config_schema import validate

    with pytest.raises(ConfigError, match=r"trainer.max_steps=0: no optimizer step would run"):
        validate(compose(["trainer.max_steps=0"], tmp_path))


def test_12_failure_keeps_finished_results_and_records_the_error(trained, tmp_path):
    """A failing resume in the same directory records its failure beside the finished results."""
    run = _copy(trained, tmp_path)
    finished = (run / "results.json").read_text()
    with pytest.raises(RuntimeError, match="boom"):
        _run(["resume=true", "trainer.max_epochs=3", "+callbacks.boom._target_=tests.test_reliability.Boom"], run)
    assert (run / "results.json").read_text() == finished
    failed = json.loads((run / "results_failed.json").read_text())
    assert failed["status"] == "failed" and "Traceback" in failed["traceback"]


@pytest.mark.slow
def test_12_cli_error_is_one_line_after_a_header_with_the_traceback_in_the_log(tmp_path):
    out = tmp_path / "out"
    missing = tmp_path / "missing.csv"
    proc = subprocess.run([sys.executable, "-m", "diffusion_lab", "dataset=text_files", f"dataset.train_path={missing}",
                           f"dataset.test_path={missing}", f"hydra.run.dir={out}", "logger=none"], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) <= 3, proc.stderr
    assert str(missing) in lines[-1]
    assert lines[-2].startswith("task=train_lm failed (full traceback in") and lines[-1].startswith("error: ")
    assert "Traceback" in next(out.glob("*.log")).read_text()
    assert "config" not in proc.stdout.splitlines()[:1]  # no config tree before the error
    assert json.loads((out / "results.json").read_text())["status"] == "failed"

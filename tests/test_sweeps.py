"""Sweeps, reports and scale-out: multirun through the real CLI, failed jobs, task=report, 2-process DDP
on CPU, composition of every trainer / launcher / sweeper config, global batch size arithmetic."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CONF, REPO, TINY, compose
from omegaconf import OmegaConf

from diffusion_lab.batch_size import batch_plan, device_count, per_device_batch
from diffusion_lab.errors import ConfigError

#: tiny quickstart runs for the CLI (callbacks kept: the checkpoints are part of what is checked)
CLI_TINY = [o for o in TINY if not o.startswith(("callbacks=", "trainer.max_epochs"))] + [
    "+experiment=quickstart", "data.max_length=16", "data.batch_size=16", "data.max_val=16",
    "task.num_samples=1", "task.sample_length=8", "task.eval_draws=2",
    "callbacks.progress_bar=null", "callbacks.model_summary=null",
]


def cli(args: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    """``python -m diffusion_lab <args>`` offline, one torch thread, from the repository root."""
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "WANDB_SILENT": "true",
           "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run([sys.executable, "-m", "diffusion_lab", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def results(job_dir: Path) -> dict:
    return json.loads((job_dir / "results.json").read_text())


# ---- global batch size ------------------------------------------------------------------------------
@pytest.mark.parametrize("args, expected", [
    ((32, 1, 1, 32), (32, 1)),      # fits: no accumulation
    ((32, 2, 1, 32), (16, 1)),      # two devices share it
    ((128, 2, 1, 16), (16, 4)),     # 2 devices x 16 x 4 steps
    ((256, 4, 2, 16), (16, 2)),     # 2 nodes x 4 devices x 16 x 2 steps
    ((96, 1, 1, 64), (48, 2)),      # smallest accumulation that divides: 2 x 48, never 64 + 32
    ((98, 1, 1, 32), (14, 7)),      # 98 = 7 x 14 (4 x 24.5 is impossible)
    ((64, 1, 1, None), (64, 1)),    # no cap
])
def test_per_device_batch(args, expected):
    per_device, accumulate = per_device_batch(*args)
    assert (per_device, accumulate) == expected
    global_batch, devices, nodes, cap = args
    assert per_device * accumulate * devices * nodes == global_batch
    assert cap is None or per_device <= cap


@pytest.mark.parametrize("args, message", [
    ((30, 4, 1, 32), "not divisible by devices\\*num_nodes=4\\*1=4"),
    ((16, 2, 3, 8), "devices\\*num_nodes=2\\*3=6"),
    ((0, 1, 1, 8), "data.global_batch_size=0"),
    ((8, 0, 1, 8), "trainer.devices=0"),
    ((8, 1, 1, 0), "data.batch_size=0"),
])
def test_per_device_batch_errors(args, message):
    with pytest.raises(ConfigError, match=message):
        per_device_batch(*args)


def test_batch_plan_from_config():
    assert batch_plan(compose([])) is None    # global_batch_size null: data.batch_size per device
    cfg = compose(["trainer=ddp_cpu", "data.global_batch_size=64", "data.batch_size=16"])
    assert batch_plan(cfg) == (16, 2)
    assert device_count("0,1") == 2 and device_count([0, 3, 5]) == 3 and device_count("auto", "cpu") == 1
    with pytest.raises(ConfigError, match="leave that at 1"):
        batch_plan(compose(["data.global_batch_size=64", "trainer.accumulate_grad_batches=2"]))


# ---- composition of every trainer, launcher and sweeper config -----------------------------------------
@pytest.mark.parametrize("trainer", sorted(p.stem for p in (CONF / "trainer").glob("*.yaml")))
def test_trainer_configs_compose(trainer, tmp_path):
    cfg = compose([f"trainer={trainer}"], tmp_path)
    OmegaConf.to_container(cfg.trainer, resolve=True)
    assert cfg.trainer._target_ == "lightning.Trainer"
    if trainer in ("ddp_cpu", "ddp", "multinode", "fsdp"):
        assert cfg.trainer.strategy not in ("auto", None)


def test_ddp_cpu_trainer_instantiates_two_gloo_processes(tmp_path):
    from diffusion_lab.builders import build_trainer

    cfg = compose(["trainer=ddp_cpu", "logger=csv", "callbacks=none", "data.global_batch_size=32",
                   "data.batch_size=8"], tmp_path)
    trainer = build_trainer(cfg, tmp_path)
    assert trainer.num_devices == 2 and trainer.accumulate_grad_batches == 2
    assert type(trainer.strategy).__name__ == "DDPStrategy"


@pytest.mark.parametrize("launcher", ["basic", "joblib", "local_parallel", "submitit_local", "submitit_slurm",
                                      "slurm_gpu"])
def test_launcher_configs_compose(launcher):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hydra_compose("config", overrides=[f"hydra/launcher={launcher}", "trainer=multinode"],
                            return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert params["_target_"].startswith(("hydra.", "hydra_plugins."))
    if launcher == "slurm_gpu":   # the allocation is sized from the trainer
        assert (params["nodes"], params["tasks_per_node"], params["gpus_per_node"]) == (2, 4, 4)


def test_optuna_sweeper_config_composes():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hydra_compose("config", overrides=["+experiment=quickstart", "+hparams_search=optuna", "seed=7"],
                            return_hydra_config=True)
    sweeper = OmegaConf.to_container(cfg.hydra.sweeper, resolve=True)
    assert sweeper["_target_"].endswith("OptunaSweeper") and str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert sweeper["sampler"]["seed"] == 7    # seeded by the run seed
    assert sweeper["direction"] == {"min": "minimize", "max": "maximize"}[cfg.task.monitor_mode]
    assert {"optimizer.lr", "masking", "masking.max_rate"} <= set(sweeper["params"])


# ---- multirun + report through the real CLI -----------------------------------------------------------
@pytest.fixture(scope="module")
def sweep_2x2(tmp_path_factory) -> Path:
    """A 2x2 multirun (max rate x epochs of 2 batches) of the tiny quickstart with offline W&B."""
    sweep = tmp_path_factory.mktemp("sweep") / "masking"
    cli(["-m", *CLI_TINY, "logger=wandb", "trainer.limit_train_batches=2",
         "masking.max_rate=0.5,1.0", "trainer.max_epochs=1,2",
         f"hydra.sweep.dir={sweep}"])
    return sweep


@pytest.mark.slow
def test_multirun_writes_one_directory_per_job(sweep_2x2):
    jobs = sorted(p for p in sweep_2x2.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1", "2", "3"]
    steps = set()
    for job in jobs:
        res = results(job)
        assert res["status"] == "finished" and res["val/nll_per_token"] > 0
        assert (job / "checkpoints" / "last.ckpt").exists() and (job / "metrics.csv").exists()
        steps.add(res["global_step"])
    assert steps == {2, 4}


@pytest.mark.slow
def test_sweep_jobs_share_one_wandb_group(sweep_2x2):
    groups = set()
    for job in sorted(p for p in sweep_2x2.iterdir() if p.is_dir()):
        cfg = OmegaConf.load(job / "config_resolved.yaml")
        assert cfg.logger.wandb.job_type == "train_lm" and "quickstart" in cfg.logger.wandb.tags
        swept = {t.split("=")[0] for t in cfg.logger.wandb.tags if "=" in t}
        assert {"masking.max_rate", "trainer.max_epochs"} <= swept  # the swept keys are tags too
        groups.add(cfg.logger.wandb.group)
        (run_file,) = (job / "wandb").glob("offline-run-*/run-*.wandb")
        assert cfg.logger.wandb.group.encode() in run_file.read_bytes()   # what W&B will upload
    assert len(groups) == 1 and next(iter(groups)) and next(iter(groups)).startswith("sweep-")


@pytest.mark.slow
def test_report_of_a_sweep(sweep_2x2):
    # the report's own run directory inside the sweep is not counted as a job
    cli(["task=report", f"run_dir={sweep_2x2}", f"hydra.run.dir={sweep_2x2 / 'report'}", "print_config=false"])
    with (sweep_2x2 / "report.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"finished"}
    assert {"masking.max_rate", "trainer.max_epochs", "val/nll_per_token"} <= set(rows[0])
    assert {(r["masking.max_rate"], r["trainer.max_epochs"]) for r in rows} == {
        ("0.5", "1"), ("0.5", "2"), ("1.0", "1"), ("1.0", "2")}
    assert "| masking.max_rate |" in (sweep_2x2 / "report.md").read_text()
    assert {p.name for p in sweep_2x2.glob("*.png")} == {
        "val_nll_per_token_vs_masking.max_rate.png", "val_nll_per_token_vs_trainer.max_epochs.png"}


@pytest.mark.slow
def test_failing_job_is_recorded_and_the_sweep_goes_on(tmp_path, sweep_2x2):
    """One job reads a training file that does not exist: it fails at run time, its sibling finishes."""
    data = tmp_path / "data"
    data.mkdir()
    for name, offset in (("train.csv", 0), ("test.csv", 100)):   # distinct texts: duplicates are removed
        lines = [f"{t} {i + offset},{i % 2}" for i, t in enumerate(["good film", "bad film", "nice plot", "dull plot"] * 8)]
        (data / name).write_text("text,label\n" + "\n".join(lines) + "\n")
    sweep = tmp_path / "sweep"
    cli(["-m", *[o for o in CLI_TINY if not o.startswith("dataset.num_")], "dataset=text_files",
         f"dataset.train_path={data / 'train.csv'},{data / 'missing.csv'}", f"dataset.test_path={data / 'test.csv'}",
         "dataset.val_size=0.25", "trainer.max_epochs=1", "trainer.limit_train_batches=1", f"hydra.sweep.dir={sweep}"])
    assert results(sweep / "0")["status"] == "finished"
    failed = results(sweep / "1")
    assert failed["status"] == "failed" and "missing.csv" in failed["error"]

    # the report takes several directories and marks the failed job with its error
    from diffusion_lab.tasks.report import run as report

    cfg = compose(["task=report", f"run_dir=[{sweep},{sweep_2x2}]", f"task.out_dir={tmp_path / 'rep'}"], tmp_path)
    out = report(cfg)
    assert out["num_jobs"] == 6 and out["failed"] == [str(sweep / "1")]
    with (tmp_path / "rep" / "report.csv").open() as f:
        bad = [r for r in csv.DictReader(f) if r["status"] == "failed"]
    assert len(bad) == 1 and "missing.csv" in bad[0]["error"]


def test_report_over_seeds_and_classifier_results(tmp_path):
    """Seeds give mean and 95% interval; classifier ``models`` flatten to ``<model>/accuracy``."""
    from diffusion_lab.metrics.classification import mean_ci95
    from diffusion_lab.tasks.report import run as report

    accs = {(0.5, 0): 0.70, (0.5, 1): 0.74, (1.0, 0): 0.80, (1.0, 1): 0.84}
    for i, ((rate, seed), acc) in enumerate(accs.items()):
        job = tmp_path / "sweep" / str(i)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- masking.max_rate={rate}\n- seed={seed}\n")
        (job / "results.json").write_text(json.dumps({"status": "finished", "models": {
            "generative": {"accuracy": acc, "ece": 0.1}, "tfidf": {"accuracy": 0.9}}}))
    cfg = compose(["task=report", f"run_dir={tmp_path / 'sweep'}", "task.monitor=generative/accuracy"], tmp_path)
    out = report(cfg)
    assert out["swept_keys"] == ["masking.max_rate", "seed"] and out["num_jobs"] == 4
    with (tmp_path / "sweep" / "report_seeds.csv").open() as f:
        summary = {r["masking.max_rate"]: r for r in csv.DictReader(f)}
    assert float(summary["1.0"]["generative/accuracy"]) == pytest.approx(0.82)
    lo, hi = mean_ci95([0.80, 0.84])[1:]
    assert summary["1.0"]["generative/accuracy 95% CI"] == f"[{lo:.4g}, {hi:.4g}]"
    assert summary["1.0"]["n_seeds"] == "2" and "tfidf/accuracy" in summary["1.0"]
    assert (tmp_path / "sweep" / "generative_accuracy_vs_masking.max_rate.png").exists()


# ---- two processes on CPU -----------------------------------------------------------------------------
@pytest.mark.slow
def test_ddp_cpu_trains_with_two_processes_and_writes_once(tmp_path):
    """2 ranks (gloo); global batch 16 = 2 ranks x 4 x 2 accumulation -> 96 rows = 6 optimiser steps."""
    run = tmp_path / "ddp"
    cli([*CLI_TINY, "trainer=ddp_cpu", "trainer.max_epochs=1", "data.global_batch_size=16", "data.batch_size=4",
         "logger=wandb", f"hydra.run.dir={run}"])
    res = results(run)
    assert res["status"] == "finished" and res["global_step"] == 96 // 16
    assert (run / "train_ddp_process_1.log").exists()          # the second process ran ...
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]  # ... wrote none
    assert len(list(run.rglob("metrics.csv"))) == 1 and len(list(run.rglob("results.json"))) == 1
    assert len(list((run / "wandb").glob("offline-run-*"))) == 1
    assert len((run / "samples.txt").read_text().splitlines()) == 1   # one sample, written once

"""Composition of every config, and start-up validation of bad values (one line, names the key)."""

import subprocess
import sys
from pathlib import Path

import pytest

from diffusion_lab.config_schema import validate
from diffusion_lab.errors import ConfigError
from tests.conftest import CONF, REPO, compose

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_validates(name, tmp_path):
    cfg = compose([f"+experiment={name}"], tmp_path)
    assert cfg.task.run and cfg.model.backbone._target_
    if not cfg.model.get("pretrained"):
        validate(cfg)


@pytest.mark.parametrize("group", ["model", "masking", "sampler", "dataset", "tokenizer", "trainer", "logger", "task", "classifier"])
def test_every_group_option_composes(group, tmp_path):
    for option in sorted(p.stem for p in (CONF / group).glob("*.yaml")):
        cfg = compose([f"{group}={option}"], tmp_path)
        assert group in cfg


@pytest.mark.parametrize(
    "override, key",
    [
        ("masking.max_rate=1.5", "masking"),
        ("masking.min_rate=0", "masking"),
        ("sampler.steps=0", "sampler.steps"),
        ("data.batch_size=0", "data.batch_size"),
        ("data.batch_size=abc", "data.batch_size"),
        ("sampler.schedule=zigzag", "sampler.schedule"),
        ("classifier.estimator=magic", "classifier.estimator"),
        ("model.objective=autoregressive", "model.objective"),
        ("classifier.stage_draws=0", "classifier.stage_draws"),
        ("classifier.stage_draws=some", "classifier.stage_draws"),
    ],
)
def test_bad_values_fail_validation_naming_the_key(override, key, tmp_path):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose([override], tmp_path))


def _cli(*args, tmp_path):
    return subprocess.run([sys.executable, "-m", "diffusion_lab", *args, f"hydra.run.dir={tmp_path}"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


@pytest.mark.slow
def test_cli_bad_value_is_one_line_before_any_work(tmp_path):
    proc = _cli("sampler.steps=-3", tmp_path=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("config error: sampler.steps=-3")
    assert not (Path(tmp_path) / "tokenizer").exists()  # stopped before any data or model work


@pytest.mark.slow
def test_cli_unknown_option_lists_the_valid_ones(tmp_path):
    proc = _cli("sampler=nonexistent", tmp_path=tmp_path)
    assert proc.returncode != 0
    assert "confidence" in proc.stderr and "ddpm_cache" in proc.stderr


@pytest.mark.slow
def test_pretrained_experiment_offline_stops_at_once_naming_the_options(tmp_path):
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "diffusion_lab", "+experiment=imdb_gen_clf", f"hydra.run.dir={tmp_path}"],
                          capture_output=True, text=True, cwd=REPO, timeout=120, env=env)
    assert proc.returncode == 2
    assert "imdb_gen_clf_cpu" in proc.stderr and "model.pretrained=<local folder" in proc.stderr


@pytest.mark.parametrize("task", ["train_lm", "train_classifier"])
def test_a_step_schedule_without_a_step_count_fails_at_start_up(task, tmp_path):
    budget_only = [f"task={task}", "trainer.max_steps=-1", "trainer.max_epochs=-1", "trainer.max_time=00:00:01:00"]
    with pytest.raises(ConfigError, match="scheduler=budget_triangle"):
        validate(compose([*budget_only, "scheduler=warmup_cosine"], tmp_path))
    validate(compose([*budget_only, "scheduler=budget_triangle"], tmp_path))  # it decays over max_time
    validate(compose([f"task={task}", "trainer.max_steps=10", "trainer.max_epochs=-1", "scheduler=warmup_cosine"], tmp_path))


def test_the_run_name_is_the_experiment_and_hydras_override_dirname(tmp_path):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from diffusion_lab.resolvers import run_name

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hydra_compose(config_name="config", return_hydra_config=True,
                            overrides=["+experiment=quickstart", "seed=3", "model.backbone.hidden_size=32",
                                       f"output_dir={tmp_path}", f"run_dir={tmp_path}"])
    HydraConfig.instance().set_config(cfg)
    try:  # sorted, experiment first, paths left out
        assert run_name() == "quickstart,model.backbone.hidden_size=32,seed=3"
    finally:
        HydraConfig.instance().cfg = None

"""``_target_`` dispatch: model.objective, classifier.mode and classifier.prior build the object their
entry in the ``targets`` table names (diffusion_lab/targets.py), and runs saved before the table still load."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from diffusion_lab.config_schema import ConfigError, validate
from diffusion_lab.models.diffusion_lm import DiffusionLM
from tests.conftest import TINY, TINY_TRAIN_LM, compose


class FakeTokenizer:
    """What ``build_lm`` reads from a tokenizer: its size and the pad / mask ids."""

    pad_token_id, mask_token_id = 1, 4

    def __len__(self):
        return 64


class CustomLM(DiffusionLM):
    """A user's LightningModule: built because ``targets.objective.diffusion._target_`` names it."""


def half_prior(train_labels, num_classes):
    return [math.log(0.5)] * num_classes


def stub_layout(cfg, tokenizer, num_classes):
    return {"mode": "per_class", "lms": [torch.nn.Linear(1, 1) for _ in range(num_classes)],
            "label_token_ids": None, "nolabel_token_id": None}


@pytest.mark.parametrize("override, allowed", [
    ("model.objective=masked", "diffusion, autoregressive"),
    ("classifier.mode=ensemble", "conditional, per_class"),
    ("classifier.prior=flat", "train, uniform"),
])
def test_a_name_outside_the_table_is_a_config_error_naming_key_and_options(override, allowed, tmp_path):
    key, value = override.split("=")
    with pytest.raises(ConfigError) as err:
        validate(compose([override], tmp_path))
    assert f"{key}={value!r}: allowed values are {allowed}" in str(err.value)


def test_build_lm_refuses_an_unknown_objective_before_building_anything():
    from diffusion_lab.builders import build_lm

    with pytest.raises(ConfigError, match=r"model\.objective='masked': allowed values are diffusion, autoregressive"):
        build_lm(OmegaConf.create({"model": {"objective": "masked"}}), FakeTokenizer())


def test_the_lightning_module_is_the_target_of_the_objective(tmp_path):
    from diffusion_lab.builders import build_lm

    plain = build_lm(compose([*TINY, *TINY_TRAIN_LM], tmp_path), FakeTokenizer())
    assert type(plain) is DiffusionLM
    cfg = compose([*TINY, *TINY_TRAIN_LM, f"targets.objective.diffusion._target_={__name__}.CustomLM"], tmp_path)
    assert type(build_lm(cfg, FakeTokenizer())) is CustomLM


def test_a_new_prior_and_a_new_mode_are_one_table_entry(tmp_path):
    from diffusion_lab.classifiers.build import build_generative, log_prior

    cfg = compose([*TINY, "task=train_classifier", f"+targets.classifier_prior.half._target_={__name__}.half_prior",
                   "classifier.prior=half", f"+targets.classifier_mode.stub._target_={__name__}.stub_layout",
                   "classifier.mode=stub"], tmp_path)
    validate(cfg)
    assert log_prior(cfg, [0, 0, 0, 1], 2) == [math.log(0.5)] * 2
    clf = build_generative(cfg, SimpleNamespace(mask_token_id=4), 2, [0.0, 0.0])
    assert clf.mode == "per_class" and all(isinstance(lm, torch.nn.Linear) for lm in clf.lms)


def test_shipped_priors():
    from diffusion_lab.classifiers.build import log_prior

    labels = [0, 0, 0, 1]
    assert log_prior(OmegaConf.create({"classifier": {"prior": "train"}}), labels, 2) == pytest.approx(
        [math.log(0.75), math.log(0.25)])
    assert log_prior(OmegaConf.create({"classifier": {"prior": "uniform"}}), labels, 2) == [-math.log(2)] * 2


def test_a_run_saved_before_the_targets_table_loads_builds_and_resumes(tmp_path):
    """Old ``config_resolved.yaml`` files have no ``targets``: they get the package's table on load."""
    from diffusion_lab.builders import build_lm
    from diffusion_lab.classifiers.build import log_prior
    from diffusion_lab.runs import check_resume_config, load_run_config

    run = tmp_path / "old_run"
    run.mkdir()
    saved = compose([*TINY, *TINY_TRAIN_LM], run)
    old = OmegaConf.create(OmegaConf.to_container(saved, resolve=True))
    del old["targets"]
    OmegaConf.save(old, run / "config_resolved.yaml")
    loaded = load_run_config(run)
    assert loaded.targets.objective.diffusion._target_ == "diffusion_lab.models.diffusion_lm.DiffusionLM"
    assert type(build_lm(loaded, FakeTokenizer())) is DiffusionLM
    assert log_prior(loaded, [0, 1], 2) == pytest.approx([math.log(0.5)] * 2)
    again = compose([*TINY, *TINY_TRAIN_LM, "resume=true", f"run_dir={run}"], tmp_path / "new")
    assert check_resume_config(again, run) == {}  # the added table is no difference

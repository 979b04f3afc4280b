"""``_target_`` dispatch: model.objective, classifier.mode, classifier.prior and classifier.estimator build
the object their entry in the ``targets`` table names (diffusion_lab/targets.py), and runs saved before the
table (or one of its tables) still load."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from diffusion_lab.classifiers.per_class_layout import PerClassLayout
from diffusion_lab.config_schema import validate
from diffusion_lab.errors import ConfigError
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


class StubLayout(PerClassLayout):
    """A user's layout: one class (and one table entry), built because ``classifier.mode=stub`` names it."""

    def build(self, cfg, tokenizer, num_classes):
        return {"lms": [torch.nn.Linear(1, 1) for _ in range(num_classes)], "label_token_ids": None,
                "nolabel_token_id": None}


@pytest.mark.parametrize("override, allowed", [
    ("model.objective=masked", "diffusion, autoregressive"),
    ("classifier.mode=ensemble", "conditional, per_class"),
    ("classifier.prior=flat", "train, uniform"),
    ("classifier.estimator=magic", "elbo_crn, seed_mean_loss"),
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
                   "classifier.prior=half", f"+targets.classifier_mode.stub._target_={__name__}.StubLayout",
                   "classifier.mode=stub"], tmp_path)
    validate(cfg)
    assert log_prior(cfg, [0, 0, 0, 1], 2) == [math.log(0.5)] * 2
    clf = build_generative(cfg, SimpleNamespace(mask_token_id=4), 2, [0.0, 0.0])
    assert clf.mode == "stub" and isinstance(clf.layout, StubLayout)
    assert all(isinstance(lm, torch.nn.Linear) for lm in clf.lms)


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


def fixed_estimate(scorer, input_ids, attention_mask, *, doc_index, num_docs, **options):
    """A user's estimator: ``log p(x | y) = -(c + 1)`` for every document, one pass per document."""
    from diffusion_lab.classifiers.scoring import ClassScores

    c = scorer.clf.num_classes
    log_lik = -torch.arange(1, c + 1, dtype=torch.float64).expand(num_docs, c).clone()
    return ClassScores(log_lik, None, 1.0, torch.ones(num_docs, dtype=torch.float64))


def test_the_estimator_name_picks_its_scoring_function_from_the_table():
    from diffusion_lab.classifiers import scoring
    from diffusion_lab.targets import named_target

    assert named_target("classifier.estimator", "elbo_crn").func is scoring.elbo_crn_estimate
    assert named_target("classifier.estimator", "seed_mean_loss").func is scoring.seed_mean_loss_estimate
    clf = SimpleNamespace(layout=PerClassLayout(), num_classes=2, mask_token_id=4, lms=[])
    x = torch.ones(3, 5, dtype=torch.long)
    mine = {"mine": {"_target_": f"{__name__}.fixed_estimate"}}
    scores = scoring.class_log_likelihoods(clf, x, torch.ones_like(x), estimator="mine", estimators=mine)
    assert scores.log_lik.tolist() == [[-1.0, -2.0]] * 3
    with pytest.raises(ConfigError, match=r"classifier\.estimator='mine': allowed values are elbo_crn, seed_mean_loss"):
        scoring.class_log_likelihoods(clf, x, torch.ones_like(x), estimator="mine")  # not in the package's table


def test_a_new_estimator_is_one_table_entry_and_travels_with_the_classifier(tmp_path):
    from diffusion_lab.classifiers.build import build_generative

    cfg = compose([*TINY, "task=train_classifier", f"+targets.classifier_estimator.mine._target_={__name__}.fixed_estimate",
                   "classifier.estimator=mine", f"+targets.classifier_mode.stub._target_={__name__}.StubLayout",
                   "classifier.mode=stub"], tmp_path)
    validate(cfg)
    clf = build_generative(cfg, SimpleNamespace(mask_token_id=4), 2, [math.log(0.5)] * 2)
    assert clf.hparams.estimator == "mine" and "mine" in clf.hparams.estimators  # saved with the checkpoint
    x = torch.ones(2, 5, dtype=torch.long)
    joint, scores = clf.log_joint(x, torch.ones_like(x), num_draws=1)
    assert torch.allclose(joint, torch.tensor([[-1.0, -2.0]] * 2, dtype=torch.float64) + math.log(0.5))
    with pytest.raises(ConfigError, match=r"classifier\.estimator='seed_mean_los'"):
        clf.log_joint(x, torch.ones_like(x), estimator="seed_mean_los")  # a per-call name is checked too


def test_a_run_saved_before_the_estimator_table_loads_and_resumes(tmp_path):
    """``config_resolved.yaml`` files written with a ``targets`` table but without ``classifier_estimator``
    (runs of the commits between the two) get the package's missing table on load, not a resume difference."""
    from diffusion_lab.runs import check_resume_config, load_run_config

    run = tmp_path / "run"
    run.mkdir()
    saved = compose([*TINY, *TINY_TRAIN_LM], run)
    old = OmegaConf.create(OmegaConf.to_container(saved, resolve=True))
    del old.targets["classifier_estimator"]
    OmegaConf.save(old, run / "config_resolved.yaml")
    loaded = load_run_config(run)
    assert loaded.targets.classifier_estimator.elbo_crn._target_ == "diffusion_lab.classifiers.scoring.elbo_crn_estimate"
    again = compose([*TINY, *TINY_TRAIN_LM, "resume=true", f"run_dir={run}"], tmp_path / "new")
    assert check_resume_config(again, run) == {}


def test_a_run_saved_when_modes_built_their_lms_with_functions_loads_its_layout(tmp_path):
    """Older runs saved ``targets.classifier_mode`` naming ``classifiers.build.conditional_lms``: loading
    points the entry at the layout class (``targets.MOVED``), and the classifier builds from it."""
    from diffusion_lab.classifiers.build import build_generative
    from diffusion_lab.runs import load_run_config

    run = tmp_path / "old_classifier"
    run.mkdir()
    saved = compose([*TINY, "task=train_classifier", "classifier=per_class"], run)
    old = OmegaConf.create(OmegaConf.to_container(saved, resolve=True))
    old.targets.classifier_mode = {"conditional": {"_target_": "diffusion_lab.classifiers.build.conditional_lms"},
                                   "per_class": {"_target_": "diffusion_lab.classifiers.build.per_class_lms"}}
    OmegaConf.save(old, run / "config_resolved.yaml")
    loaded = load_run_config(run)
    assert loaded.targets.classifier_mode.conditional._target_.endswith("conditional_layout.ConditionalLayout")
    assert loaded.targets.classifier_mode.per_class._target_.endswith("per_class_layout.PerClassLayout")
    clf = build_generative(loaded, FakeTokenizer(), 2, [0.0, 0.0])
    assert type(clf.layout) is PerClassLayout and clf.mode == "per_class" and len(clf.lms) == 2


def test_no_code_compares_a_mode_name():
    """Layouts (and other named choices) are objects from tables: no ``mode ==`` / ``!=`` / ``in`` in the package."""
    import re
    from pathlib import Path

    import diffusion_lab

    pattern = re.compile(r"mode (==|!=|in )")
    found = [f"{p.name}:{i}" for p in Path(diffusion_lab.__file__).parent.rglob("*.py")
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []

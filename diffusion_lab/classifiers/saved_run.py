"""A trained classifier run, loaded for rescoring (``task=score``): its models with the scoring options
applied, its data as training built it (or another dataset's, same window and tokenizer), and the same
model at initialisation.

Scoring options: ``score.<key>`` for ``key`` in ``OPTIONS`` replaces the run's ``classifier.<key>`` where
given; a saved ``auto`` the run resolved on validation (its results.json ``*_chosen``) is that value, so the
run is rescored as it was scored. ``auto`` asked anew is chosen on validation only (``classifiers.draws``).

The model at initialisation (``initial_model``): ``build_generative`` with the run's config right after
``seed_everything(run seed)`` (training seeded just before it built the model), then the unigram /
``model.init_from`` start as training applied it (``builders.unigram_init``); no checkpoint loaded.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, fields
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from diffusion_lab.builders import build_datamodule, unigram_init
from diffusion_lab.classifiers.build import build_generative, load_classifier_run, log_prior
from diffusion_lab.classifiers.draws import resolve_num_draws, resolve_stop_z
from diffusion_lab.config_schema import ClassifierSchema
from diffusion_lab.errors import ConfigError
from diffusion_lab.runs import find_checkpoint, require_run_kind

#: ``score.<key>`` options that replace the run's ``classifier.<key>`` where given
OPTIONS = ("num_draws", "sequential", "stop_z", "score_precision")
#: a run's choices on validation (results.json key) behind its saved ``auto`` values
CHOSEN = {"num_draws": "num_draws_chosen", "stop_z": "stop_z_chosen", "stage_draws": "stage_draws_chosen"}


@dataclass
class ScoreData:
    """The items a readout scores: a datamodule over the run's tokenizer and windows, and its config."""

    run_cfg: DictConfig
    dm: object
    name: str


def classifier_run(cfg: DictConfig) -> Path:
    """``run_dir`` if it is a ``task=train_classifier`` run with a checkpoint, else one ``ConfigError`` line."""
    run_dir = require_run_kind(cfg.get("run_dir"), "train_classifier", "task=score")
    try:
        find_checkpoint(run_dir, cfg.get("checkpoint", "best"))
    except FileNotFoundError as err:
        raise ConfigError(f"run_dir={run_dir} is not a finished classifier run: {err}") from None
    return run_dir


def saved_results(run_dir: Path) -> dict:
    path = run_dir / "results.json"
    return json.loads(path.read_text()) if path.exists() else {}


def scoring_config(run_cfg: DictConfig, score: DictConfig, chosen: dict) -> DictConfig:
    """The run's ``classifier`` block with the ``score.*`` options where given. A saved ``auto`` whose
    value the run chose on validation (``chosen``, its results.json) becomes that value unless given anew.
    Checked with ``ClassifierSchema`` (one ``ConfigError`` line) before any model is loaded."""
    clf_cfg = OmegaConf.create(OmegaConf.to_container(run_cfg.classifier, resolve=True))
    given = {k: score[k] for k in OPTIONS if score.get(k) is not None}
    for key, chosen_key in CHOSEN.items():
        if str(clf_cfg.get(key)) == "auto" and key not in given and chosen.get(chosen_key) is not None:
            clf_cfg[key] = chosen[chosen_key]
    clf_cfg.update(given)
    known = {f.name for f in fields(ClassifierSchema)}
    try:
        ClassifierSchema(**{k: clf_cfg[k] for k in known if k in clf_cfg})
    except ConfigError as err:
        raise ConfigError(str(err).replace("classifier.", "score.", 1)) from None
    return clf_cfg


def apply_options(models: dict, clf_cfg: DictConfig) -> None:
    """The scoring options into each model's hyperparameters, which the scoring path reads."""
    for model in models.values():
        hparams = getattr(model, "hparams", None)
        for key in (*OPTIONS, "stage_draws"):
            if hparams is not None and key in hparams:
                hparams[key] = str(clf_cfg[key]) if key == "score_precision" else clf_cfg.get(key)


def run_data(run_cfg: DictConfig, run_dir: Path, source: DictConfig | None = None, name: str | None = None):
    """A datamodule as the run built it (seed, window, subsets, eval batch size), over ``source`` when given.
    ``cache_dir=run_dir``: the run's saved tokenizer (label tokens included) is reloaded, never rebuilt."""
    cfg = copy.deepcopy(run_cfg)  # the run's own config stays as saved
    if source is not None:
        with open_dict(cfg):
            cfg.dataset, cfg.datamodule.source = source, source
    dm = build_datamodule(cfg, cache_dir=run_dir)
    dm.setup()
    return ScoreData(cfg, dm, name or str(cfg.dataset.get("name")))


def initial_model(run_cfg: DictConfig, own: ScoreData, device):
    """The run's generative classifier as training started it (module docstring), no checkpoint loaded."""
    dm = own.dm
    L.seed_everything(int(run_cfg.seed), workers=True)  # training seeded just before building the model
    clf = build_generative(run_cfg, dm.tokenizer, dm.num_classes, log_prior(run_cfg, dm.splits.train["label"],
                                                                             dm.num_classes))
    unigram_init(run_cfg, dm, [lm.backbone for lm in clf.lms], dm.num_classes)
    return clf.to(device).eval()


def draw_options(clf_cfg: DictConfig, clf, own: ScoreData, eval_seed: int) -> dict:
    """``{"num_draws": K, "stop_z": z}`` as train_classifier resolves them (``auto``: on validation); the
    resolved values go back into ``clf_cfg`` so that a model built later (``initial_model``) scores alike."""
    options = {"num_draws": resolve_num_draws(clf_cfg, clf, own.dm, eval_seed)}
    stop_z = resolve_stop_z(clf_cfg, clf, own.dm, options["num_draws"], eval_seed)
    if stop_z is not None:
        options["stop_z"] = stop_z
    clf_cfg.num_draws = options["num_draws"]
    clf_cfg.stop_z, clf_cfg.stage_draws = clf.hparams.get("stop_z"), clf.hparams.get("stage_draws")
    return options


def scoring_device(run_cfg: DictConfig) -> torch.device:
    """Where training scored: the CPU for a run trained with ``accelerator: cpu`` (draws come from a generator
    on the model's device, so only the same device reproduces its numbers), else the GPU when there is one."""
    on_cpu = str(run_cfg.get("trainer", {}).get("accelerator", "auto")) == "cpu"
    return torch.device("cuda" if torch.cuda.is_available() and not on_cpu else "cpu")


def load_models(cfg: DictConfig, run_dir: Path):
    """``(run_cfg, {name: model})`` of the run, on its ``scoring_device``."""
    run_cfg, _, clf, baselines = load_classifier_run(run_dir, cfg.get("checkpoint", "best"))
    device = scoring_device(run_cfg)
    models = {"generative": clf.to(device), **baselines}
    if "discriminative" in models:
        models["discriminative"] = models["discriminative"].to(device)
    return run_cfg, models

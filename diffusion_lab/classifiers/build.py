"""Build classifiers from the composed config (the language models come from ``builders.build_lm``).

``classifier.mode`` and ``classifier.prior`` are names; what each builds is its ``_target_`` in the
``targets`` table of conf/config.yaml (``diffusion_lab.targets``): a layout object for the mode
(``classifiers.base_layout``: ``ConditionalLayout``, ``PerClassLayout``, which build their language models) and
the functions below for the prior (``label_frequency_prior`` / ``uniform_prior``).
``classifier.estimator`` is resolved when scoring: the classifier keeps its name and the run's
``targets.classifier_estimator`` table (``estimators``; functions of ``classifiers.scoring``).
"""

from __future__ import annotations

import inspect
import json
import math
from collections import Counter
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from transformers import AutoTokenizer

from diffusion_lab.builders import build_backbone
from diffusion_lab.classifiers.discriminative import DiscriminativeClassifier
from diffusion_lab.classifiers.generative import GenerativeClassifier
from diffusion_lab.classifiers.tfidf import TfidfLogReg
from diffusion_lab.logging_utils import get_logger
from diffusion_lab.models.ar_likelihood import start_token_id
from diffusion_lab.runs import find_checkpoint, load_checkpoint, load_run_config
from diffusion_lab.targets import build_target, table

log = get_logger(__name__)
#: the tfidf_lr baseline's file in a classifier run (plain arrays, ``TfidfLogReg.save``)
TFIDF_FILE = "tfidf_lr.npz"
#: the baselines a classifier run may train beside the generative model (task.baselines), in this order
BASELINES = ("discriminative", "tfidf_lr")


def label_frequency_prior(train_labels, num_classes: int) -> list[float]:
    """``classifier.prior=train``: ``log p(y)`` from the training label frequencies."""
    counts = Counter(int(y) for y in train_labels)
    missing = [c for c in range(num_classes) if counts.get(c, 0) == 0]
    if missing:
        raise ValueError(f"classes {missing} have no training examples; every class needs some (or prior=uniform "
                         "cannot help: the class model would be untrained)")
    total = sum(counts[c] for c in range(num_classes))
    return [math.log(counts[c] / total) for c in range(num_classes)]


def uniform_prior(train_labels, num_classes: int) -> list[float]:
    """``classifier.prior=uniform``: ``log p(y) = -log C``."""
    return [-math.log(num_classes)] * num_classes


def log_prior(cfg: DictConfig, train_labels, num_classes: int) -> list[float]:
    """``log p(y)`` from the entry ``classifier.prior`` names (``targets.classifier_prior``)."""
    return build_target(cfg, "classifier.prior", train_labels, num_classes)


def build_generative(cfg: DictConfig, tokenizer, num_classes: int, prior: list[float]) -> GenerativeClassifier:
    """The layout is the object ``classifier.mode`` names (``targets.classifier_mode``); it builds the
    language models (``lms``, ``label_token_ids``, ``nolabel_token_id``)."""
    clf_cfg = cfg.classifier
    layout = build_target(cfg, "classifier.mode")
    start = None
    if cfg.model.objective == "autoregressive":
        start = start_token_id(tokenizer)
    return GenerativeClassifier(
        **layout.build(cfg, tokenizer, num_classes), **_constructor_options(clf_cfg), mode=clf_cfg.mode,
        layout=layout, num_classes=num_classes, log_prior=prior, mask_token_id=tokenizer.mask_token_id,
        optimizer=instantiate(cfg.optimizer), scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        start_token_id=start, val_draws=cfg.task.val_draws, eval_seed=cfg.task.eval_seed, seed=cfg.seed,
        estimators=OmegaConf.to_container(table(cfg, "classifier.estimator"), resolve=True),
    )


def _constructor_options(clf_cfg: DictConfig) -> dict:
    """The ``classifier.*`` keys ``GenerativeClassifier`` takes, as configured; a key a run saved before it
    existed takes the constructor's default. The others (``prior``, ``auto_*``) are read by the tasks."""
    takes = inspect.signature(GenerativeClassifier.__init__).parameters
    options = {k: v for k, v in OmegaConf.to_container(clf_cfg, resolve=True).items()
               if k in takes and k not in ("mode", "layout")}
    if "score_precision" in options:  # "32" or bf16; a YAML 32 is an int
        options["score_precision"] = str(options["score_precision"])
    return options


def build_discriminative(cfg: DictConfig, tokenizer, num_classes: int) -> DiscriminativeClassifier:
    """The twin on the same backbone config. ``task.discriminative_pooling``: ``auto`` pools the last real
    token of a causal LM and the mean of an encoder; a run saved before the key existed pooled the mean."""
    backbone = build_backbone(cfg, tokenizer)
    pooling = str(cfg.task.get("discriminative_pooling", "mean"))
    if pooling == "auto":
        pooling = "last" if getattr(backbone, "causal", False) else "mean"
    return DiscriminativeClassifier(
        backbone=backbone, num_classes=num_classes,
        optimizer=instantiate(cfg.optimizer), scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        score_precision=str(cfg.classifier.get("score_precision", "32")), pooling=pooling,
    )


def load_classifier_run(run_dir, which: str = "best"):
    """Rebuild a ``task=train_classifier`` run: ``(cfg, tokenizer, generative, baselines)``.

    ``baselines`` maps ``discriminative`` (its own checkpoint under ``discriminative/``) and
    ``tfidf_lr`` (``tfidf_lr.npz``, plain arrays) to loaded models when the run trained them.
    """
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    if cfg.task.get("name") != "train_classifier":
        raise ValueError(f"{run_dir} is a {cfg.task.get('name')!r} run, not a classifier run (task=train_classifier)")
    tokenizer = AutoTokenizer.from_pretrained(str(run_dir / "tokenizer"))
    label_names = None
    results = run_dir / "results.json"
    if results.exists():
        chosen = json.loads(results.read_text())
        label_names = chosen.get("label_names")
    num_classes = len(label_names) if label_names else cfg.dataset.get("num_classes", 2)
    clf = build_generative(cfg, tokenizer, num_classes, [0.0] * num_classes)
    state = load_checkpoint(find_checkpoint(run_dir, which))
    clf.load_state_dict(state["state_dict"])
    clf.eval()
    # chosen on validation after the checkpoint was written: results.json says what was chosen
    if results.exists() and str(clf.hparams.get("stop_z")) == "auto" and chosen.get("stop_z_chosen") is not None:
        clf.hparams.stop_z = float(chosen["stop_z_chosen"])
    if results.exists() and str(clf.hparams.get("stage_draws")) == "auto" and "stage_draws_chosen" in chosen:
        clf.hparams.stage_draws = chosen["stage_draws_chosen"]
    baselines = {}
    disc_dir = run_dir / "discriminative"
    if (disc_dir / "checkpoints").exists():
        disc = build_discriminative(cfg, tokenizer, num_classes)
        disc.load_state_dict(load_checkpoint(find_checkpoint(disc_dir, which))["state_dict"])
        baselines["discriminative"] = disc.eval()
    if (run_dir / TFIDF_FILE).exists():
        baselines["tfidf_lr"] = TfidfLogReg.load(run_dir / TFIDF_FILE)
    elif (run_dir / "tfidf_lr.joblib").exists():  # runs before plain-array saving: a pickle is never loaded
        log.warning("%s/tfidf_lr.joblib is not loaded: unpickling a file can run code. The tfidf_lr baseline is "
                    "left out; retrain the run to get %s", run_dir, TFIDF_FILE)
    return cfg, tokenizer, clf, baselines

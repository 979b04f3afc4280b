"""``task=train_classifier``: train the generative classifier and its baselines, evaluate once on test.

Order of honest evaluation: fit on train; choose the checkpoint on validation; fit temperatures on
validation; score the (stratified, seeded) test subset once; the same test items for every model.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import lightning as L
from omegaconf import DictConfig

from diffusion_lab.builders import build_datamodule, build_trainer, unigram_init
from diffusion_lab.classifiers.build import (
    BASELINES,
    TFIDF_FILE,
    build_discriminative,
    build_generative,
    log_prior,
)
from diffusion_lab.classifiers.draws import resolve_num_draws, resolve_stop_z
from diffusion_lab.classifiers.predict import predict
from diffusion_lab.classifiers.results_table import discordant_against, mcnemar_against, model_metrics, render
from diffusion_lab.classifiers.tfidf import TfidfLogReg, reads_full_text, tfidf_predictions
from diffusion_lab.evaluation.models import generative_readout
from diffusion_lab.logging_utils import wandb_logger
from diffusion_lab.metrics.classification import classification_metrics
from diffusion_lab.resolvers import in_multirun
from diffusion_lab.runs import check_checkpoint_readable, load_checkpoint, write_results
from diffusion_lab.tasks.evaluate import evaluate_run
from diffusion_lab.tasks.train_lm import resume_target
from diffusion_lab.test_ledger import record_run

log = logging.getLogger(__name__)


def _fit_best(cfg, module, dm, out: Path, ckpt_path: str | None = None, **trainer_overrides):
    """Fit (or continue from ``ckpt_path``), load the best checkpoint, and put the module back on the
    training device: Lightning's strategy teardown moves it to the CPU after ``fit``."""
    if ckpt_path:
        check_checkpoint_readable(Path(ckpt_path))  # a corrupt or code-carrying file is refused by name
    trainer = build_trainer(cfg, out, **trainer_overrides)
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)  # never unpickle code
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if best:
        module.load_state_dict(load_checkpoint(Path(best))["state_dict"])
    module.to(trainer.strategy.root_device)
    return trainer


def scaled_schedule(cfg, train_rows: int, steps: int | None = None) -> dict:
    """``task.scale_steps`` ({epochs, min_steps, max_steps, validations}; null: the trainer's own schedule):
    trainer overrides for a budget that grows with the training set (learning curves),

        max_steps = clamp(ceil(epochs * train_rows / batch), min_steps, max_steps)

    (``batch``: ``data.global_batch_size`` or ``data.batch_size``) with validation every
    ``ceil(max_steps / validations)`` steps whatever the epoch length. ``steps`` given: that many steps
    instead (the discriminative twin gets the generative model's count)."""
    scale = cfg.task.get("scale_steps")
    if not scale:
        return {}
    if steps is None:
        batch = int(cfg.data.get("global_batch_size") or cfg.data.batch_size)
        steps = math.ceil(float(scale.epochs) * train_rows / batch)
        steps = min(max(steps, int(scale.min_steps)), int(scale.max_steps))
    every = max(1, math.ceil(steps / int(scale.get("validations", 4))))
    return {"max_steps": steps, "max_epochs": -1, "max_time": None, "val_check_interval": every,
            "check_val_every_n_epoch": None}


def _resume_point(out: Path) -> str | None:
    last = out / "checkpoints" / "last.ckpt"
    return str(last) if last.exists() else None


def _infill(clf, loader):
    """The one-pass label readout through the shared scoring path (one row per document)."""
    return predict(clf, loader, readout="infill")


def _hybrid(clf, loader, seed: int, **score):
    """The infill posterior where it is sure (``classifier.hybrid_threshold``), Bayes draws elsewhere."""
    return predict(clf, loader, seed=seed, readout="hybrid", **score)


def run(cfg: DictConfig) -> dict:
    started = time.time()
    L.seed_everything(cfg.seed, workers=True)
    out, ckpt_path = resume_target(cfg)  # resume=true: continue <run_dir>/checkpoints/last.ckpt there
    clf, dm, trainer = _fit_generative(cfg, out, ckpt_path)
    steps = trainer.global_step
    if not cfg.task.get("score_test", True):  # task=synthesize rounds: the test loader is never built
        return _validation_only(cfg, clf, dm, out, steps)
    if in_multirun() and not cfg.eval.get("test_in_sweep", False):  # select on validation, test the choice once
        log.info("multirun job: validation only (eval.test_in_sweep=false); score the chosen run's test split "
                 "once with: python -m diffusion_lab task=score run_dir=%s score.split=test", out)
        return _validation_only(cfg, clf, dm, out, steps, note="multirun: eval.test_in_sweep=false")
    score, val_preds, test_preds = _score_generative(cfg, clf, dm)
    failed = _fit_baselines(cfg, dm, out, steps, ckpt_path, val_preds, test_preds)
    results = {**_results(cfg, clf, dm, score, val_preds, test_preds, steps), "failed_models": failed,
               "wall_s": time.time() - started}
    results.update(test_access(cfg, out, dm, results["models"]))
    write_results(out, results)
    render(out, results, val_preds, test_preds, dm.split_texts("test"), dm.label_names, wandb_logger(trainer))
    if cfg.eval.get("after_training"):  # the evaluation suite (task=evaluate) on this finished run
        evaluate_run(out, cfg, out)
    return {**results, "val/clf_nll": float(trainer.callback_metrics.get("val/clf_nll", float("nan")))}


def _fit_generative(cfg, out: Path, ckpt_path: str | None):
    """The data, the generative classifier (a fresh run's unigram start) and its fit: ``(clf, dm, trainer)``."""
    unknown = set(cfg.task.baselines) - set(BASELINES)
    if unknown:
        raise ValueError(f"task.baselines has unknown entries {sorted(unknown)}; allowed: {', '.join(BASELINES)}")
    dm = build_datamodule(cfg, cache_dir=out)
    dm.setup()
    num_classes = dm.num_classes
    if num_classes < 2:
        raise ValueError(f"dataset {cfg.dataset.get('name')} has {num_classes} classes; a classifier needs >= 2 "
                         "(is the label column set? dataset.label_column=...)")
    clf = build_generative(cfg, dm.tokenizer, num_classes, log_prior(cfg, dm.splits.train["label"], num_classes))
    if ckpt_path is None:
        unigram_init(cfg, dm, [lm.backbone for lm in clf.lms], num_classes)
    dm.tokenizer.save_pretrained(str(out / "tokenizer"))  # now with the label tokens
    trainer = _fit_best(cfg, clf, dm, out, ckpt_path, **scaled_schedule(cfg, len(dm.datasets["train"])))
    return clf, dm, trainer


def _score_generative(cfg, clf, dm):
    """The scoring options chosen on validation (K, stop_z when ``auto``), then every readout of the layout on
    validation (draws seeded ``eval_seed``) and test (``eval_seed + 1``): ``(options, val, test)``."""
    score = {"num_draws": resolve_num_draws(cfg.classifier, clf, dm, cfg.task.eval_seed)}  # auto: on validation
    stop_z = resolve_stop_z(cfg.classifier, clf, dm, score["num_draws"], cfg.task.eval_seed)  # likewise
    if stop_z is not None:
        score["stop_z"] = stop_z
    val_loader, test_loader = dm.dataloader("validation"), dm.dataloader("test")
    val_preds = {"generative": predict(clf, val_loader, seed=cfg.task.eval_seed, **score)}
    test_preds = {"generative": predict(clf, test_loader, seed=cfg.task.eval_seed + 1, **score)}
    if "infill" in clf.readouts:  # the layout's one-pass label readout, and the hybrid built on it
        val_preds["generative_infill"], test_preds["generative_infill"] = _infill(clf, val_loader), _infill(clf, test_loader)
        val_preds["generative_hybrid"] = _hybrid(clf, val_loader, cfg.task.eval_seed, **score)
        test_preds["generative_hybrid"] = _hybrid(clf, test_loader, cfg.task.eval_seed + 1, **score)
    return score, val_preds, test_preds


def _fit_baselines(cfg, dm, out: Path, steps: int, ckpt_path, val_preds: dict, test_preds: dict) -> dict:
    """``task.baselines`` fitted and scored into ``val_preds`` / ``test_preds``; returns ``{name: error}`` of
    those that failed: a baseline's failure is recorded beside the models that finished, never discards them."""
    failed = {}
    for name in (b for b in BASELINES if b in cfg.task.baselines):
        try:
            val_preds[name], test_preds[name] = BASELINE_FITS[name](cfg, dm, out, dm.num_classes, steps, ckpt_path)
        except Exception as err:
            log.error("baseline %s failed (recorded in results.json, the other models are kept): %s: %s",
                      name, type(err).__name__, err)
            failed[name] = f"{type(err).__name__}: {err}"
    return failed


def _results(cfg, clf, dm, score: dict, val_preds: dict, test_preds: dict, steps: int) -> dict:
    """``results.json``'s body: per-model metrics (temperatures from validation), McNemar, what was run."""
    stop_z = score.get("stop_z")
    return {
        "status": "finished",
        "models": {name: model_metrics(val_preds[name], test_preds[name]) for name in test_preds},
        "mcnemar_p": mcnemar_against("generative", test_preds),
        "mcnemar_discordant": discordant_against("generative", test_preds),
        "seed": cfg.seed, "eval_seed": cfg.task.eval_seed, "n_test": len(test_preds["generative"].labels),
        "n_val": len(val_preds["generative"].labels), "optimizer_steps": steps,
        "classifier": {k: cfg.classifier.get(k) for k in ("mode", "estimator", "num_draws", "prior", "score_precision")},
        "num_draws_chosen": score["num_draws"],
        "train_tokens_per_s": clf.train_tokens_per_s(),  # the generative model's fit (text tokens, label excluded)
        "stop_z_chosen": stop_z,
        "stage_draws_chosen": clf.hparams.get("stage_draws") if stop_z is not None else None,
        **({"auto_stop_z": {str(z): row for z, row in clf.auto_stop_z_table.items()}}
           if hasattr(clf, "auto_stop_z_table") else {}),
        **({"auto_stage_draws": clf.auto_stage_tables} if hasattr(clf, "auto_stage_tables") else {}),
        "model": cfg.model.name, "max_length": cfg.data.max_length,
        "windows": {split: dm.window_stats(split) for split in ("train", "validation", "test")},
        "tfidf_input": ("full text" if reads_full_text(cfg, dm) else "token window") if "tfidf_lr" in test_preds else None,
        "duplicates_removed": dm.splits.stats.get("duplicates_removed"), "dataset_stats": dm.splits.stats,
        "label_names": dm.label_names,
    }


def _fit_discriminative(cfg, dm, out: Path, num_classes: int, steps: int, ckpt_path):
    """The discriminative twin: same backbone and tokenizer, the generative model's optimizer steps."""
    disc = build_discriminative(cfg, dm.tokenizer, num_classes)
    disc_resume = _resume_point(out / "discriminative") if ckpt_path else None
    schedule = {"max_steps": max(steps, 1), "max_epochs": -1, "max_time": None,
                **scaled_schedule(cfg, len(dm.datasets["train"]), max(steps, 1))}  # validated as often
    _fit_best(cfg, disc, dm, out / "discriminative", disc_resume, **schedule)
    return predict(disc, dm.dataloader("validation")), predict(disc, dm.dataloader("test"))


def _fit_tfidf(cfg, dm, out: Path, num_classes: int, steps: int, ckpt_path):
    """TF-IDF + logistic regression, C chosen on validation; saved as plain arrays for task=evaluate."""
    full = reads_full_text(cfg, dm)
    tfidf = TfidfLogReg(seed=cfg.seed).fit(dm.split_texts("train", not full), dm.datasets["train"]["label"],
                                           dm.split_texts("validation", not full), dm.datasets["validation"]["label"])
    tfidf.save(out / TFIDF_FILE)
    return tfidf_predictions(tfidf, dm, "validation", full), tfidf_predictions(tfidf, dm, "test", full)


BASELINE_FITS = {"discriminative": _fit_discriminative, "tfidf_lr": _fit_tfidf}


def test_access(cfg, out: Path, dm, models: dict) -> dict:
    """This scoring of the test split in the ledger (``test_ledger.record_run``): ``test_access`` (the ledger
    line's counts) and ``test_configurations`` (distinct configurations that have scored these test items)."""
    return record_run(cfg, task=str(cfg.task.name), config=cfg, dataset=str(cfg.dataset.get("name")),
                      texts=dm.split_texts("test"), labels=[int(y) for y in dm.datasets["test"]["label"]], run=out,
                      metrics={m: v["accuracy"] for m, v in models.items()})


def _validation_only(cfg, clf, dm, out: Path, steps: int, note: str = "task.score_test=false") -> dict:
    """``task.score_test=false``: the generative classifier's readouts in ``task.validation_models``
    (``evaluation.models.EVAL_MODELS`` names) scored on validation only (no baselines), for loops that
    choose on validation (``task=synthesize``) and must not touch the test split."""

    metrics, n_val = {}, 0
    for name in cfg.task.get("validation_models") or ["generative"]:
        kind = generative_readout(name, clf.readouts)
        kwargs = {"num_draws": cfg.classifier.num_draws} if kind.bayes_generative else {}
        val = predict(clf, dm.dataloader("validation"), seed=cfg.task.eval_seed, readout=kind.readout, **kwargs)
        metrics[name], n_val = classification_metrics(val.probs, val.labels), len(val.labels)
    results = {"status": "finished", "split": "validation", "test_not_scored": note, "n_val": n_val,
               "optimizer_steps": steps, "validation": metrics, "seed": cfg.seed, "label_names": dm.label_names}
    write_results(out, results)
    return results

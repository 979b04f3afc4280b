"""``task=evaluate run_dir=<classifier run>``: is the generative classifier robust, calibrated, explainable?

Every model of the run (generative, its infill readout, discriminative, TF-IDF + LR) on the same
items: calibration before/after temperature scaling (T fitted on validation only), robustness
curves under seeded perturbations, domain shift (``eval.shift_dataset``), OOD detection
(``eval.ood_dataset``), token explanations with a deletion test. Writes ``evaluation.json``
(sections ``calibration``, ``robustness``, ``shift``, ``ood``, ``explanations``, each keyed by
model), PNG figures, ``explanations.html`` and ``report.html`` into this run's directory, and to
W&B with ``logger=wandb``. Settings: the ``eval:`` block of ``conf/config.yaml``; also runs at the
end of ``task=train_classifier`` with ``eval.after_training=true``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from diffusion_lab.classifiers.build import load_classifier_run
from diffusion_lab.data.cleaning import stratified_indices
from diffusion_lab.errors import ConfigError
from diffusion_lab.evaluation import data as eval_data
from diffusion_lab.evaluation import suite
from diffusion_lab.evaluation.explain import explanation_entry
from diffusion_lab.evaluation.figures import deletion_figure, ood_figure, robustness_figure
from diffusion_lab.evaluation.models import EVAL_MODELS, RunModels
from diffusion_lab.evaluation.perturbations import PERTURBATIONS, build_frequency_vocab
from diffusion_lab.evaluation.publish import log_wandb, print_summary, write_pages
from diffusion_lab.logging_utils import get_logger
from diffusion_lab.metrics.calibration import apply_temperature, reliability_diagram
from diffusion_lab.runs import find_checkpoint, load_run_config, write_results
from diffusion_lab.test_ledger import record_run
from diffusion_lab.viz.trajectory import decode_pieces

log = get_logger(__name__)
SECTIONS = ("calibration", "robustness", "shift", "ood", "explanations")


def check_classifier_run(path, checkpoint: str = "best") -> Path:
    """``run_dir`` as a Path if it is a finished ``task=train_classifier`` run, else a ``ConfigError``."""
    if not path:
        raise ConfigError("task=evaluate needs run_dir=<directory of a task=train_classifier run>")
    run_dir = Path(str(path)).expanduser()
    if not run_dir.is_dir():
        raise ConfigError(f"run_dir={run_dir}: no such directory")
    try:
        kind = load_run_config(run_dir).task.get("name")
        if kind != "train_classifier":
            raise ConfigError(f"run_dir={run_dir} is a {kind!r} run and holds no classifier; task=evaluate needs "
                              "the directory of a task=train_classifier run")
        find_checkpoint(run_dir, checkpoint)
    except FileNotFoundError as err:
        raise ConfigError(f"run_dir={run_dir} is not a finished classifier run: {err}") from None
    return run_dir


def run(cfg: DictConfig) -> dict:
    run_dir = check_classifier_run(cfg.get("run_dir"), cfg.get("checkpoint", "best"))
    return evaluate_run(run_dir, cfg, Path(cfg.output_dir))


def _check_settings(e) -> None:
    unknown = sorted(set(e.perturbations or []) - set(PERTURBATIONS))
    if unknown:
        raise ConfigError(f"eval.perturbations has {unknown}; allowed: {', '.join(sorted(PERTURBATIONS))}")
    if any(not 0.0 <= float(s) <= 1.0 for s in e.strengths or []):
        raise ConfigError(f"eval.strengths must lie in [0, 1] (fractions of words), got {list(e.strengths)}")


def _optional(skipped: dict, key: str, name, load):
    """Load an optional dataset; ``None`` (recorded in ``skipped``) when not asked for or not on this machine."""
    if not name:
        skipped[key] = f"eval.{key}_dataset is null"
        return None
    try:
        return load()
    except FileNotFoundError as err:
        log.warning("skipping %s: %s", key, err)
        skipped[key] = f"data not found: {err}"
        return None


@dataclass
class _Suite:
    """What every section reads: the settings, the models, the scored items, the temperatures, and where the
    sections and figures go."""

    e: DictConfig
    seed: int
    out: Path
    models: RunModels
    test: object
    test_scores: dict
    temps: dict = field(default_factory=dict)
    ev: dict = field(default_factory=lambda: {k: {} for k in SECTIONS})
    figures: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)


def evaluate_run(run_dir: Path, cfg: DictConfig, out: Path) -> dict:
    """The whole suite on ``run_dir`` with the settings ``cfg.eval``; files go to ``out``."""
    e, started, walls, skipped = cfg.eval, time.time(), {}, {}
    _check_settings(e)
    seed = int(e.seed)
    out.mkdir(parents=True, exist_ok=True)
    run_cfg, tokenizer, clf, baselines = load_classifier_run(run_dir, cfg.get("checkpoint", "best"))
    if torch.cuda.is_available():
        clf.cuda()
        if "discriminative" in baselines:
            baselines["discriminative"].cuda()
    splits, val, test = eval_data.run_splits(run_cfg)
    label_names = list(splits.label_names)
    val, test = val.subset(e.max_val, seed), test.subset(e.max_examples, seed)
    shift_items = _optional(skipped, "shift", e.shift_dataset, lambda: eval_data.load_shift_items(
        e.shift_dataset, cfg, label_names, e.max_examples, seed))  # the label check fails fast, before model work
    ood = _optional(skipped, "ood", e.ood_dataset, lambda: eval_data.load_ood_texts(
        e.ood_dataset, cfg, e.max_examples, seed))
    models = RunModels.for_run(run_cfg, clf, baselines, tokenizer, batch_size=int(e.batch_size), num_draws=e.num_draws,
                               seed=seed, infill=bool(e.infill), only=list(e.models) if e.models else None)
    log.info("evaluate: scoring %d validation and %d test items with %s", len(val.texts), len(test.texts), models.names)
    val_scores = models.score_all(val.texts)
    ctx = _Suite(e, seed, out, models, test, models.score_all(test.texts), skipped=skipped)
    clock = [started]

    def timed(name):
        walls[name], clock[0] = time.time() - clock[0], time.time()

    access = _calibration(ctx, val_scores, val.labels, cfg, run_cfg)
    timed("calibration")
    n_rob = _robustness(ctx, splits, baselines)
    timed("robustness")
    if shift_items is not None:
        name, items = shift_items
        ctx.ev["shift"] = suite.shift_section(models.score_all(items.texts), items.labels, ctx.temps,
                                              ctx.ev["calibration"], name, seed)
    timed("shift")
    if ood is not None:
        _ood(ctx, *ood, str(run_cfg.dataset.name))
    timed("ood")
    n_deletion = _explanations(ctx, tokenizer, label_names)
    timed("explanations")
    ev = ctx.ev
    ev["meta"] = {"run_dir": str(run_dir), "dataset": run_cfg.dataset.name, "seed": seed, "run_seed": int(run_cfg.seed),
                  "models": models.names, "label_names": label_names, "num_draws": models.num_draws,
                  "classifier_mode": clf.mode, "max_length": int(run_cfg.data.max_length), "long_text": models.long_text,
                  "tfidf_sees": "token window" if models.tfidf_window else "full text", "n_val": len(val.texts),
                  "n_test": len(test.texts), "n_robustness": n_rob, "n_deletion": n_deletion,
                  "forward_passes": models.forward_passes, "test_access": access, "section_wall_s": walls,
                  "wall_s": time.time() - started, "settings": OmegaConf.to_container(e, resolve=True)}
    ev["skipped"] = skipped
    write_results(out, ev, "evaluation.json")
    write_pages(ev, ctx.figures, out)
    print_summary(ev)
    log_wandb(cfg, out, ev, ctx.figures)
    return {"status": "finished", "evaluation": str(out / "evaluation.json"), "report": str(out / "report.html"),
            **{f"{n}/accuracy": c["before"]["accuracy"] for n, c in ev["calibration"].items()}}


def _calibration(ctx: _Suite, val_scores: dict, val_labels, cfg, run_cfg) -> dict | None:
    """Temperatures fitted on validation, calibration before and after, the reliability diagrams; this
    scoring of test items goes into the test ledger (returned: its counts)."""
    test, test_scores, out = ctx.test, ctx.test_scores, ctx.out
    ctx.ev["calibration"], ctx.temps = suite.calibration_section(val_scores, test_scores, val_labels, test.labels,
                                                                 ctx.seed)
    y = torch.tensor(test.labels)
    suite_cfg = run_cfg.copy()  # the run evaluated with these settings: one configuration of the ledger
    suite_cfg.eval = cfg.eval
    access = record_run(cfg, task="evaluate", config=suite_cfg, dataset=str(run_cfg.dataset.name),
                        texts=list(test.texts), labels=list(test.labels), run=out,
                        metrics={n: float((s.probs.argmax(-1) == y).double().mean()) for n, s in test_scores.items()})
    ctx.figures["calibration"] = reliability_diagram({n: (s.probs, y) for n, s in test_scores.items()},
                                                     out / "calibration.png", title=f"Reliability (test, n={len(y)})")
    ctx.figures["calibration_after_ts"] = reliability_diagram(
        {n: (apply_temperature(s.log_joint, ctx.temps[n]), y) for n, s in test_scores.items()},
        out / "calibration_after_ts.png", title=f"After temperature scaling (test, n={len(y)})")
    return access.get("test_access")


def _robustness(ctx: _Suite, splits, baselines: dict) -> int:
    """Accuracy and ECE under each perturbation and strength on a stratified subset; returns its size."""
    e, test, seed = ctx.e, ctx.test, ctx.seed
    n_rob = min(int(e.robustness_examples or len(test.texts)), len(test.texts))
    idx = stratified_indices(test.labels, n_rob, seed) if n_rob < len(test.texts) else range(len(test.texts))
    kw = {"char_typos": {}, "word_deletion": {},
          "word_swap": {"vocab_by_frequency": build_frequency_vocab(splits.train["text"])}}
    if "tfidf_lr" in baselines:  # adversarial for the baseline: its own largest weights
        kw["mask_top_words"] = {"weights": baselines["tfidf_lr"].word_weights(),
                                "placeholder": str(e.get("mask_placeholder", "delete"))}
    elif "mask_top_words" in (e.perturbations or []):
        ctx.skipped["robustness/mask_top_words"] = "the run has no tfidf_lr baseline, whose weights choose the words"
    perts = {p: kw[p] for p in (e.perturbations or []) if p in kw}
    if perts:
        ctx.ev["robustness"] = suite.robustness_section(
            ctx.models, [test.texts[i] for i in idx], [test.labels[i] for i in idx],
            {n: s.subset(idx) for n, s in ctx.test_scores.items()}, ctx.temps, perts, e.strengths, seed, log)
        ctx.figures["robustness"] = robustness_figure(ctx.ev["robustness"], ctx.out / "robustness.png",
                                                      f"Robustness (test, seed {seed})")
    return n_rob


def _ood(ctx: _Suite, name: str, out_texts: list[str], dataset: str) -> None:
    """The test items against ``out_texts``: every model's OOD scores, plain and length-matched, and the figure."""
    e, models, test = ctx.e, ctx.models, ctx.test
    scores_out = models.score_all(out_texts)
    uncond = (models.unconditional_log_px(test.texts), models.unconditional_log_px(out_texts)) \
        if e.ood_unconditional and "generative" in models.names else (None, None)
    len_in = [len(x) for x in models.encode(test.texts)]
    len_out = [len(x) for x in models.encode(out_texts)]
    ctx.ev["ood"] = suite.ood_section(ctx.test_scores, scores_out, *uncond, len_in, len_out, name, ctx.seed,
                                      int(e.length_bins), int(e.get("ood_min_n", suite.MIN_OOD_N)))
    heads = {n: EVAL_MODELS[n].headline_ood for n in scores_out if EVAL_MODELS[n].ood}
    pairs = {f"{n} {k}": (suite.ood_scores(n, ctx.test_scores[n])[k], suite.ood_scores(n, scores_out[n])[k])
             for n, k in heads.items()}
    if pairs:
        ctx.figures["ood"] = ood_figure(pairs, ctx.out / "ood.png", f"{dataset} test vs {name}")


def _explanations(ctx: _Suite, tokenizer, label_names: list[str]) -> int:
    """Token attributions and the deletion test for every model that has them; returns the items' count."""
    e = ctx.e
    items = ctx.test.subset(e.deletion_examples, ctx.seed)
    for name in ctx.models.names:
        if EVAL_MODELS[name].attribution:
            ctx.ev["explanations"][name] = explanation_entry(
                ctx.models, name, items.texts, items.labels, list(e.deletion_ks), ctx.seed, int(e.explain_examples),
                lambda ids: decode_pieces(tokenizer, ids), label_names)
    if ctx.ev["explanations"]:
        ctx.figures["deletion"] = deletion_figure(ctx.ev["explanations"], ctx.out / "deletion.png")
    return len(items.texts)

"""``task=score run_dir=<classifier run>``: rescore a trained classifier run with any of its readouts, on
either split of its own dataset or of another dataset with the same labels (shift), through the scoring
path ``task=train_classifier`` used (``classifiers.predict``), into one ``results.json`` of this run's own
directory with train_classifier's per-model schema (plus ``run_dir``, ``split``, ``dataset``).

Seeds are training's: validation draws from one generator seeded ``eval_seed``, test draws from
``eval_seed + 1``, fresh for every (readout, split). So on the run's own items with its saved options this
task reproduces the numbers train_classifier wrote, draw for draw.

The temperature T of the ``*_after_ts`` metrics is always fitted on the run's OWN validation split
(``T = argmin_T NLL_val(softmax(z / T))``, ``metrics.calibration.fit_temperature``), as in training; for
``score.split=validation`` of the run's own dataset that is the scored split itself (in-sample), and
``temperature_fitted_on`` says so. The run, its options and its init model: ``classifiers.saved_run``.
The ``init`` readout (``generative_init``) is the Bayes readout of the same model at initialisation, with
the same options and draws: what training added is ``generative`` minus ``generative_init``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig
from rich.console import Console

from diffusion_lab.classifiers.build import BASELINES
from diffusion_lab.classifiers.predict import predict
from diffusion_lab.classifiers.results_table import (
    COLUMNS,
    discordant_against,
    mcnemar_against,
    model_metrics,
    write_predictions,
)
from diffusion_lab.classifiers.saved_run import (
    OPTIONS,
    ScoreData,
    apply_options,
    classifier_run,
    draw_options,
    initial_model,
    load_models,
    run_data,
    saved_results,
    scoring_config,
)
from diffusion_lab.classifiers.tfidf import reads_full_text, tfidf_predictions
from diffusion_lab.errors import ConfigError
from diffusion_lab.evaluation.data import dataset_config
from diffusion_lab.logging_utils import get_logger
from diffusion_lab.resolvers import in_multirun
from diffusion_lab.rich_utils import metrics_table
from diffusion_lab.runs import load_run_config, write_results
from diffusion_lab.test_ledger import record_run

log = get_logger(__name__)
#: the split's offset on ``eval_seed``: training drew validation from eval_seed and test from eval_seed + 1
SPLIT_SEED_OFFSET = {"validation": 0, "test": 1}


@dataclass(frozen=True)
class Readout:
    """One ``score.readouts`` entry: its ``results.json`` name, the loaded model it reads (``generative``,
    ``init``, or a baseline's name) and ``score(model, data, split, seed, draws) -> Predictions``."""

    name: str
    model: str
    score: Callable


def _predicted(readout: str, draws: bool) -> Callable:
    """Scoring through ``predict``; ``draws``: the Bayes options (K, stop_z) apply, as in training."""
    def score(model, data: ScoreData, split: str, seed: int, options: dict):
        return predict(model, data.dm.dataloader(split), seed=seed, readout=readout, **(options if draws else {}))
    return score


def _tfidf(model, data: ScoreData, split: str, seed: int, options: dict):
    return tfidf_predictions(model, data.dm, split, reads_full_text(data.run_cfg, data.dm))


READOUTS = {
    "bayes": Readout("generative", "generative", _predicted("bayes", True)),
    "infill": Readout("generative_infill", "generative", _predicted("infill", False)),
    "hybrid": Readout("generative_hybrid", "generative", _predicted("hybrid", True)),
    "discriminative": Readout("discriminative", "discriminative", _predicted("bayes", False)),
    "tfidf_lr": Readout("tfidf_lr", "tfidf_lr", _tfidf),
    "init": Readout("generative_init", "init", _predicted("bayes", True)),
}


def check_split(split) -> str:
    if split not in SPLIT_SEED_OFFSET:
        raise ConfigError(f"score.split={split!r}: allowed values are {', '.join(SPLIT_SEED_OFFSET)}")
    return str(split)


def available_readouts(clf, baselines: dict) -> list[str]:
    """The layout's readouts (``Layout.readouts``), the baselines the run trained, and ``init``."""
    return [*clf.readouts, *(b for b in BASELINES if b in baselines), "init"]


def chosen_readouts(score: DictConfig, available: list[str], run_dir: Path) -> list[str]:
    """``score.readouts`` (null: every readout of the run but ``init``), plus ``init`` with ``score.init``."""
    given = score.get("readouts")
    asked = ([given] if isinstance(given, str) else list(given)) if given else [r for r in available if r != "init"]
    if score.get("init") and "init" not in asked:
        asked.append("init")
    missing = [r for r in asked if r not in available]
    if missing:
        raise ConfigError(f"score.readouts={missing}: run_dir={run_dir} has no such readout; its readouts are "
                          f"{', '.join(available)}")
    return asked


def scored_data(cfg: DictConfig, own: ScoreData, run_dir: Path) -> ScoreData:
    """The run's own items, or ``score.dataset``'s with the same label names in the same order."""
    name = cfg.score.get("dataset")
    if not name:
        return own
    try:
        other = run_data(own.run_cfg, run_dir, dataset_config(name, cfg), str(name))
    except ValueError as err:  # an unknown dataset name: dataset_config names the known ones
        raise ConfigError(f"score.dataset={name!r}: {err}") from None
    if list(other.dm.label_names) != list(own.dm.label_names):
        raise ConfigError(f"score.dataset={name!r} has labels {list(other.dm.label_names)}, the run was trained on "
                          f"{list(own.dm.label_names)}: scoring another dataset needs the same labels in the same order")
    return other


def score_split(readouts: list[str], models: dict, data: ScoreData, split: str, seed: int, options: dict) -> dict:
    """``{results name: Predictions}`` of every readout on ``split`` of ``data``, draws seeded ``seed``."""
    return {READOUTS[r].name: READOUTS[r].score(models[READOUTS[r].model], data, split, seed, options)
            for r in readouts}


def run(cfg: DictConfig) -> dict:
    started, score = time.time(), cfg.score
    split = check_split(score.get("split"))
    if split == "test" and in_multirun() and not cfg.eval.get("test_in_sweep", False):
        raise ConfigError("score.split=test in a multirun scores the test items once per configuration, and the best "
                          "of them is optimistic: sweep score.split=validation, then score the chosen configuration "
                          "once without -m (or set eval.test_in_sweep=true: every job is counted in the test ledger)")
    run_dir = classifier_run(cfg)
    chosen = saved_results(run_dir)
    clf_cfg = scoring_config(load_run_config(run_dir), score, chosen)  # a bad option fails before any loading
    run_cfg, models = load_models(cfg, run_dir)
    readouts = chosen_readouts(score, available_readouts(models["generative"], models), run_dir)
    own = run_data(run_cfg, run_dir)
    data = scored_data(cfg, own, run_dir)
    apply_options(models, clf_cfg)
    if score.get("drop_class_bias"):  # the ablation: the Bayes readout without the naive-Bayes word term
        try:
            models["generative"].layout.drop_class_bias(models["generative"])
        except ValueError as err:
            raise ConfigError(f"score.drop_class_bias=true: {err}") from None
        clf_cfg.drop_class_bias = True  # part of the scored configuration (results.json, the test ledger)
    eval_seed = int(score.eval_seed if score.get("eval_seed") is not None else run_cfg.task.eval_seed)
    options = draw_options(clf_cfg, models["generative"], own, eval_seed)
    if "init" in readouts:  # after the draw options: an auto choice is the trained model's, on validation
        models["init"] = initial_model(run_cfg, own, models["generative"].device)
        apply_options({"init": models["init"]}, clf_cfg)
    log.info("task=score: %s of %s (%s) with %s, options %s", split, data.name, run_dir, readouts, options)
    val = score_split(readouts, models, own, "validation", eval_seed, options)
    same = data is own and split == "validation"  # the scored items are the temperature's: score them once
    scored = val if same else score_split(readouts, models, data, split, eval_seed + SPLIT_SEED_OFFSET[split], options)
    results = score_results(run_cfg, run_dir, split, data, val, scored, eval_seed, options, clf_cfg, readouts)
    results["temperature_fitted_on"] = f"validation of {own.name}" + (" (the scored items: in-sample)" if same else "")
    out = Path(cfg.output_dir)
    if split == "test":  # the run's configuration with the scoring options used: re-scoring it as trained is
        scored_cfg = run_cfg.copy()  # the same configuration in the ledger, new options a new one
        scored_cfg.classifier = clf_cfg
        results.update(record_run(cfg, task="score", config=scored_cfg, dataset=data.name,
                                  texts=data.dm.split_texts(split),
                                  labels=[int(y) for y in data.dm.datasets[split]["label"]], run=out,
                                  metrics={m: v["accuracy"] for m, v in results["models"].items()}))
    results["wall_s"] = time.time() - started
    write_results(out, results)
    write_predictions(out / "predictions.csv", data.dm.split_texts(split), scored, list(data.dm.label_names))
    Console(width=200).print(metrics_table(f"{split} of {data.name} ({run_dir})", results["models"], COLUMNS))
    return results


def score_results(run_cfg, run_dir: Path, split: str, data: ScoreData, val: dict, scored: dict, eval_seed: int,
                  options: dict, clf_cfg: DictConfig, readouts: list[str]) -> dict:
    """train_classifier's per-model schema (metrics with 95% intervals, McNemar against ``generative``, or the
    first readout without it) plus what was scored: run_dir, split, dataset, seeds, options."""
    reference = "generative" if "generative" in scored else next(iter(scored))
    return {
        "status": "finished", "run_dir": str(run_dir), "split": split, "dataset": data.name, "readouts": readouts,
        "models": {name: model_metrics(val[name], preds) for name, preds in scored.items()},
        "mcnemar_p": mcnemar_against(reference, scored), "mcnemar_discordant": discordant_against(reference, scored),
        "mcnemar_reference": reference,
        "n": len(scored[reference].labels), "n_val": len(val[reference].labels),
        "seed": int(run_cfg.seed), "eval_seed": eval_seed, "draw_seed": eval_seed + SPLIT_SEED_OFFSET[split],
        "classifier": {k: clf_cfg.get(k) for k in ("mode", "estimator", "prior", *OPTIONS, "stage_draws")},
        "class_bias_dropped": bool(clf_cfg.get("drop_class_bias", False)),
        "num_draws_chosen": options["num_draws"], "stop_z_chosen": options.get("stop_z"),
        "model": run_cfg.model.name, "max_length": run_cfg.data.max_length,
        "windows": {split: data.dm.window_stats(split)}, "label_names": list(data.dm.label_names),
    }

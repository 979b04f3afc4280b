"""The results table of ``task=train_classifier`` (and of the synthetic-data loop's final scoring): per
model, metrics with intervals, calibration before/after temperature scaling (fitted on validation) and
McNemar tests against the generative classifier; rendered as a terminal table, ``predictions.csv``, a
reliability diagram and the W&B summary and tables. The numbers land in ``results.json``."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import torch
from rich.console import Console

from diffusion_lab.metrics.calibration import apply_temperature, fit_temperature, reliability_diagram
from diffusion_lab.metrics.classification import (
    classification_metrics,
    discordant_counts,
    mcnemar_pvalue_from_counts,
)
from diffusion_lab.rich_utils import metrics_table

log = logging.getLogger(__name__)
COLUMNS = ["accuracy", "macro_f1", "nll", "brier", "ece", "ece_after_ts", "temperature", "examples_per_s",
           "forward_passes_per_example", "n"]


def model_metrics(val, test) -> dict:
    """Metrics of one model on the test items; the temperature is fitted on validation only."""
    metrics = classification_metrics(test.probs, test.labels)
    temperature = fit_temperature(val.log_joint, val.labels)
    scaled = classification_metrics(apply_temperature(test.log_joint, temperature), test.labels)
    metrics.update(temperature=temperature, ece_after_ts=scaled["ece"], nll_after_ts=scaled["nll"],
                   brier_after_ts=scaled["brier"], examples_per_s=test.examples_per_s,
                   forward_passes_per_example=test.forward_passes_per_example)
    return metrics


def mcnemar_against(reference: str, predictions: dict) -> dict[str, float]:
    """Exact McNemar p-value of every model against ``reference``, from ``discordant_against``'s counts."""
    return {name: mcnemar_pvalue_from_counts(n["only_reference"], n["only_model"])
            for name, n in discordant_against(reference, predictions).items()}


def discordant_against(reference: str, predictions: dict) -> dict[str, dict[str, int]]:
    """McNemar's discordant counts of every model against ``reference`` on the same items:
    ``only_reference`` (reference right, model wrong) and ``only_model``; what a study pools over seeds."""
    ref = predictions[reference]
    ref_correct = ref.log_joint.argmax(1) == ref.labels
    out = {}
    for name, p in predictions.items():
        if name != reference:
            b, c = discordant_counts(ref_correct, p.log_joint.argmax(1) == p.labels)
            out[name] = {"only_reference": b, "only_model": c}
    return out


def write_predictions(path: Path, texts: list[str], predictions: dict, label_names: list[str]) -> None:
    """One row per test item: text, label, and each model's prediction and confidence."""
    names = list(predictions)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "label", *[f"{n}_{k}" for n in names for k in ("pred", "confidence")], "text"])
        first = predictions[names[0]]
        for i in range(len(first.labels)):
            row = [i, label_names[int(first.labels[i])]]
            for n in names:
                probs = predictions[n].probs[i]
                row += [label_names[int(probs.argmax())], f"{float(probs.max()):.4f}"]
            writer.writerow([*row, texts[i] if i < len(texts) else ""])


def render(out: Path, results: dict, val_preds: dict, test_preds: dict, texts, label_names, wandb_logger=None):
    """Reliability diagram, predictions.csv, rich table, W&B summary/table/image."""
    figure = reliability_diagram({n: (p.probs, p.labels) for n, p in test_preds.items()}, out / "reliability.png",
                                 title=f"Reliability (test, n={results['n_test']})")
    write_predictions(out / "predictions.csv", texts, test_preds, label_names)
    Console(width=200).print(metrics_table("test metrics", results["models"], COLUMNS))
    if wandb_logger is not None:
        wandb_logger.experiment.summary.update(
            {f"test/{m}/{k}": v for m, d in results["models"].items() for k, v in d.items() if isinstance(v, float)})
        rows = list(csv.reader((out / "predictions.csv").open(encoding="utf-8")))
        wandb_logger.log_table(key="test_predictions", columns=rows[0], data=rows[1:501])
        wandb_logger.log_image(key="reliability", images=[str(figure)])


def correct_mask(pred) -> torch.Tensor:
    return pred.log_joint.argmax(1) == pred.labels

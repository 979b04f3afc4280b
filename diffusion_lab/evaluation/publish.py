"""Where an evaluation goes: ``report.html`` and ``explanations.html``, a rich summary table, W&B.

W&B follows the project's rules (``viz.wandb_media``): only with ``logger=wandb``, offline without
credentials. Inside ``task=train_classifier`` (``eval.after_training``) the training run's W&B run
is reused and left open; a standalone ``task=evaluate`` starts its own and closes it.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig
from rich.console import Console

from diffusion_lab.evaluation.explain import heatmaps_html
from diffusion_lab.evaluation.html import CSS, self_contained_report, token_heatmap_html
from diffusion_lab.evaluation.models import EVAL_MODELS
from diffusion_lab.evaluation.suite_page import render_report
from diffusion_lab.rich_utils import metrics_table
from diffusion_lab.viz.wandb_media import start_wandb_run, wandb_enabled


def write_pages(ev: dict, figures: dict, out: Path) -> None:
    render_report(ev, figures, out / "report.html")
    if ev["explanations"]:
        (out / "explanations.html").write_text(self_contained_report(
            "Token explanations", [("Heatmaps", heatmaps_html(ev["explanations"]))]), encoding="utf-8")


def print_summary(ev: dict) -> None:
    rows = {}
    for n, c in ev["calibration"].items():
        rows[n] = {"accuracy": c["before"]["accuracy"], "ece": c["before"]["ece"], "temperature": c["temperature"],
                   "ece_after_ts": c["after"]["ece"], "n": c["n_test"]}
        if n in ev["shift"]:
            rows[n]["shift_accuracy"] = ev["shift"][n]["before"]["accuracy"]
        kind = EVAL_MODELS[n].headline_ood
        if n in ev["ood"] and kind in ev["ood"][n]:
            rows[n]["ood_auroc_matched"] = ev["ood"][n][kind]["length_matched"].get("auroc")
        if n in ev["explanations"]:
            rows[n]["deletion_gap"] = ev["explanations"][n]["mean_gap_random_minus_attributed"]
    cols = ["accuracy", "ece", "temperature", "ece_after_ts", "shift_accuracy", "ood_auroc_matched", "deletion_gap", "n"]
    Console(width=200).print(metrics_table("evaluation (test)", rows, cols))


def log_wandb(cfg: DictConfig, out: Path, ev: dict, figures: dict) -> None:
    """Figures, the heatmap table, the report and headline numbers to W&B (when ``logger=wandb``)."""

    if not wandb_enabled(cfg):
        return
    import wandb  # deferred: a heavy import, only when W&B logs

    started_here = wandb.run is None
    run = wandb.run or start_wandb_run(cfg, out)
    try:
        run.log({f"evaluate/{k}": wandb.Image(str(p)) for k, p in figures.items()})
        table = wandb.Table(columns=["model", "index", "label", "prediction", "confidence", "text", "heatmap"])
        for name, entry in ev["explanations"].items():
            for ex in entry["examples"]:
                page = f"<style>{CSS}</style>" + token_heatmap_html(ex["tokens"], ex["attributions"])
                table.add_data(name, ex["index"], ex["label"], ex["prediction"], ex["confidence"], ex["text"],
                               wandb.Html(page, inject=False))
        run.log({"evaluate/explanations": table, "evaluate/report": wandb.Html(out / "report.html", inject=False)})
        for n, c in ev["calibration"].items():
            run.summary.update({f"evaluate/{n}/accuracy": c["before"]["accuracy"], f"evaluate/{n}/ece": c["before"]["ece"],
                                f"evaluate/{n}/ece_after_ts": c["after"]["ece"], f"evaluate/{n}/temperature": c["temperature"]})
        run.summary["evaluate/json"] = json.dumps({k: ev[k] for k in ("meta", "skipped")}, default=str)[:10000]
    finally:
        if started_here:
            run.finish()

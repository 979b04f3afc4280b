"""``task=report``: one table (terminal, ``report.csv``, ``report.md``) and plots for a sweep or runs.

    python -m diffusion_lab task=report run_dir=multirun/train_lm/2026-01-01/10-00-00
    python -m diffusion_lab task=report 'run_dir=[sweep_a,sweep_b]' task.monitor=val/ppl_bound

Rows are jobs (failed ones marked, with their error), columns the swept keys and the metrics; when
``seed`` was swept, a second table gives n, mean and 95% interval per setting.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, ListConfig
from rich.console import Console

from diffusion_lab.logging_utils import get_logger
from diffusion_lab.sweep_results.collect import collect, swept_keys
from diffusion_lab.sweep_results.plots import plot_all
from diffusion_lab.sweep_results.tables import (
    job_rows,
    markdown_table,
    metric_columns,
    rich_table,
    seed_summary,
    write_csv,
)

log = get_logger(__name__)


def run_dirs(cfg: DictConfig) -> list[Path]:
    given = cfg.get("run_dir")
    if not given:
        raise ValueError("task=report needs run_dir=<sweep or run directory> (or run_dir=[dir_a,dir_b])")
    dirs = [Path(d) for d in (given if isinstance(given, ListConfig | list) else [given])]
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        raise FileNotFoundError(f"run_dir: {', '.join(missing)} not found")
    return dirs


def main_metric(cfg: DictConfig, jobs) -> str | None:
    if cfg.task.get("monitor"):
        return cfg.task.monitor
    monitors = [j.monitor for j in jobs if j.monitor]
    return max(set(monitors), key=monitors.count) if monitors else None


def run(cfg: DictConfig) -> dict:
    dirs = run_dirs(cfg)
    out_dir = Path(cfg.task.out_dir) if cfg.task.get("out_dir") else dirs[0]
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = collect(dirs)
    keys = swept_keys(jobs)
    monitor = main_metric(cfg, jobs)
    metrics = metric_columns(jobs, [m for m in [monitor, *cfg.task.metrics] if m])
    root = dirs[0] if len(dirs) == 1 else None
    rows = job_rows(jobs, root, keys, metrics)

    console = Console(width=200)
    console.print(rich_table(rows, f"{len(rows)} jobs in {', '.join(map(str, dirs))}"))
    write_csv(rows, out_dir / "report.csv")
    parts = [f"# Report: {', '.join(map(str, dirs))}", "",
             f"{len(rows)} jobs, {sum(r['status'] == 'finished' for r in rows)} finished; "
             f"swept: {', '.join(keys) or 'nothing'}; main metric: {monitor}", "", markdown_table(rows)]
    summary = seed_summary(rows, keys, metrics) if "seed" in keys else []
    if summary:
        console.print(rich_table(summary, "mean and 95% Student-t interval over seeds"))
        write_csv(summary, out_dir / "report_seeds.csv")
        parts += ["", "## Mean and 95% interval over seeds (Student t, finished jobs only)", "",
                  markdown_table(summary)]
    plots = plot_all(rows, keys, monitor, out_dir) if cfg.task.get("plots", True) and monitor else []
    parts += ["", *[f"![{p.stem}]({p.name})" for p in plots]]
    (out_dir / "report.md").write_text("\n".join(parts) + "\n", encoding="utf-8")
    log.info("report: %d jobs -> %s (report.csv, report.md, %d plots)", len(rows), out_dir, len(plots))
    return {"status": "finished", "num_jobs": len(rows), "swept_keys": keys, "main_metric": monitor,
            "failed": [r["job"] for r in rows if r["status"] != "finished"], "out_dir": str(out_dir),
            "plots": [str(p) for p in plots]}

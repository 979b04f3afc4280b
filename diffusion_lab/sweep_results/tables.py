"""The report tables: one row per job, and (when ``seed`` was swept) mean and 95% interval per setting.

Metric columns are chosen by name: ``accuracy`` matches ``accuracy`` and every ``<model>/accuracy``
of a classifier run, so one list serves language-model and classifier sweeps.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from diffusion_lab.metrics.classification import mean_ci95
from diffusion_lab.sweep_results.collect import Job, swept_value


def metric_columns(jobs: list[Job], names: Sequence[str]) -> list[str]:
    """Columns present in at least one job for each requested name (exact or ``*/name``), in order."""
    present: list[str] = []
    for job in jobs:
        present += [k for k in job.metrics if k not in present]
    cols: list[str] = []
    for name in names:
        cols += [k for k in present if (k == name or k.endswith(f"/{name}")) and k not in cols]
    return cols


def job_rows(jobs: list[Job], root: Path | None, keys: list[str], metrics: list[str]) -> list[dict]:
    rows = []
    for job in jobs:
        where = job.path.relative_to(root) if root and job.path.is_relative_to(root) else job.path
        row = {"job": str(where), "status": job.status}
        values = {k: swept_value(job, k) for k in keys}
        # lists/dicts (e.g. tags=[a,b]) as text, so that rows group and plot by value
        row.update({k: str(v) if isinstance(v, list | dict) else v for k, v in values.items()})
        row.update({m: job.metrics.get(m) for m in metrics})
        row["error"] = (job.error or "").splitlines()[0][:200] if job.error else ""
        rows.append(row)
    return rows


def seed_summary(rows: list[dict], keys: list[str], metrics: list[str]) -> list[dict]:
    """Group finished rows by every swept key except ``seed``: n, mean and 95% Student-t interval."""
    factors = [k for k in keys if k != "seed"]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if row["status"] == "finished":
            groups.setdefault(tuple(repr(row[k]) for k in factors), []).append(row)
    out = []
    for members in groups.values():
        summary = {k: members[0][k] for k in factors}
        summary["n_seeds"] = len(members)
        summary["seeds"] = " ".join(str(m.get("seed")) for m in members)
        for m in metrics:
            values = [r[m] for r in members if r.get(m) is not None]
            if values:
                mean, lo, hi = mean_ci95(values)
                summary[m] = mean
                summary[f"{m} 95% CI"] = "n/a (1 seed)" if math.isnan(lo) else f"[{lo:.4g}, {hi:.4g}]"
        out.append(summary)
    return out


def fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def columns_of(rows: list[dict]) -> list[str]:
    cols: list[str] = []
    for row in rows:
        cols += [k for k in row if k not in cols]
    return cols


def write_csv(rows: list[dict], path: Path) -> None:
    cols = columns_of(rows)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=cols)
        writer.writeheader()
        writer.writerows([{k: row.get(k) for k in cols} for row in rows])


def markdown_table(rows: list[dict]) -> str:
    cols = columns_of(rows)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in rows:
        cells = [fmt(row.get(c)).replace("|", "\\|").replace("\n", " ") for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rich_table(rows: list[dict], title: str):
    table = Table(title=title, show_lines=False)
    cols = columns_of(rows)
    for col in cols:
        table.add_column(col, overflow="fold", style="red" if col == "error" else None)
    for row in rows:
        style = "red" if row.get("status") not in (None, "finished") else None
        table.add_row(*[fmt(row.get(c)) for c in cols], style=style)
    return table

"""What ``task=synthesize`` leaves on disk (and in W&B): every decision next to the outcome.

``synthetic.jsonl``: the kept texts of the chosen configuration, one JSON object per line with
``text``, ``label`` (the intended label: ``dataset=text_files`` reads these two), ``intended_label``,
``round``, ``score``, ``verdicts``, ``generator`` and ``judge`` (their configs). ``rounds.csv`` /
``rounds.md``: the per-round table. ``examples.jsonl``: kept and rejected examples with reasons.
"""

from __future__ import annotations

import csv
from pathlib import Path

from diffusion_lab.synthesis.filters import decision
from diffusion_lab.synthesis.real_data import write_jsonl
from diffusion_lab.viz.wandb_media import start_wandb_run


def synthetic_rows(records, generator: dict, judge: dict) -> list[dict]:
    return [{"text": r["text"], "label": r["intended_label"], "intended_label": r["intended_label"],
             "round": r["round"], "score": r["score"], "verdicts": [r["verdict"]], "generator": generator,
             "judge": judge} for r in records]


def examples(records, threshold: float, per_kind: int) -> list[dict]:
    """Up to ``per_kind`` kept and ``per_kind`` rejected texts per round, with the deciding reason."""
    out, counts = [], {}
    for r in records:
        dropped, reason = decision(r, threshold)
        key = (r["round"], dropped is None)
        if counts.get(key, 0) < per_kind:
            counts[key] = counts.get(key, 0) + 1
            out.append({"round": r["round"], "kept": dropped is None, "dropped_by": dropped, "reason": reason,
                        "intended_label": r["intended_label"], "judge_label": r["verdict"]["label"],
                        "score": r["score"], "text": r["text"]})
    return out


def write_table(out: Path, rows: list[dict]) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with (out / "rounds.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(row.get(c, "")) for c in columns) + " |" for row in rows]
    (out / "rounds.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_all(out: Path, chosen_records, generator, judge, example_rows, table) -> Path:
    write_table(out, table)
    write_jsonl(out / "examples.jsonl", example_rows)
    return write_jsonl(out / "synthetic.jsonl", synthetic_rows(chosen_records, generator, judge))


def log_wandb(cfg, out: Path, table: list[dict], example_rows: list[dict], summary: dict) -> None:
    """The round table and the examples as W&B tables, when a W&B logger is configured."""

    run = start_wandb_run(cfg, out)
    if run is None:
        return
    import wandb  # deferred: a heavy import, only when W&B logs

    try:
        for key, rows in (("synthesis_rounds", table), ("synthesis_examples", example_rows)):
            if rows:
                columns = list(dict.fromkeys(k for row in rows for k in row))
                run.log({key: wandb.Table(columns=columns, data=[[row.get(c) for c in columns] for row in rows])})
        run.summary.update(summary)
    finally:
        run.finish()

"""Rows and table of the ablation in experiments/scratch_recipe/run.sh.

    python experiments/scratch_recipe/summarize.py --rows DIR row RUNS NAME --load-start "..." --load-end "..."
        -> DIR/NAME.json (run.sh: experiments/scratch_recipe/rows, committed: the run directories are not,
           and the ablation is longer than one working session, so finished rows must outlive their runs)
    python experiments/scratch_recipe/summarize.py --rows DIR table [NAME ...]   -> the markdown table

unigram CE: -mean log p(w) over the validation tokens, p from the training counts with add-one smoothing
(the level an untrained unigram-initialised model starts at); "below" = unigram CE - validation bound.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
from collections import Counter
from pathlib import Path


def unigram_ce(run: Path) -> float:
    from diffusion_lab.builders import build_datamodule
    from diffusion_lab.runs import load_run_config

    cfg = load_run_config(run)
    dm = build_datamodule(cfg, cache_dir=run)
    dm.setup()
    counts = Counter(t for ids in dm.datasets["train"]["input_ids"] for t in ids)
    total, vocab = sum(counts.values()), len(dm.tokenizer)
    val = [t for ids in dm.datasets["validation"]["input_ids"] for t in ids]
    return -sum(math.log((counts[t] + 1) / (total + vocab)) for t in val) / max(len(val), 1)


def _overrides(run: Path) -> list[str]:
    from omegaconf import OmegaConf

    saved = run / ".hydra" / "overrides.yaml"
    return list(OmegaConf.load(saved)) if saved.exists() else []


def write_row(rows: Path, runs: Path, name: str, load_start: str, load_end: str) -> dict:
    from diffusion_lab.runs import load_run_config

    run, row = runs / name, {"row": name, "load_start": load_start, "load_end": load_end}
    results = run / "results.json"
    r = json.loads(results.read_text()) if results.exists() else {"status": "failed (no results.json)"}
    row["status"] = r.get("status")
    if r.get("status") == "finished":
        cfg = load_run_config(run)
        ce, nll = unigram_ce(run), r.get("val/nll_per_token")
        row.update(steps=r["global_step"], tokens_per_s=r.get("train_tokens_per_s"), val_nll_per_token=nll,
                   unigram_ce=ce, below_unigram=None if nll is None else ce - nll, seed=int(cfg.seed),
                   max_time=str(cfg.trainer.max_time), eval_draws=int(cfg.task.eval_draws),
                   n_val=int(cfg.data.max_val), overrides=_overrides(run))
    row["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    rows.mkdir(parents=True, exist_ok=True)
    (rows / f"{name}.json").write_text(json.dumps(row, indent=2))
    return row


def table(rows: Path, names: list[str]) -> str:
    paths = [rows / f"{n}.json" for n in names] if names else sorted(rows.glob("*.json"))
    lines = ["| row | steps | tokens/s | val bound (nats/token) | below unigram CE | seed | load (start -> end) |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for path in paths:
        if not path.exists():
            lines.append(f"| {path.stem} | not run | | | | | |")
            continue
        r = json.loads(path.read_text())
        if r["status"] != "finished":
            lines.append(f"| {r['row']} | {r['status']} | | | | | |")
            continue
        nll, below = r["val_nll_per_token"], r["below_unigram"]
        lines.append(f"| {r['row']} | {r['steps']} | {r['tokens_per_s'] or 0:,.0f} | "
                     f"{nll if nll is not None else float('nan'):.3f} | {'' if below is None else f'{below:.3f}'} | "
                     f"{r['seed']} | {r['load_start']} -> {r['load_end']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=Path, default=Path(__file__).resolve().parent / "rows")
    sub = parser.add_subparsers(dest="cmd", required=True)
    row = sub.add_parser("row")
    row.add_argument("runs", type=Path)
    row.add_argument("name")
    row.add_argument("--load-start", default="")
    row.add_argument("--load-end", default="")
    tab = sub.add_parser("table")
    tab.add_argument("names", nargs="*")
    args = parser.parse_args()
    if args.cmd == "row":
        print(json.dumps(write_row(args.rows, args.runs, args.name, args.load_start, args.load_end), indent=2))
    else:
        print(table(args.rows, args.names))


if __name__ == "__main__":
    main()

"""Table of the ablation in experiments/scratch_recipe/run.sh: one row per run directory.

unigram CE: -mean log p(w) over the validation tokens, p from the training counts with add-one smoothing
(the level an untrained unigram-initialised model starts at); "below" = unigram CE - validation bound.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from pathlib import Path


def unigram_ce(run: Path) -> float | None:
    from diffusion_lab.builders import build_datamodule
    from diffusion_lab.runs import load_run_config

    cfg = load_run_config(run)
    dm = build_datamodule(cfg, cache_dir=run)
    dm.setup()
    counts = Counter(t for ids in dm.datasets["train"]["input_ids"] for t in ids)
    total, vocab = sum(counts.values()), len(dm.tokenizer)
    val = [t for ids in dm.datasets["validation"]["input_ids"] for t in ids]
    return -sum(math.log((counts[t] + 1) / (total + vocab)) for t in val) / max(len(val), 1)


def main() -> None:
    out, names = Path(sys.argv[1]), sys.argv[2:]
    ce = None
    print("| row | steps | tokens/s | val bound (nats/token) | below unigram CE | seed |\n|---|---:|---:|---:|---:|---:|")
    for name in names:
        results = out / name / "results.json"
        if not results.exists():
            print(f"| {name} | failed | | | | |")
            continue
        r = json.loads(results.read_text())
        if r.get("status") != "finished":
            print(f"| {name} | {r.get('status')} | | | | |")
            continue
        ce = unigram_ce(out / name) if ce is None else ce  # same data, tokenizer settings and seed in every row
        nll = r.get("val/nll_per_token")
        below = "" if nll is None else f"{ce - nll:.3f}"
        from diffusion_lab.runs import load_run_config

        seed = load_run_config(out / name).seed
        print(f"| {name} | {r['global_step']} | {r['train_tokens_per_s'] or 0:,.0f} | {nll or float('nan'):.3f} | "
              f"{below} | {seed} |")
    print(f"\nunigram cross-entropy (validation, add-one smoothed train counts): {ce:.3f}" if ce else "")


if __name__ == "__main__":
    main()

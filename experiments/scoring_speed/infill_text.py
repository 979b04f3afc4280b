"""Does the infill term train the one-pass label readout? ``classifier.infill_text`` noised vs visible.

The tiny synthetic run of tests/test_scoring_infill.py (600 synthetic reviews, 48-token windows, a 2-layer
64-wide encoder, 40 epochs = 1,500 steps, lr 1e-3, infill term at 0.9 of the loss), seeds 0-4, infill and
Bayes accuracy on the 120 test items. Accuracies, not timings: load does not change them.

    python experiments/scoring_speed/infill_text.py --seeds 0 1 2 3 4 --out experiments/scoring_speed/infill_text.md
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")


def main():
    from diffusion_lab.app import run
    from tests.conftest import TINY, compose
    from tests.test_scoring_infill import CLF

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--variants", nargs="+", default=["noised", "visible"])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    base = [o for o in CLF if not o.startswith("classifier.infill_text=")]
    rows = ["| infill_text | seed | infill accuracy | Bayes K=2 accuracy | hybrid accuracy | n |", "|---|---|---|---|---|---|"]
    for variant in args.variants:
        for seed in args.seeds:
            out = Path(tempfile.mkdtemp()) / "run"
            m = run(compose([*TINY, *base, f"classifier.infill_text={variant}", f"seed={seed}"], out))["models"]
            rows.append(f"| {variant} | {seed} | {m['generative_infill']['accuracy']:.3f} | {m['generative']['accuracy']:.3f}"
                        f" | {m['generative_hybrid']['accuracy']:.3f} | {m['generative_infill']['n']} |")
            print(rows[-1], flush=True)
    args.out.write_text("\n".join([f"overrides: {' '.join(base)}", "", *rows, ""]))


if __name__ == "__main__":
    main()

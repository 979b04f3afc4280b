"""``classifier.score_precision``: float32 against bfloat16 autocast on the same model, items and draws.

    python experiments/scoring_speed/precision.py <classifier run dir> --n 100 --num-draws 2 \
        --out experiments/scoring_speed/precision.json

VALIDATION reviews (the run's windows), Bayes readout with fixed K, the same seed for both precisions,
timed back to back in one process, order 32, bf16, 32, bf16 (each timing after a warm-up batch).
Reports examples/s per timing, accuracy, how often the two decide alike, and the error of the
class difference log p(x | pos) - log p(x | neg) (what the decision reads) in nats. Run it alone.
"""

import argparse
import json
import os
import time
from pathlib import Path

import torch


def main():
    from diffusion_lab.builders import build_datamodule
    from diffusion_lab.classifiers.build import load_classifier_run
    from diffusion_lab.classifiers.predict import predict

    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--num-draws", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(2)
    cfg, _, clf, _ = load_classifier_run(args.run_dir)
    cfg.data.max_val = cfg.datamodule.max_val = args.n  # the run config is saved resolved
    dm = build_datamodule(cfg, cache_dir=None)
    dm.setup()
    batches = list(dm.dataloader("validation"))
    kw = {"num_draws": args.num_draws, "adaptive": False, "sequential": False}
    rows, preds = [], {}
    for precision in ("32", "bf16", "32", "bf16"):
        clf.hparams.score_precision = precision
        predict(clf, batches[:1], seed=cfg.task.eval_seed, **kw)  # warm-up
        start = time.perf_counter()
        p = predict(clf, batches, seed=cfg.task.eval_seed, **kw)
        wall = time.perf_counter() - start
        preds[precision] = p
        rows.append({"precision": precision, "examples_per_s": len(p.labels) / wall, "wall_s": wall,
                     "accuracy": float((p.log_joint.argmax(-1) == p.labels).double().mean()),
                     "load_after": os.getloadavg()[0]})
        print(json.dumps(rows[-1]), flush=True)
    a, b = preds["32"].log_joint, preds["bf16"].log_joint
    diff_a, diff_b = a[:, 1] - a[:, 0], b[:, 1] - b[:, 0]
    summary = {"run_dir": str(args.run_dir), "n": len(a), "num_draws": args.num_draws,
               "passes_per_item": preds["32"].forward_passes_per_example, "timings": rows,
               "speed_ratio_bf16_over_32": sum(r["examples_per_s"] for r in rows if r["precision"] == "bf16")
               / sum(r["examples_per_s"] for r in rows if r["precision"] == "32"),
               "decisions_agree": float((a.argmax(-1) == b.argmax(-1)).double().mean()),
               "class_difference_abs_error_nats": {"mean": float((diff_a - diff_b).abs().mean()),
                                                   "max": float((diff_a - diff_b).abs().max())},
               "class_difference_abs_nats_mean": float(diff_a.abs().mean())}
    print(json.dumps(summary, indent=1), flush=True)
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""``classifier.stop_z=auto`` on a finished classifier run: the sequential threshold chosen on VALIDATION.

    python experiments/scoring_speed/auto_stop_z.py <classifier run dir> --num-draws 8 \
        --candidates 0.5 1.0 1.5 2.0 2.5 3.0 --out experiments/scoring_speed/auto_stop_z.json

Scores the run's validation reviews once (``--num-draws`` draws in the run's sequential stages) and
replays the stopping rule for each candidate (``diffusion_lab.classifiers.draws.choose_stop_z``): per z,
accuracy, agreement with all draws, passes per review. The test split is not scored.

``--stage-draws 2 1`` repeats this per stage size (draws between decisions after the first stage of
``first_stage_draws``; each size is its own scoring pass, since it changes the draws' stratification)
and then chooses the (size, z) with the fewest validation passes among those whose accuracy reaches ONE
bar for all sizes: the best all-draws accuracy of any size (less ``--max-accuracy-drop``). Each size's
own all-draws row is a different estimator of the same K draws, and a size with a weaker one must not
get a lower bar (the first version did, and chose a cheaper but less accurate rule; see the README).
The rule is the framework's (``choose_stages``, what ``classifier.stage_draws=auto`` runs).
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
    from diffusion_lab.classifiers.draws import choose_stages

    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--num-draws", type=int, default=8)
    ap.add_argument("--candidates", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    ap.add_argument("--max-accuracy-drop", type=float, default=0.0)
    ap.add_argument("--stage-draws", type=int, nargs="+",
                    help="stage sizes to choose from, on validation (default: the run's classifier.stage_draws)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--long-text", choices=["truncate", "windows"],
                    help="override the run's data.long_text (as run.py --long-text, to choose z in the scored setting)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    cfg, _, clf, _ = load_classifier_run(args.run_dir)
    if args.long_text:
        cfg.datamodule.long_text = args.long_text
    dm = build_datamodule(cfg, cache_dir=args.run_dir)
    dm.setup()
    start = time.perf_counter()
    sizes = args.stage_draws or [clf.hparams.get("stage_draws")]
    stage, chosen, per_stage, bar = choose_stages(clf, dm, args.num_draws, sizes, args.candidates,
                                                  args.max_accuracy_drop, seed=cfg.task.eval_seed)
    per_stage = {size: {"chosen": v["chosen"], "table": {str(k): row for k, row in v["table"].items()}}
                 for size, v in per_stage.items()}
    row = {"run_dir": str(args.run_dir), "num_draws": args.num_draws, "stage_draws": stage,
           "first_stage_draws": clf.hparams.first_stage_draws,
           "n_val": len(dm.datasets["validation"]), "long_text": dm.long_text, "max_accuracy_drop": args.max_accuracy_drop,
           "chosen": float(chosen), "accuracy_bar": bar, "table": per_stage[stage]["table"],
           "per_stage_draws": {str(k): v for k, v in per_stage.items()},
           "wall_s": time.perf_counter() - start, "load_after": os.getloadavg()}
    print(json.dumps(row, indent=1), flush=True)
    if args.out:
        args.out.write_text(json.dumps(row, indent=1) + "\n")


if __name__ == "__main__":
    main()

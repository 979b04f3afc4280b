"""Validation readouts of a pilot's step-175 checkpoint (pilot_levers.sh stops a pilot after that validation).

Bayes K=1 (as the training-time validation) and the one-pass infill readout on the run's own validation
reviews (data.max_val of the run, whole reviews in its windows). Validation only: the test split is not read.

    python experiments/imdb_gen_clf/pilot_readouts.py experiments/imdb_gen_clf/runs/pilot_infill_visible_w05
"""

import argparse
import json
from pathlib import Path

import torch


def main():
    from diffusion_lab.builders import build_datamodule
    from diffusion_lab.classifiers.build import load_classifier_run
    from diffusion_lab.classifiers.predict import predict

    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(2)
    cfg, tokenizer, clf, _ = load_classifier_run(args.run_dir, "best")
    dm = build_datamodule(cfg, cache_dir=args.run_dir)
    dm.setup()
    loader = dm.dataloader("validation")
    row = {"run_dir": str(args.run_dir), "step": int(torch.load(args.run_dir / "checkpoints" / "best.ckpt",
                                                                 map_location="cpu", weights_only=False)["global_step"])}
    for name, kwargs in {"bayes_k1": {"num_draws": 1, "sequential": False}, "infill": {"readout": "infill"}}.items():
        p = predict(clf, loader, seed=cfg.task.eval_seed, **kwargs)
        row[name] = {"accuracy": float((p.log_joint.argmax(-1) == p.labels).double().mean()),
                     "nll": float(torch.nn.functional.cross_entropy(p.log_joint, p.labels)), "n": len(p.labels)}
        print(name, row[name], flush=True)
    if args.out:
        args.out.write_text(json.dumps(row, indent=1) + "\n")


if __name__ == "__main__":
    main()

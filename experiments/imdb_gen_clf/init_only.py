"""What training added: the conditional classifier at initialisation (unigram-initialised output
biases, i.e. multinomial naive Bayes on the token window) against the trained run, same items and draws.

    python experiments/imdb_gen_clf/init_only.py experiments/imdb_gen_clf/runs/conditional --n 500
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from hydra.utils import instantiate

from diffusion_lab.builders import unigram_init
from diffusion_lab.classifiers.build import build_generative, load_classifier_run, log_prior
from diffusion_lab.classifiers.predict import predict
from diffusion_lab.metrics.classification import classification_metrics, mcnemar_pvalue


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    cfg, tokenizer, trained, _ = load_classifier_run(args.run_dir)
    cfg.datamodule.cache_dir = str(args.run_dir)  # the run's tokenizer (with its label tokens)
    cfg.datamodule.max_test = args.n
    dm = instantiate(cfg.datamodule)
    dm.setup()
    torch.manual_seed(cfg.seed)
    fresh = build_generative(cfg, tokenizer, dm.num_classes, log_prior(cfg, dm.datasets["train"]["label"], dm.num_classes))
    unigram_init(cfg, dm, [lm.backbone for lm in fresh.lms], dm.num_classes)
    loader = dm.dataloader("test")
    out = {}
    for name, model in (("init_only", fresh), ("trained", trained)):
        p = predict(model, loader, seed=0, num_draws=args.k, adaptive=False)
        out[name] = {"metrics": classification_metrics(p.probs, p.labels), "correct": (p.log_joint.argmax(1) == p.labels)}
    result = {name: v["metrics"] for name, v in out.items()}
    result["mcnemar_p"] = mcnemar_pvalue(out["init_only"]["correct"], out["trained"]["correct"])
    result["n"], result["K"] = args.n, args.k
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

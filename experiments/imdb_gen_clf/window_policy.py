"""What reading whole reviews buys: the trained run's models on the same test items, scored on the
first ``data.max_length`` tokens only (``truncate``) and on every window (``windows``).

    python experiments/imdb_gen_clf/window_policy.py experiments/imdb_gen_clf/runs/conditional --n 2000 \
        --out experiments/imdb_gen_clf/window_policy.json

This reads the test split of a finished run again; it is a reported ablation of the run's own
models, nothing is chosen from it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hydra.utils import instantiate

from diffusion_lab.classifiers.build import load_classifier_run
from diffusion_lab.classifiers.predict import predict
from diffusion_lab.metrics.classification import classification_metrics, mcnemar_pvalue


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--k", type=int, default=None, help="draws per class (default: the run's num_draws)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    cfg, _, clf, baselines = load_classifier_run(args.run_dir)
    k = args.k or int(cfg.classifier.num_draws)
    models = {"generative": clf, **{n: m for n, m in baselines.items() if n == "discriminative"}}
    result, correct = {"n": args.n, "K": k, "window": int(cfg.data.max_length)}, {}
    for policy in ("truncate", "windows"):
        cfg.datamodule.cache_dir = str(args.run_dir)  # the run's tokenizer (with its label tokens)
        cfg.datamodule.max_test, cfg.datamodule.long_text = args.n, policy
        dm = instantiate(cfg.datamodule)
        dm.setup()
        result[f"{policy}_stats"] = dm.window_stats("test")
        for name, model in models.items():
            p = predict(model, dm.dataloader("test"), seed=cfg.task.eval_seed + 1, num_draws=k)
            result[f"{name}/{policy}"] = {**classification_metrics(p.probs, p.labels),
                                          "forward_passes_per_example": p.forward_passes_per_example}
            correct[f"{name}/{policy}"] = p.log_joint.argmax(1) == p.labels
    for name in models:
        result[f"{name}/mcnemar_p_truncate_vs_windows"] = mcnemar_pvalue(correct[f"{name}/truncate"],
                                                                         correct[f"{name}/windows"])
    print(json.dumps(result, indent=2, default=float))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()

"""What training added: the conditional classifier at initialisation (the pretrained encoder with its
new head, output biases at the training unigram statistics, so the class enters as a multinomial
naive-Bayes bias) against the trained run's own test predictions on the same items.

    python experiments/imdb_gen_clf/init_only.py experiments/imdb_gen_clf/runs/conditional --n 300 \
        --out experiments/imdb_gen_clf/init_only.json

``--n``: the first n of the run's test items (the split is shuffled with the run seed: a random subset).
The initial model is scored with the run's own scoring settings and seed.

``--refit-offset``: also ask whether a gain is only a shifted class threshold. Both the start and the
trained checkpoint are scored on the run's validation reviews, each gets its own affine recalibration
``softmax(z / T + b)`` (``metrics.fit_bias_temperature``: T and the class offsets b, b_0 = 0, fitted by
validation NLL only), and both are compared on the same test items after it (McNemar, paired). The
offset moves the decision threshold; T alone never changes an argmax.
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
from diffusion_lab.metrics.calibration import apply_bias_temperature, fit_bias_temperature
from diffusion_lab.metrics.classification import classification_metrics, mcnemar_pvalue

try:
    from window_policy import windowed_correct
except ImportError:  # run from the repository root
    from experiments.imdb_gen_clf.window_policy import windowed_correct


def offset_refit(cfg, dm, fresh, trained, k: int, init_test) -> dict:
    """The start and the trained model, each with its validation-fitted ``(T, b)``, on the same test items."""
    seed = cfg.task.eval_seed + 1
    out, correct = {}, {}
    for name, model, test in (("init", fresh, init_test), ("trained", trained, None)):
        val = predict(model, dm.dataloader("validation"), seed=seed, num_draws=k)
        test = test if test is not None else predict(model, dm.dataloader("test"), seed=seed, num_draws=k)
        T, b = fit_bias_temperature(val.log_joint, val.labels)
        probs = apply_bias_temperature(test.log_joint, T, b)
        correct[name] = probs.argmax(1) == test.labels
        out[name] = {"temperature": T, "offset": b.tolist(), "n_val": len(val.labels),
                     "val_accuracy_before": float((val.log_joint.argmax(1) == val.labels).float().mean()),
                     "test_accuracy_before": float((test.log_joint.argmax(1) == test.labels).float().mean()),
                     "test_after": classification_metrics(probs, test.labels)}
    out["mcnemar_p_trained_vs_init_after"] = mcnemar_pvalue(correct["init"], correct["trained"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--out", default=None)
    parser.add_argument("--refit-offset", action="store_true",
                        help="also compare start and trained after a validation-fitted temperature and class offset")
    args = parser.parse_args()
    cfg, tokenizer, trained, _ = load_classifier_run(args.run_dir)
    results = json.loads((args.run_dir / "results.json").read_text())
    cfg.datamodule.cache_dir = str(args.run_dir)  # the run's tokenizer (with its label tokens)
    dm = instantiate(cfg.datamodule)
    dm.setup()
    dm.datasets["test"] = dm.datasets["test"].select(range(min(args.n, len(dm.datasets["test"]))))
    torch.manual_seed(cfg.seed)
    fresh = build_generative(cfg, tokenizer, dm.num_classes, log_prior(cfg, dm.datasets["train"]["label"], dm.num_classes))
    unigram_init(cfg, dm, [lm.backbone for lm in fresh.lms], dm.num_classes)
    k = int(results.get("num_draws_chosen") or cfg.classifier.num_draws)
    p = predict(fresh, dm.dataloader("test"), seed=cfg.task.eval_seed + 1, num_draws=k)
    init_correct = p.log_joint.argmax(1) == p.labels
    # every trained generative readout (Bayes, infill, hybrid) against the same start, paired on the same items
    by_readout = {}
    for name in (m for m in results["models"] if m.startswith("generative")):
        correct = windowed_correct(args.run_dir, name, p.labels, results["label_names"])
        by_readout[name] = {"trained_accuracy_same_items": float(correct.float().mean()),
                            "mcnemar_p_vs_init": mcnemar_pvalue(init_correct, correct)}
    out = {"n": len(p.labels), "num_draws": k,
           "init_only": {**classification_metrics(p.probs, p.labels), "forward_passes_per_example": p.forward_passes_per_example},
           # the Bayes readout's pair, kept at the top level where earlier results files have it
           "trained_accuracy_same_items": by_readout["generative"]["trained_accuracy_same_items"],
           "mcnemar_p": by_readout["generative"]["mcnemar_p_vs_init"],
           "trained_readouts": by_readout}
    if args.refit_offset:
        out["offset_refit"] = offset_refit(cfg, dm, fresh, trained, k, p)
    print(json.dumps(out, indent=2, default=float))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    main()

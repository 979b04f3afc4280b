"""Draw budgets chosen on VALIDATION: ``classifier.num_draws: auto`` and ``classifier.stop_z: auto``.

    K* = min { K in auto_draws : NLL_val(K) <= NLL_val(max auto_draws) + auto_tolerance }

NLL is the mean negative log posterior of the true class (nats per item) of the Bayes readout with
fixed K (no pruning, no stopping), the same seed for every K.

    z* = min { z in auto_stop_z : acc_val(sequential z, at most K draws) >= acc_val(fixed K) - auto_accuracy_drop }

the smallest stopping threshold (fewest passes) whose validation accuracy is that of all K draws (the
largest candidate if none is). Accuracy, not agreement with fixed K: on close items fixed K's own draws
decide by chance, and the goal is fixed K's accuracy at fewer passes.

One scoring pass serves every candidate: the sequential stages are drawn once without stopping
(``stop_z=inf``: only items whose class difference has zero spread stop) and the rule is replayed on
those draws for each ``z`` (``sequential.replay_stages``), so each row differs from the "fixed" row
(all K draws, the same draws) only by where it stops. The cost is that of fixed K, not 1 + one run per
candidate.
Only ``datamodule.dataloader("validation")`` is read: these are model choices, and model choices never
see the test split.
"""

from __future__ import annotations

import torch

from diffusion_lab.classifiers.predict import predict
from diffusion_lab.classifiers.sequential import replay_stages, stage_plan


def choose_num_draws(clf, datamodule, candidates=(1, 2, 4, 8, 16), tolerance: float = 0.01, seed: int = 0):
    """``(K*, {K: validation NLL})`` (see the module docstring)."""
    candidates = sorted({int(k) for k in candidates})
    if not candidates or candidates[0] < 1:
        raise ValueError(f"classifier.auto_draws={candidates}: need positive draw counts")
    loader = datamodule.dataloader("validation")
    table = {}
    for k in candidates:
        p = predict(clf, loader, seed=seed, num_draws=k, adaptive=False, sequential=False)
        table[k] = float(torch.nn.functional.cross_entropy(p.log_joint, p.labels))
    best = table[candidates[-1]]
    chosen = next(k for k in candidates if table[k] <= best + tolerance)
    return chosen, table


def choose_stop_z(clf, datamodule, num_draws: int, candidates=(1.0, 1.5, 2.0, 2.5, 3.0),
                  max_accuracy_drop: float = 0.0, seed: int = 0):
    """``(z*, {z: {"accuracy", "agreement", "passes"}})`` (see the module docstring); the table also holds
    ``"fixed"``, the row of all K draws; ``agreement`` is the share of items decided as that row decides them."""
    candidates = sorted({float(z) for z in candidates})
    if not candidates or candidates[0] <= 0:
        raise ValueError(f"classifier.auto_stop_z={candidates}: need positive thresholds (standard errors)")
    hp = clf.hparams
    prune_z = float(hp.prune_margin) if hp.adaptive_prune and clf.num_classes > 2 else None
    plan = stage_plan(num_draws, hp.first_stage_draws, True, prune_z is not None, hp.get("stage_draws"))
    recorded = predict(clf, datamodule.dataloader("validation"), seed=seed, num_draws=num_draws, sequential=True,
                       stop_z=float("inf"), keep_draws=True)
    values = recorded.draw_values
    if values is None:  # exact likelihoods (autoregressive): no draws, nothing to stop; every z is fixed K
        guess = recorded.log_joint.argmax(-1)
        fixed = {"accuracy": float((guess == recorded.labels).double().mean()),
                 "passes": recorded.forward_passes_per_example, "agreement": 1.0}
        return candidates[0], {"fixed": fixed, **{z: dict(fixed) for z in candidates}}
    windows = recorded.passes / (~values.isnan()).sum((1, 2)).clamp_min(1)  # passes per (draw, class) entry

    def row(stop_z):
        log_lik, entries = replay_stages(values, plan, clf.log_prior, prune_z, stop_z)
        guess = (log_lik + clf.log_prior.to(log_lik)).argmax(-1)
        return guess, {"accuracy": float((guess == recorded.labels).double().mean()),
                       "passes": float((entries * windows).mean())}

    decided, fixed = row(None)
    table = {"fixed": {**fixed, "agreement": 1.0}}
    for z in candidates:
        guess, table[z] = row(z)
        table[z]["agreement"] = float((guess == decided).double().mean())
    bar = table["fixed"]["accuracy"] - max_accuracy_drop
    chosen = next((z for z in candidates if table[z]["accuracy"] >= bar - 1e-12), candidates[-1])
    return chosen, table


def resolve_stop_z(clf_cfg, clf, datamodule, num_draws: int, seed: int = 0) -> float | None:
    """``classifier.stop_z`` as a float when draws are sequential (``auto``: chosen on validation, stored
    in the classifier's hyperparameters); ``None`` when they are not."""
    if not clf_cfg.get("sequential", False):
        return None
    z = clf_cfg.get("stop_z", 3.0)
    if str(z) != "auto":
        return float(z)
    chosen, table = choose_stop_z(clf, datamodule, num_draws, clf_cfg.get("auto_stop_z", (1.0, 1.5, 2.0, 2.5, 3.0)),
                                  float(clf_cfg.get("auto_accuracy_drop", 0.0)), seed)
    clf.hparams.stop_z = chosen
    clf.auto_stop_z_table = table
    return chosen


def resolve_num_draws(clf_cfg, clf, datamodule, seed: int = 0) -> int:
    """``classifier.num_draws`` as an int: itself, or (``auto``) chosen on validation and stored in the
    classifier's hyperparameters so later scoring (and its checkpoint) uses it."""
    k = clf_cfg.num_draws
    if str(k) != "auto":
        return int(k)
    chosen, table = choose_num_draws(clf, datamodule, clf_cfg.get("auto_draws", (1, 2, 4, 8, 16)),
                                     float(clf_cfg.get("auto_tolerance", 0.01)), seed)
    clf.hparams.num_draws = chosen
    clf.auto_draws_table = table
    return chosen

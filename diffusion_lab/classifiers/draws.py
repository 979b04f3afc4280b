"""Draw budgets chosen on VALIDATION: ``classifier.num_draws: auto`` and ``classifier.stop_z: auto``.

    K* = min { K in auto_draws : NLL_val(K) <= NLL_val(max auto_draws) + auto_tolerance }

NLL is the mean negative log posterior of the true class (nats per item) of the Bayes readout with
fixed K (no pruning, no stopping), the same seed for every K.

    z* = min { z in auto_stop_z : acc_val(sequential z, at most K draws) >= acc_val(fixed K) - auto_accuracy_drop }

the smallest stopping threshold (fewest passes) whose validation accuracy is that of all K draws (the
largest candidate if none is). Accuracy, not agreement with fixed K: on close items fixed K's own draws
decide by chance, and the goal is fixed K's accuracy at fewer passes.

``classifier.stage_draws: auto`` chooses the draws per stage (after the first stage) with ``z``:

    (s*, z*) = argmin { passes_val(s, z) : s in auto_stage_draws, z in Z,
                        acc_val(s, z) >= max_s acc_val(fixed K, s) - auto_accuracy_drop }

ties to the size listed first, then the smaller ``z``; if no pair reaches the bar, the first size with
its own ``z*``. ``Z`` is ``auto_stop_z`` when ``stop_z`` is auto, else ``{stop_z}``. Each size is its own
scoring pass: each stage is stratified on its own, so the size changes the draws, and a size whose
all-K row is a weaker estimator (single-draw stages are not stratified at all) must not get a lower
bar than the others (ONE bar for all sizes, measured in experiments/scoring_speed).

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
                  max_accuracy_drop: float = 0.0, seed: int = 0, stage_draws: int | None = None):
    """``(z*, {z: {"accuracy", "agreement", "passes"}})`` (see the module docstring); the table also holds
    ``"fixed"``, the row of all K draws; ``agreement`` is the share of items decided as that row decides them.
    ``stage_draws``: draws per stage after the first (default: the classifier's own)."""
    candidates = sorted({float(z) for z in candidates})
    if not candidates or candidates[0] <= 0:
        raise ValueError(f"classifier.auto_stop_z={candidates}: need positive thresholds (standard errors)")
    hp = clf.hparams
    stage_draws = hp.get("stage_draws") if stage_draws is None else stage_draws
    prune_z = float(hp.prune_margin) if hp.adaptive_prune and clf.num_classes > 2 else None
    plan = stage_plan(num_draws, hp.first_stage_draws, True, prune_z is not None, stage_draws)
    recorded = predict(clf, datamodule.dataloader("validation"), seed=seed, num_draws=num_draws, sequential=True,
                       stop_z=float("inf"), keep_draws=True, stage_draws=stage_draws)
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


def choose_stages(clf, datamodule, num_draws: int, stage_sizes=(2, 1), candidates=(1.0, 1.5, 2.0, 2.5, 3.0),
                  max_accuracy_drop: float = 0.0, seed: int = 0):
    """``(s*, z*, {s: {"chosen": z*(s), "table": choose_stop_z's table}}, bar)`` (see the module docstring)."""
    sizes = list(dict.fromkeys(clf.hparams.first_stage_draws if s is None else s for s in stage_sizes))  # null: as the first
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"classifier.auto_stage_draws={list(stage_sizes)}: need positive integers (draws per stage)")
    per_size = {}
    for size in sizes:
        chosen, table = choose_stop_z(clf, datamodule, num_draws, candidates, max_accuracy_drop, seed, stage_draws=size)
        per_size[size] = {"chosen": chosen, "table": table}
    bar = max(v["table"]["fixed"]["accuracy"] for v in per_size.values()) - max_accuracy_drop
    meets = [(v["table"][z]["passes"], i, z, size) for i, (size, v) in enumerate(per_size.items())
             for z in v["table"] if z != "fixed" and v["table"][z]["accuracy"] >= bar - 1e-12]
    if meets:  # fewest passes; ties: the size listed first, then the smaller z
        _, _, z, size = min(meets)
    else:
        size = sizes[0]
        z = per_size[size]["chosen"]
    return size, z, per_size, bar


def resolve_stop_z(clf_cfg, clf, datamodule, num_draws: int, seed: int = 0) -> float | None:
    """``classifier.stop_z`` as a float when draws are sequential, ``None`` when they are not. ``stop_z``
    or ``stage_draws`` set to ``auto`` are chosen on validation (``choose_stages``) and stored in the
    classifier's hyperparameters; the tables are kept on the classifier for results.json."""
    if not clf_cfg.get("sequential", False):
        return None
    z, size = clf_cfg.get("stop_z", 3.0), clf_cfg.get("stage_draws")
    if str(z) != "auto" and str(size) != "auto":
        return float(z)
    zs = clf_cfg.get("auto_stop_z", (1.0, 1.5, 2.0, 2.5, 3.0)) if str(z) == "auto" else [float(z)]
    sizes = clf_cfg.get("auto_stage_draws", (2, 1)) if str(size) == "auto" else [size]
    chosen_size, chosen, per_size, bar = choose_stages(clf, datamodule, num_draws, list(sizes), zs,
                                                       float(clf_cfg.get("auto_accuracy_drop", 0.0)), seed)
    clf.hparams.stop_z, clf.hparams.stage_draws = chosen, chosen_size
    clf.auto_stop_z_table = per_size[chosen_size]["table"]
    if str(size) == "auto":
        clf.auto_stage_tables = {"accuracy_bar": bar, **{str(s): {"chosen": v["chosen"], "table": {
            str(k): row for k, row in v["table"].items()}} for s, v in per_size.items()}}
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

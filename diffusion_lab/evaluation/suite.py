"""The five sections of ``evaluation.json``, each keyed by model name; every entry carries n and the seed.

- ``calibration``: test metrics before / after temperature scaling (T fitted on validation only),
  validation NLL before / after, how many predictions scaling changed (always 0), McNemar vs generative.
- ``robustness``: accuracy (Wilson 95%) and ECE (before / after scaling) against perturbation strength.
- ``shift``: the same on another dataset with the same labels (temperatures from the home validation).
- ``ood``: AUROC (bootstrap 95% interval) and FPR@95%TPR of each model's scores, all items and length-matched.
- ``explanations``: lives in ``explain.py`` (deletion curves + heatmaps).
"""

from __future__ import annotations

import numpy as np
import torch

from diffusion_lab.evaluation.models import EVAL_MODELS
from diffusion_lab.evaluation.ood import energy_score, length_matched_indices, max_softmax_score, ood_metrics
from diffusion_lab.evaluation.perturbations import perturb
from diffusion_lab.logging_utils import get_logger
from diffusion_lab.metrics.calibration import T_MAX, T_MIN, apply_temperature, fit_temperature
from diffusion_lab.metrics.classification import classification_metrics, mcnemar_pvalue, nll

REFERENCE = "generative"
#: fewest items per side for an OOD statistic (``eval.ood_min_n``)
MIN_OOD_N = 20
log = get_logger(__name__)


def _metrics(log_joint, labels, temperature: float | None = None) -> dict:
    probs = torch.softmax(log_joint, -1) if temperature is None else apply_temperature(log_joint, temperature)
    return classification_metrics(probs, labels)


def _mcnemar(scores: dict, labels: torch.Tensor) -> dict:
    if REFERENCE not in scores:
        return {}
    ref = scores[REFERENCE].log_joint.argmax(1) == labels
    return {n: mcnemar_pvalue(ref, s.log_joint.argmax(1) == labels) for n, s in scores.items() if n != REFERENCE}


def calibration_section(val: dict, test: dict, val_labels, test_labels, seed: int) -> tuple[dict, dict]:
    """``(section, temperatures)``: one fitted T per model (validation only), applied to test."""
    yv, yt = torch.as_tensor(val_labels).long(), torch.as_tensor(test_labels).long()
    section, temps = {}, {}
    pvals = _mcnemar(test, yt)
    for name, s in test.items():
        t = fit_temperature(val[name].log_joint, yv)
        temps[name] = t
        zv, zt = val[name].log_joint, s.log_joint
        changed = int((zt.argmax(1) != apply_temperature(zt, t).argmax(1)).sum()
                      + (zv.argmax(1) != apply_temperature(zv, t).argmax(1)).sum())
        section[name] = {
            "seed": seed, "n_val": len(yv), "n_test": len(yt), "temperature": t,
            "temperature_at_bound": min(abs(t - T_MIN), abs(t - T_MAX)) < 1e-3 * T_MAX,
            "val_nll_before": nll(torch.softmax(zv, -1), yv), "val_nll_after": nll(apply_temperature(zv, t), yv),
            "predictions_changed_by_scaling": changed,
            "before": _metrics(zt, yt), "after": _metrics(zt, yt, t),
            "mcnemar_p_vs_generative": pvals.get(name),
        }
    return section, temps


def robustness_section(models, texts, labels, clean: dict, temps: dict, perturbations: dict, strengths,
                       seed: int, log=None) -> dict:
    """``{model: {perturbation: {strengths, accuracy, accuracy_ci95, ece, ece_after_ts, nll, n, seed}}}``.

    ``perturbations`` maps a name to its keyword arguments (vocabulary, weights); strength 0 is the
    clean text (``clean`` scores). Each (perturbation, strength) uses the same ``seed``."""
    y = torch.as_tensor(labels).long()
    strengths = sorted({0.0, *[float(s) for s in strengths]})
    out: dict = {n: {} for n in models.names}
    for pert, kw in perturbations.items():
        rows = {n: {"strengths": strengths, "accuracy": [], "accuracy_ci95": [], "ece": [], "ece_after_ts": [],
                    "nll": [], "n": len(y), "seed": seed} for n in models.names}
        for s in strengths:
            scores = clean if s == 0.0 else models.score_all(perturb(texts, pert, s, seed, **kw))
            for n in models.names:
                before, after = _metrics(scores[n].log_joint, y), _metrics(scores[n].log_joint, y, temps[n])
                for key, value in (("accuracy", before["accuracy"]), ("accuracy_ci95", before["accuracy_ci95"]),
                                   ("ece", before["ece"]), ("ece_after_ts", after["ece"]), ("nll", before["nll"])):
                    rows[n][key].append(value)
            if log is not None:
                log.info("robustness %s %.2f: %s", pert, s,
                         ", ".join(f"{n} {rows[n]['accuracy'][-1]:.3f}" for n in models.names))
        for n in models.names:
            out[n][pert] = rows[n]
    return out


def shift_section(scores: dict, labels, temps: dict, home: dict, dataset: str, seed: int) -> dict:
    """Accuracy and calibration on the shifted test items; ``home`` is the calibration section."""
    y = torch.as_tensor(labels).long()
    pvals = _mcnemar(scores, y)
    out = {}
    for n, s in scores.items():
        before, after = _metrics(s.log_joint, y), _metrics(s.log_joint, y, temps[n])
        out[n] = {"dataset": dataset, "seed": seed, "n": len(y), "before": before, "after": after,
                  "temperature": temps[n], "in_domain_accuracy": home[n]["before"]["accuracy"],
                  "accuracy_drop": home[n]["before"]["accuracy"] - before["accuracy"],
                  "mcnemar_p_vs_generative": pvals.get(n)}
    return out


def likelihood_ood_scores(s, uncond=None) -> dict[str, torch.Tensor]:
    """A generative model's ``log p(x) = logsumexp_y [log p(x | y) + log p(y)]``, total and per token
    (and the unconditional ``<nolabel>`` bound ``uncond`` when given)."""
    log_px = energy_score(s.log_joint)
    lengths = torch.as_tensor(s.lengths, dtype=torch.float64)
    out = {"log_px": log_px, "log_px_per_token": log_px / lengths}
    if uncond is not None:
        out.update(log_px_unconditional=uncond, log_px_unconditional_per_token=uncond / lengths)
    return out


def energy_ood_scores(s, uncond=None) -> dict[str, torch.Tensor]:
    """A discriminative model's energy score ``logsumexp_y z_y``."""
    return {"energy": energy_score(s.log_joint)}


#: ``EvalModel.ood`` -> the scores that family adds to max-softmax
OOD_FAMILIES = {"likelihood": likelihood_ood_scores, "energy": energy_ood_scores}


def ood_scores(name: str, s, uncond=None) -> dict[str, torch.Tensor]:
    """Per-item OOD scores (higher = more in-distribution) of one model: max-softmax, plus its family's
    (``EVAL_MODELS[name].ood``); ``uncond`` is used by the likelihood family only."""
    family = EVAL_MODELS[name].ood
    return {"max_softmax": max_softmax_score(s.log_joint), **(OOD_FAMILIES[family](s, uncond) if family else {})}


def ood_with_interval(s_in, s_out, seed: int, n_boot: int = 200) -> dict:
    """``ood_metrics`` plus a percentile-bootstrap 95% interval of the AUROC (in and out resampled
    separately, ``n_boot`` times, seeded)."""
    res = ood_metrics(s_in, s_out)
    rng = np.random.default_rng(seed)
    s_in, s_out = torch.as_tensor(s_in), torch.as_tensor(s_out)
    boots = [ood_metrics(s_in[rng.integers(0, len(s_in), len(s_in))],
                         s_out[rng.integers(0, len(s_out), len(s_out))])["auroc"] for _ in range(n_boot)]
    return {**res, "auroc_ci95": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))],
            "bootstrap": n_boot, "seed": seed}


def ood_section(scores_in: dict, scores_out: dict, uncond_in, uncond_out, lengths_in, lengths_out,
                dataset: str, seed: int, bins: int = 10, min_n: int = MIN_OOD_N) -> dict:
    """``{model: {score: {all: metrics, length_matched: metrics}}}``; lengths are in model tokens.

    A statistic on fewer than ``min_n`` items per side is not computed: it is reported as
    ``{"skipped": reason, "n_in", "n_out"}`` (short OOD texts against long windows leave few
    length-matched pairs, and an AUROC of 1.0 on n = 1 says nothing).
    """
    keep_in, keep_out = length_matched_indices(lengths_in, lengths_out, seed, bins=bins)
    matched = {"n_in": len(keep_in), "n_out": len(keep_out)}
    too_few = min(len(keep_in), len(keep_out)) < min_n
    if too_few and keep_in and keep_out:
        log.warning("OOD %s: only %d length-matched items per side (< eval.ood_min_n=%d): the length-matched "
                    "statistics are reported as unavailable", dataset, min(len(keep_in), len(keep_out)), min_n)
    out = {}
    for n in scores_in:
        bayes = EVAL_MODELS[n].bayes_generative  # the <nolabel> bound is the generative model's
        s_in = ood_scores(n, scores_in[n], uncond_in if bayes else None)
        s_out = ood_scores(n, scores_out[n], uncond_out if bayes else None)
        entry = {"dataset": dataset, "seed": seed, "mean_tokens_in": float(torch.tensor(lengths_in).double().mean()),
                 "mean_tokens_out": float(torch.tensor(lengths_out).double().mean())}
        for kind in s_in:
            res = {"all": ood_with_interval(s_in[kind], s_out[kind], seed)}
            if keep_in and keep_out and not too_few:
                res["length_matched"] = ood_with_interval(s_in[kind][keep_in], s_out[kind][keep_out], seed)
            elif too_few and keep_in and keep_out:
                res["length_matched"] = {
                    "skipped": f"only {min(matched.values())} length-matched items per side, fewer than "
                               f"eval.ood_min_n={min_n}: the in- and out-of-distribution lengths barely overlap",
                    **matched}
            else:
                res["length_matched"] = {"skipped": "no length bin holds both in- and out-of-distribution items",
                                         **matched}
            entry[kind] = res
        out[n] = entry
    return out


def headline(section: dict, path: tuple[str, ...]) -> dict[str, float]:
    """One number per model from a section (for summaries): ``section[model][path...]``."""
    out = {}
    for n, entry in section.items():
        value = entry
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, (int, float)):
            out[n] = float(value)
    return out

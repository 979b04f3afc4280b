"""Markdown tables from an evaluation.json (task=evaluate): python experiments/trust/tables.py [path]."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(headers, rows) -> str:
    return "\n".join([_row(headers), _row(["---"] * len(headers)), *(_row(r) for r in rows)])


def _ci(pair) -> str:
    return f"[{pair[0]:.3f}, {pair[1]:.3f}]"


def _auroc_ci(res: dict) -> str:
    return _ci(res["auroc_ci95"]) if "auroc_ci95" in res else "-"


def _p(value) -> str:
    return "-" if value is None else f"{value:.3g}"


def tables(ev: dict) -> str:
    out = []
    cal = ev["calibration"]
    out.append("### Calibration (test; temperature fitted on validation)\n")
    out.append(_table(
        ["model", "accuracy", "95% CI", "NLL", "Brier", "ECE", "T", "NLL after", "ECE after", "val NLL before -> after",
         "McNemar p vs generative", "n test / val"],
        [[n, f"{e['before']['accuracy']:.3f}", _ci(e["before"]["accuracy_ci95"]), f"{e['before']['nll']:.3f}",
          f"{e['before']['brier']:.3f}", f"{e['before']['ece']:.3f}", f"{e['temperature']:.3g}",
          f"{e['after']['nll']:.3f}", f"{e['after']['ece']:.3f}",
          f"{e['val_nll_before']:.3f} -> {e['val_nll_after']:.3f}", _p(e["mcnemar_p_vs_generative"]),
          f"{e['n_test']} / {e['n_val']}"] for n, e in cal.items()]))
    rob = ev["robustness"]
    for pert in sorted({p for e in rob.values() for p in e}):
        rows = [[n, *[f"{a:.3f} / {c:.3f}" for a, c in zip(e[pert]["accuracy"], e[pert]["ece"], strict=True)]]
                for n, e in rob.items() if pert in e]
        strengths = next(e[pert]["strengths"] for e in rob.values() if pert in e)
        n = next(e[pert]["n"] for e in rob.values() if pert in e)
        out.append(f"\n### Robustness: {pert} (accuracy / ECE, n={n})\n")
        out.append(_table(["model", *[f"{s:g}" for s in strengths]], rows))
    if ev.get("shift"):
        out.append("\n### Domain shift\n")
        out.append(_table(
            ["model", "dataset", "in-domain acc", "shifted acc", "95% CI", "ECE", "ECE after TS", "NLL",
             "McNemar p vs generative", "n"],
            [[n, e["dataset"], f"{e['in_domain_accuracy']:.3f}", f"{e['before']['accuracy']:.3f}",
              _ci(e["before"]["accuracy_ci95"]), f"{e['before']['ece']:.3f}", f"{e['after']['ece']:.3f}",
              f"{e['before']['nll']:.3f}", _p(e["mcnemar_p_vs_generative"]), str(e["n"])]
             for n, e in ev["shift"].items()]))
    if ev.get("ood"):
        out.append("\n### OOD detection (in = own test reviews, out = OOD set)\n")
        rows = []
        for n, e in ev["ood"].items():
            for kind, res in e.items():
                if isinstance(res, dict) and "all" in res:
                    m = res["length_matched"]
                    rows.append([n, kind, f"{res['all']['auroc']:.3f}", _auroc_ci(res["all"]),
                                 f"{res['all']['fpr_at_95_tpr']:.3f}", f"{m.get('auroc', float('nan')):.3f}", _auroc_ci(m),
                                 f"{m.get('fpr_at_95_tpr', float('nan')):.3f}",
                                 f"{res['all']['n_in']}/{res['all']['n_out']}", f"{m.get('n_in')}/{m.get('n_out')}"])
        out.append(_table(["model", "score", "AUROC", "95% CI", "FPR@95", "AUROC matched", "95% CI", "FPR@95 matched",
                           "n in/out",
                           "n matched"], rows))
    if ev.get("explanations"):
        out.append("\n### Deletion test (p of the original prediction after deleting k tokens)\n")
        rows = []
        for n, e in ev["explanations"].items():
            d = e["deletion"]
            for curve in ("attributed", "random"):
                ci = _ci(d[curve + "_ci95"][-1]) if curve + "_ci95" in d else "-"
                rows.append([n, curve, f"{d['original_prob']:.3f}", *[f"{v:.3f}" for v in d[curve]], ci,
                             f"{d[curve + '_accuracy'][-1]:.3f}", str(d["n"])])
        ks = next(iter(ev["explanations"].values()))["deletion"]["ks"]
        out.append(_table(["model", "deleted", "k=0", *[f"k={k}" for k in ks], f"95% CI at k={ks[-1]}",
                           f"accuracy at k={ks[-1]}", "n"], rows))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "evaluation.json")
    print(tables(json.loads(path.read_text())))

"""The evaluation suite's page, ``report.html`` of ``task=evaluate``: one self-contained page (tables,
figures as data URIs, heatmaps) from ``evaluation.json``.

Every cell, heading and example text is escaped; the only markup is the page's own.
"""

from __future__ import annotations

from pathlib import Path

from diffusion_lab.evaluation.explain import heatmaps_html
from diffusion_lab.evaluation.html import data_uri, escape, self_contained_report


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.3e}"
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, float) for v in value):
        return f"[{value[0]:.3f}, {value[1]:.3f}]"
    return str(value)


def table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f'<div style="overflow-x: auto"><table><tr>{head}</tr>{body}</table></div>'


def _figure(path: Path | None, caption: str) -> str:
    if path is None or not Path(path).is_file():
        return ""
    return f'<figure><img src="{data_uri(path)}" alt="{escape(caption)}"><figcaption>{escape(caption)}</figcaption></figure>'


def _calibration(sec: dict) -> str:
    rows = [[n, e["before"]["accuracy"], e["before"]["accuracy_ci95"], e["before"]["nll"], e["before"]["brier"],
             e["before"]["ece"], e["temperature"], e["after"]["nll"], e["after"]["brier"], e["after"]["ece"],
             f"{e['val_nll_before']:.4f} -> {e['val_nll_after']:.4f}", e["mcnemar_p_vs_generative"],
             e["n_test"], e["n_val"]] for n, e in sec.items()]
    return table(["model", "accuracy", "95% CI", "NLL", "Brier", "ECE", "T (val)", "NLL after", "Brier after",
                  "ECE after", "val NLL before -> after", "McNemar p vs generative", "n test", "n val"], rows)


def _robustness(sec: dict) -> str:
    parts = []
    perts = sorted({p for e in sec.values() for p in e})
    for pert in perts:
        entries = {n: e[pert] for n, e in sec.items() if pert in e}
        strengths = next(iter(entries.values()))["strengths"]
        rows = [[n, *[f"{a:.3f} / {c:.3f}" for a, c in zip(e["accuracy"], e["ece"], strict=True)], e["n"]]
                for n, e in entries.items()]
        parts.append(f"<h3>{escape(pert)}</h3>" + table(
            ["model", *[f"s={s:g}: acc / ECE" for s in strengths], "n"], rows))
    return "".join(parts)


def _shift(sec: dict) -> str:
    rows = [[n, e["dataset"], e["in_domain_accuracy"], e["before"]["accuracy"], e["before"]["accuracy_ci95"],
             e["accuracy_drop"], e["before"]["nll"], e["before"]["ece"], e["after"]["ece"],
             e["mcnemar_p_vs_generative"], e["n"]] for n, e in sec.items()]
    return table(["model", "dataset", "in-domain acc", "shifted acc", "95% CI", "drop", "NLL", "ECE",
                  "ECE after TS", "McNemar p vs generative", "n"], rows)


def _ood(sec: dict) -> str:
    rows = []
    for n, e in sec.items():
        for kind, res in e.items():
            if not isinstance(res, dict) or "all" not in res:
                continue
            m = res["length_matched"]
            rows.append([n, kind, res["all"]["auroc"], res["all"].get("auroc_ci95"), res["all"]["fpr_at_95_tpr"],
                         m.get("auroc"), m.get("auroc_ci95"), m.get("fpr_at_95_tpr"),
                         f"{res['all']['n_in']}/{res['all']['n_out']}",
                         f"{m.get('n_in')}/{m.get('n_out')}"])
    return table(["model", "score", "AUROC", "95% CI", "FPR@95%TPR", "AUROC (length-matched)", "95% CI",
                  "FPR@95 (matched)",
                  "n in/out", "n matched in/out"], rows)


def _deletion(sec: dict) -> str:
    rows = []
    for n, e in sec.items():
        d = e["deletion"]
        rows.append([n, e["method"], d["original_prob"], ", ".join(f"{v:.3f}" for v in d.get("attributed", [])),
                     ", ".join(f"{v:.3f}" for v in d.get("random", [])), e["mean_gap_random_minus_attributed"],
                     d["n"], e["seed"]])
    ks = next(iter(sec.values()))["deletion"]["ks"] if sec else []
    return (f"<p>Probability of the originally predicted class after deleting k = {escape(ks)} tokens.</p>"
            + table(["model", "attribution", "p before", "top-k attributed", "k random",
                     "mean gap (random - attributed)", "n", "seed"], rows))


def render_report(evaluation: dict, figures: dict, path: Path) -> Path:
    """Write ``report.html`` for an ``evaluation.json`` dict and ``{name: png path}`` figures."""
    meta = evaluation.get("meta", {})
    skipped = evaluation.get("skipped", {})
    intro = table(["setting", "value"], [[k, v] for k, v in meta.items() if not isinstance(v, (dict, list))])
    if skipped:
        intro += "<p>Skipped: " + "; ".join(f"{escape(k)}: {escape(v)}" for k, v in skipped.items()) + "</p>"
    sections = [("Run", intro)]
    builders = [("calibration", "Calibration (test; temperature fitted on validation)", _calibration,
                 ["calibration", "calibration_after_ts"]),
                ("robustness", "Robustness to input noise", _robustness, ["robustness"]),
                ("shift", "Domain shift", _shift, []),
                ("ood", "Out-of-distribution detection", _ood, ["ood"]),
                ("explanations", "Explanations: deletion test", _deletion, ["deletion"])]
    for key, heading, build, figs in builders:
        sec = evaluation.get(key) or {}
        body = build(sec) if sec else f"<p>{escape(skipped.get(key, 'not run'))}</p>"
        sections.append((heading, body + "".join(_figure(figures.get(f), f) for f in figs)))
    if evaluation.get("explanations"):
        sections.append(("Explanations: token heatmaps", heatmaps_html(evaluation["explanations"])))
    path = Path(path)
    path.write_text(self_contained_report(f"Evaluation of {meta.get('run_dir', 'a classifier run')}", sections),
                    encoding="utf-8")
    return path

"""Scoring speed: examples/s and forward passes per item of every readout, on the SAME model and items.

    python experiments/scoring_speed/run.py <classifier run dir> --n 2000 --out experiments/scoring_speed

Rows: discriminative (if the run trained it), Bayes with fixed K (``--ks``), Bayes sequential
(``--stop-z``, at most ``--max-draws``), infill and hybrid (conditional runs), and the original recipe
(``estimator=seed_mean_loss``, 5 independent 15% masks per class); ``--last-ks`` fixed-K rows after all of
those (the costliest last: a stopped run keeps the rest); ``--bf16-pair`` the discriminative model and
Bayes K=1 again under bfloat16 autocast (``classifier.score_precision=bf16``), each row's pass rate taken
against the discriminative row of its own precision. Each row: accuracy [95% CI], NLL,
examples/s, forward passes per item. Items: a stratified random subset of the run's test split
(``eval.max_test`` semantics, the run's seed); the windowing policy is the run's. Writes
``results.json``, ``table.md`` and ``accuracy_vs_passes.png`` into ``--out``. Run it alone on an idle
machine: examples/s is wall-clock.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from hydra.utils import instantiate

from diffusion_lab.classifiers.build import load_classifier_run
from diffusion_lab.classifiers.predict import predict
from diffusion_lab.metrics.classification import classification_metrics, mcnemar_pvalue


@torch.no_grad()
def profile_pass(clf, disc, batch, reps: int = 5) -> dict:
    """Milliseconds per row of one window batch: the discriminative pass, the generative encoder alone,
    and the generative pass with the sparse head at a 50% mask (the mean masking rate of t ~ U(0, 1))."""
    backbone = clf.lms[0].backbone
    ids, attn = batch["input_ids"].to(clf.device), batch["attention_mask"].to(clf.device)
    positions = (torch.rand(ids.shape, generator=torch.Generator().manual_seed(0)) < 0.5).to(ids.device) & attn.bool()
    cond = torch.zeros(len(ids), dtype=torch.long, device=ids.device)

    def ms(fn):
        fn()
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        return 1000 * (time.perf_counter() - start) / reps / len(ids)

    out = {"rows": len(ids), "length": ids.shape[1],
           "generative_encoder_ms": ms(lambda: backbone.encode(ids, attn)),
           "generative_sparse_pass_ms": ms(lambda: backbone(ids, attn, condition=cond, positions=positions)),
           "generative_dense_pass_ms": ms(lambda: backbone(ids, attn, condition=cond))}
    if disc is not None:
        out["discriminative_pass_ms"] = ms(lambda: disc(ids, attn))
    return out


def load_items(run_dir: Path, cfg, n: int, long_text: str | None = None):
    """The ``n`` stratified test items; ``long_text`` overrides the run's policy (``truncate``: the first
    ``max_length`` tokens, one window per item, about a third of the passes of whole reviews)."""
    cfg.datamodule.cache_dir = None
    cfg.datamodule.max_test = n
    if long_text:
        cfg.datamodule.long_text = long_text
    cfg.datamodule.tokenizer = {"_target_": "diffusion_lab.data.tokenizer.PretrainedTokenizer",
                                "name_or_path": str(run_dir / "tokenizer")}
    dm = instantiate(cfg.datamodule)
    dm.setup()
    return list(dm.dataloader("test"))  # materialised once: every row scores the same batches


def rows_to_run(args, clf, baselines) -> list[tuple[str, object, dict, dict, str]]:
    """``(name, model, predict kwargs, classifier hparams set for the row, precision)`` in running order."""
    rows = []
    fixed = {"adaptive": False, "sequential": False}
    if "discriminative" in baselines:
        rows.append(("discriminative", baselines["discriminative"], {}, {}, "32"))
    for k in args.ks:
        rows.append((f"bayes K={k}", clf, {"num_draws": k, **fixed}, {}, "32"))
    stage = f" stages of {args.stage_draws}" if args.stage_draws else ""
    if args.adaptive_rows:
        rows.append((f"bayes sequential z={args.stop_z} K<={args.max_draws}{stage}", clf,
                     {"num_draws": args.max_draws, "sequential": True, "stop_z": args.stop_z},
                     {"stage_draws": args.stage_draws} if args.stage_draws else {}, "32"))
    if args.adaptive_rows and "infill" in clf.readouts:
        rows.append(("infill", clf, {"readout": "infill"}, {}, "32"))
        rows.append((f"hybrid p<{args.hybrid_threshold} -> K={args.hybrid_draws}", clf,
                     {"readout": "hybrid", "hybrid_threshold": args.hybrid_threshold,
                      "num_draws": args.hybrid_draws, "adaptive": False}, {}, "32"))
    if args.original and not clf.autoregressive:
        rows.append(("seed_mean_loss (15%, 5 draws/class)", clf, {"estimator": "seed_mean_loss", "seed_draws": 5}, {}, "32"))
    if args.bf16_pair:
        if "discriminative" in baselines:
            rows.append(("discriminative bf16", baselines["discriminative"], {}, {}, "bf16"))
        rows.append(("bayes K=1 bf16", clf, {"num_draws": 1, **fixed}, {}, "bf16"))
    for k in args.last_ks:
        rows.append((f"bayes K={k}", clf, {"num_draws": k, **fixed}, {}, "32"))
    if args.disc_again and "discriminative" in baselines:
        # the first timed row has run slow on this host (28.6 against 47.6 examples/s for the same pass):
        # timing it again last shows whether the yardstick itself moved
        rows.append(("discriminative (again, last)", baselines["discriminative"], {}, {}, "32"))
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ax.errorbar(r["passes_per_item"], r["accuracy"], yerr=[[r["accuracy"] - r["ci95"][0]],
                    [r["ci95"][1] - r["accuracy"]]], fmt="o", capsize=3)
        ax.annotate(r["name"], (r["passes_per_item"], r["accuracy"]), fontsize=7, xytext=(4, 2),
                    textcoords="offset points")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("forward passes per item")
    ax.set_ylabel("accuracy")
    ax.set_title(f"accuracy vs passes (n = {rows[0]['n']})")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def reference_k8(path: Path | None, results: list[dict]) -> dict | None:
    """The ``bayes K=8`` row of an earlier ``results.json`` for the McNemar column of a run without one.

    Only valid on the same items in the same order: the two runs' discriminative rows must decide every item
    alike (a deterministic model, so any difference means other items), otherwise this raises."""
    if path is None:
        return None
    earlier = {r["name"]: r for r in json.loads(path.read_text())["rows"]}
    if "bayes K=8" not in earlier or "discriminative" not in earlier:
        raise SystemExit(f"--k8-from {path}: needs a 'bayes K=8' and a 'discriminative' row")
    ours = next((r for r in results if r["name"] == "discriminative"), None)
    if ours is not None and ours["correct"] != earlier["discriminative"]["correct"]:
        raise SystemExit(f"--k8-from {path}: its discriminative row decides the items differently, "
                         "so it scored other items; rerun with the same run_dir, --n, --seed and --long-text")
    return earlier["bayes K=8"]


def write_report(args, cfg, profile: dict, results: list[dict]) -> list[str]:
    """``results.json``, ``table.md`` and the plot for the rows so far; returns the table's lines."""
    # the goal's yardstick: passes per second of each row over the discriminative model's, same run
    refs = {r["precision"]: r for r in results if r["name"] in ("discriminative", "discriminative bf16")}
    k8 = next((r for r in results if r["name"] == "bayes K=8"), None) or reference_k8(args.k8_from, results)
    for r in results:
        ref = refs.get(r["precision"])
        r["pass_rate_vs_discriminative"] = (r["examples_per_s"] * r["passes_per_item"]
                                            / (ref["examples_per_s"] * ref["passes_per_item"])) if ref else None
        r["mcnemar_p_vs_bayes_k8"] = mcnemar_pvalue(r["correct"], k8["correct"]) if k8 and r is not k8 else None
    args.out.mkdir(parents=True, exist_ok=True)

    def fmt(x, spec):
        return "—" if x is None else format(x, spec)

    lines = ["| readout | forward passes / item | examples/s | passes/s vs discriminative | accuracy [95% CI] | NLL "
             "| McNemar p vs K=8 |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['passes_per_item']:.2f} | {r['examples_per_s']:.2f} "
              f"| {fmt(r['pass_rate_vs_discriminative'], '.2f')} | {r['accuracy']:.3f} "
              f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] | {r['nll']:.3f} | {fmt(r['mcnemar_p_vs_bayes_k8'], '.2g')} |"
              for r in results]
    meta = {"run_dir": str(args.run_dir), "device": args.device, "n": results[0]["n"], "seed": args.seed,
            "long_text": cfg.datamodule.get("long_text", "truncate"), "threads": torch.get_num_threads(),
            "profile_ms_per_row": profile}
    (args.out / "table.md").write_text(f"{json.dumps(meta)}\n\n" + "\n".join(lines) + "\n")
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "rows": results}, indent=2))
    plot(results, args.out / "accuracy_vs_passes.png")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--ks", type=int, nargs="*", default=[1, 2, 4, 8, 16])
    parser.add_argument("--max-draws", type=int, default=16)
    parser.add_argument("--stop-z", type=float, default=3.0)
    parser.add_argument("--hybrid-threshold", type=float, default=0.9)
    parser.add_argument("--hybrid-draws", type=int, default=8)
    parser.add_argument("--original", action=argparse.BooleanOptionalAction, default=True,
                        help="the seed_mean_loss row (the original 15%%-mask recipe)")
    parser.add_argument("--last-ks", type=int, nargs="*", default=[], help="fixed-K rows run after all others")
    parser.add_argument("--stage-draws", type=int,
                        help="the sequential row's draws per stage after the first (default: the run's)")
    parser.add_argument("--bf16-pair", action="store_true",
                        help="discriminative and Bayes K=1 again under bfloat16 autocast")
    parser.add_argument("--adaptive-rows", action=argparse.BooleanOptionalAction, default=True,
                        help="the sequential, infill and hybrid rows (--no-adaptive-rows: fixed K and baselines only)")
    parser.add_argument("--k8-from", type=Path,
                        help="results.json of an earlier run on the same items whose K=8 row the McNemar column uses")
    parser.add_argument("--disc-again", action="store_true",
                        help="time the discriminative row a second time, after all others")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--long-text", choices=["truncate", "windows"],
                        help="override the run's data.long_text for the scored items (default: the run's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("experiments/scoring_speed"))
    args = parser.parse_args()
    cfg, _, clf, baselines = load_classifier_run(args.run_dir)
    clf.to(args.device)
    for model in baselines.values():
        if isinstance(model, torch.nn.Module):
            model.to(args.device)
    batches = load_items(args.run_dir, cfg, args.n, args.long_text)
    results, lines = [], []
    profile = profile_pass(clf, baselines.get("discriminative"), batches[0])
    print(json.dumps({"profile": profile, "load": os.getloadavg()}), flush=True)
    for name, model, kwargs, setting, precision in rows_to_run(args, clf, baselines):
        generative = model is clf
        if generative:
            setting = {**setting, "score_precision": precision}
        saved = {k: clf.hparams.get(k) for k in setting}  # restored after the row
        clf.hparams.update(setting)
        load_before = os.getloadavg()[0]
        # the discriminative model has no score_precision of its own: the same autocast around it
        cast = torch.autocast(torch.device(args.device).type, dtype=torch.bfloat16,
                              enabled=precision == "bf16" and not generative)
        with cast:
            predict(model, batches[:1], seed=args.seed, **kwargs)  # warm-up (kernels, allocator)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            p = predict(model, batches, seed=args.seed, **kwargs)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            wall = time.perf_counter() - start
        clf.hparams.update(saved)
        m = classification_metrics(p.probs, p.labels)
        results.append({"name": name, "n": m["n"], "accuracy": m["accuracy"], "ci95": m["accuracy_ci95"],
                        "nll": m["nll"], "examples_per_s": len(p.labels) / wall,
                        "passes_per_item": p.forward_passes_per_example, "wall_s": wall, "seed": args.seed,
                        "precision": precision, "load_before": load_before,
                        "load_after": os.getloadavg()[0],
                        "correct": (p.probs.argmax(-1) == p.labels).tolist()})
        print(json.dumps({k: v for k, v in results[-1].items() if k != "correct"}), flush=True)
        lines = write_report(args, cfg, profile, results)  # after every row: a stopped run keeps its finished rows
    print("\n".join(lines))


if __name__ == "__main__":
    main()

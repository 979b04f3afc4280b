"""``task=synthesize``: rounds of generate -> judge -> filter -> train -> measure on validation; test once.

1. ``real_only``: a classifier on the real training data (``task.real_train_size`` stratified rows);
   its optimizer steps S fix every later training (same steps). Unless ``task.generator_run_dir`` /
   ``judge.run_dir`` say otherwise, it is also the generator and the classifier judge.
2. Each round: ``task.per_class`` texts per class from the generator (``synthesis.class_conditional``,
   the configured ``sampler``), judged, screened by the fixed filters (``synthesis.filters``); then for
   each threshold in ``task.score_thresholds`` a classifier on real + every synthetic text kept so far,
   scored on validation only (``train_classifier`` with ``task.score_test=false``).
   ``task.regenerate_from=previous`` makes the best run of a round the next round's generator.
3. The (round, threshold) with the best validation accuracy (then NLL) of the readout
   ``task.score_model`` is chosen; ``real_same_size``
   adds as many unused real rows as synthetic ones were kept, where the pool allows, same steps.
   A judge that cannot be reached stops the run with one error naming ``judge.base_url``: checked
   before any training, and again by the judge itself (``judges.llm``) and after each round (most
   verdicts judge failures: ``synthesis.filters.check_judge_failures``); never "every text rejected".
4. The test split is read once (``RealData.final_test``) and every configuration is scored on the same
   items (``synthesis.final_scoring``). Outputs: ``synthesis/records.py``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from diffusion_lab.evaluation.models import generative_readout
from diffusion_lab.judges.base import JudgeError
from diffusion_lab.net import unreachable
from diffusion_lab.runs import write_results
from diffusion_lab.synthesis import filters, records
from diffusion_lab.synthesis.class_conditional import ClassConditionalGenerator
from diffusion_lab.synthesis.final_scoring import score_configurations
from diffusion_lab.synthesis.inner_runs import train_inner
from diffusion_lab.synthesis.real_data import RealData, write_jsonl
from diffusion_lab.targets import build_target
from diffusion_lab.test_ledger import record_run

log = logging.getLogger(__name__)


def build_judge(cfg: DictConfig, default_run_dir: Path, label_names: list[str]):
    """The configured judge; classifier judges without ``run_dir`` get ``default_run_dir``, LLM judges
    without ``label_names`` get the dataset's."""
    node = OmegaConf.create(OmegaConf.to_container(cfg.judge, resolve=True))

    def fill(n):
        if not isinstance(n, DictConfig):
            return
        with open_dict(n):
            if "run_dir" in n and n.run_dir is None:
                n.run_dir = str(default_run_dir)
            if "label_names" in n and n.label_names is None:
                n.label_names = list(label_names)
        for value in n.values():
            fill(value)

    fill(node)
    return instantiate(node), OmegaConf.to_container(node)


def check_judge_reachable(cfg: DictConfig, timeout_s: float = 5.0) -> None:
    """Every server of the judge (``judge.base_url``, ensemble members included) accepts a connection."""
    for url in filters.judge_urls(OmegaConf.to_container(cfg.judge, resolve=True)):
        problem = unreachable(url, timeout_s)
        if problem:
            raise JudgeError(f"LLM judge: cannot reach judge.base_url={url} ({problem}): start the judge server "
                             f"there, or set judge.base_url to the address it listens on (an OpenAI-compatible "
                             f"API, e.g. http://localhost:8000/v1)")


def _val(result: dict, model: str) -> tuple[float, float]:
    metrics = result["validation"][model]
    return float(metrics["accuracy"]), float(metrics["nll"])


def _generate(generators: dict, run_dir, cfg, label_names, round_index: int):
    key = str(run_dir)
    if key not in generators:
        generators[key] = ClassConditionalGenerator(run_dir)
    gen, sampler, texts, intended = generators[key], instantiate(cfg.sampler), [], []
    for c, label in enumerate(label_names):
        seed = cfg.seed * 10_007 + round_index * 101 + c  # a fresh, recorded seed per round and class
        texts += gen.generate(label, int(cfg.task.per_class), sampler, cfg.task.get("length"), cfg.task.prompt or "", seed=seed)
        intended += [label] * int(cfg.task.per_class)
    return texts, intended


def run(cfg: DictConfig) -> dict:
    started, out, task = time.time(), Path(cfg.output_dir), cfg.task
    thresholds = sorted(float(t) for t in task.score_thresholds)
    if not thresholds or int(task.rounds) < 1:
        raise ValueError("task.rounds must be >= 1 and task.score_thresholds must list at least one threshold")
    score_model = str(task.get("score_model", "generative"))
    layout = build_target(cfg, "classifier.mode")  # its readouts, checked before any training
    generative_readout(score_model, layout.readouts(cfg.model.get("objective") == "autoregressive"))
    check_judge_reachable(cfg)  # before any training: an unreachable judge would waste it
    real = RealData(cfg, out)
    base = train_inner(cfg, out / "real_only", real.train_path, real)
    steps = int(base["optimizer_steps"])
    judge, judge_cfg = build_judge(cfg, out / "real_only", real.label_names)
    candidates, table, all_records, generator_dir = _rounds(cfg, out, real, judge, judge_cfg, base, thresholds)
    chosen = max(candidates, key=lambda c: (c["acc"], -c["nll"], -c["round"]))
    extra, why_not = real.same_size_extra(len(chosen["kept"]))
    run_dirs = {"real_only": out / "real_only", "real_plus_synthetic": chosen["run_dir"]}
    if extra:
        same = write_jsonl(out / "real_same_size" / "train.jsonl", real.rows(real.train + extra))
        train_inner(cfg, out / "real_same_size", same, real, max_steps=steps)
        run_dirs["real_same_size"] = out / "real_same_size"
    test = real.final_test()  # the only read of the test split, after every choice above
    scored = score_configurations(run_dirs, real.validation, test, cfg.classifier.get("num_draws"),
                                  int(cfg.get("eval", {}).get("seed", 0)), model=score_model)
    access_fields = record_run(cfg, task="synthesize", config=cfg, dataset=str(cfg.dataset.get("name")),
                               texts=test[0], labels=test[1], run=out,
                               metrics={m: v["accuracy"] for m, v in scored["models"].items()})
    generator_cfg = {"run_dir": str(generator_dir), "regenerate_from": task.regenerate_from,
                     "sampler": OmegaConf.to_container(cfg.sampler, resolve=True), "length": task.get("length"),
                     "prompt": task.prompt, "per_class": int(task.per_class), "seed": int(cfg.seed)}
    example_rows = records.examples(all_records, chosen["threshold"], int(task.examples))
    records.write_all(out, chosen["kept"], generator_cfg, judge_cfg, example_rows, table)
    results = {
        "status": "finished", "chosen": {"round": chosen["round"], "threshold": chosen["threshold"],
                                         "synthetic_kept": len(chosen["kept"]), "val_accuracy": chosen["acc"],
                                         "chosen_on": f"validation accuracy, then validation NLL, of {score_model}"},
        "test": scored, "real_same_size": "trained" if extra else f"unavailable: {why_not}",
        "rounds": table, "optimizer_steps": steps, "real_train_size": len(real.train), "real_pool": len(real.pool),
        "guard": {"ngram": real.guard.n, "contamination_hits": sum(r["guard_hits"] > 0 for r in all_records),
                  "dropped": sum(r["dropped_by"] == "contamination" for r in all_records)},
        "label_names": real.label_names, "seed": cfg.seed, "judge": judge_cfg, "generator": generator_cfg,
        "test_reads": real.test_reads, "wall_s": time.time() - started,
        **access_fields,
    }
    write_results(out, results)
    records.log_wandb(cfg, out, table, example_rows, {f"test/{m}/accuracy": v["accuracy"]
                                                      for m, v in scored["models"].items()})
    for name, metrics in scored["models"].items():
        lo, hi = metrics["accuracy_ci95"]
        log.info("%s: test accuracy %.4f [%.4f, %.4f] (n=%d)", name, metrics["accuracy"], lo, hi, scored["n_test"])
    return results


def _rounds(cfg, out: Path, real, judge, judge_cfg, base: dict, thresholds: list[float]):
    """Generate -> judge -> screen -> train on real + kept -> validate, for every round and threshold:
    ``(candidates, table rows, every screened record, the last generator run)``. Validation only."""
    task, score_model, steps = cfg.task, str(cfg.task.get("score_model", "generative")), int(base["optimizer_steps"])
    screen = filters.SyntheticFilter(real.guard, [t for t, _ in real.train], **task.filters)
    generator_dir = Path(task.generator_run_dir or out / "real_only")
    generators, all_records, table, candidates = {}, [], [], []
    base_acc, base_nll = _val(base, score_model)
    for r in range(1, int(task.rounds) + 1):
        texts, intended = _generate(generators, generator_dir, cfg, real.label_names, r)
        verdicts = judge.judge(texts, intended)
        filters.check_judge_failures(verdicts, judge_cfg, r)  # judge failures are no result: stop
        new = screen.screen(texts, intended, verdicts, r)
        write_jsonl(out / f"round_{r}" / "generated.jsonl", new)
        all_records += new
        best = None
        for tau in thresholds:
            keep = filters.kept(all_records, tau)
            row = {"round": r, **filters.round_counts(new, tau, judge.name), "synthetic_total": len(keep)}
            run_dir = out / f"round_{r}" / f"tau_{tau:g}"
            if keep:  # nothing kept: the training set is the real one, already measured
                train = write_jsonl(run_dir / "train.jsonl",
                                    real.rows(real.train) + [{"text": k["text"], "label": k["intended_label"]} for k in keep])
                acc, nll = _val(train_inner(cfg, run_dir, train, real, max_steps=steps), score_model)
            else:
                run_dir, (acc, nll) = out / "real_only", (base_acc, base_nll)
            row.update(val_accuracy=acc, val_nll=nll, val_delta_vs_real_only=acc - base_acc)
            table.append(row)
            candidates.append({"round": r, "threshold": tau, "run_dir": run_dir, "kept": keep, "acc": acc, "nll": nll})
            if best is None or (acc, -nll) > (best["acc"], -best["nll"]):
                best = candidates[-1]
        if task.regenerate_from == "previous" and best["kept"]:
            generator_dir = best["run_dir"]
    return candidates, table, all_records, generator_dir

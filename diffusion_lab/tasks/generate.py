"""``task=generate run_dir=<trained run> prompt="..." sampler=...``: text from a trained model.

A language-model run (``task=train_lm``) generates from its model; a classifier run
(``task=train_classifier``) generates class-conditionally with ``task.label=<label name>``
(``synthesis.class_conditional``). ``task.length`` (null = the run's ``data.max_length``) counts
tokens, prompt included. Prints the texts, saves ``samples.txt`` / ``generation.json`` (and
``trajectory.pt`` for ``task=visualize``) in this run's own directory. With
``task.compare_run_dir=<autoregressive run>`` the AR model generates on the same prompt and
length, and both trajectories are saved.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from rich import print as rprint

from diffusion_lab.run_loading import load_run
from diffusion_lab.runs import load_run_config, require_run_kind
from diffusion_lab.synthesis.class_conditional import ClassConditionalGenerator

log = logging.getLogger(__name__)
KINDS = ("train_lm", "train_classifier")


def run_kind(run_dir) -> str:
    """The run's task name, refused unless generate can read it (``runs.require_run_kind``)."""
    require_run_kind(run_dir, KINDS, "task=generate")
    return load_run_config(run_dir).task.get("name")


def generate_from_run(run_dir, cfg: DictConfig, sampler=None) -> dict:
    """Load ``run_dir``, generate ``task.num_samples`` texts; returns texts, trajectory and timing."""
    if run_kind(run_dir) == "train_classifier":
        return _from_classifier(run_dir, cfg, sampler)
    if cfg.task.get("label") is not None:
        raise ValueError(f"task.label={cfg.task.label!r} needs a classifier run; {run_dir} is a language-model "
                         "run (unconditional). Drop task.label or give run_dir=<task=train_classifier run>")
    loaded = load_run(run_dir, cfg.get("checkpoint", "best"))
    module = loaded.module
    if sampler is None:
        sampler = instantiate(loaded.cfg.sampler if loaded.cfg.model.objective == "autoregressive" else cfg.sampler)
    length = cfg.task.get("length") or int(loaded.cfg.data.max_length)
    prompts = [cfg.task.prompt or ""] * cfg.task.num_samples
    start = time.perf_counter()
    texts, out = module.generate(prompts, length, sampler=sampler, seed=cfg.seed, return_output=True)
    return _summary(run_dir, loaded.cfg.model.objective, sampler, start, texts, out,
                    len(loaded.tokenizer(cfg.task.prompt or "", add_special_tokens=False)["input_ids"]))


def _from_classifier(run_dir, cfg: DictConfig, sampler=None) -> dict:
    gen = ClassConditionalGenerator(run_dir, cfg.get("checkpoint", "best"))
    if cfg.task.get("label") is None:
        raise ValueError(f"{run_dir} is a classifier run: say which class to generate with task.label=<name>; "
                         f"its labels are: {', '.join(gen.label_names)}")
    gen.class_id(cfg.task.label)  # an unknown label fails before any work
    sampler = sampler if sampler is not None else instantiate(cfg.sampler)
    start = time.perf_counter()
    texts, out = gen.generate(cfg.task.label, cfg.task.num_samples, sampler, cfg.task.get("length"),
                              cfg.task.prompt or "", seed=cfg.seed, return_output=True)
    prefix = gen.clf.layout.prefix  # the label token, where the layout has one
    res = _summary(run_dir, gen.cfg.model.objective, sampler, start, texts, out,
                   prefix + len(gen.tokenizer(cfg.task.prompt or "", add_special_tokens=False)["input_ids"]))
    return {**res, "label": str(cfg.task.label), "classifier": gen.clf.mode}


def _summary(run_dir, objective, sampler, start, texts, out, prompt_length) -> dict:
    return {
        "run_dir": str(run_dir), "objective": objective, "sampler": type(sampler).__name__,
        "steps": len(out.trajectory) - 1, "wall_s": time.perf_counter() - start, "texts": texts,
        "trajectory": out.trajectory, "step_times": out.step_times, "prompt_length": prompt_length,
    }


def run(cfg: DictConfig) -> dict:
    if not cfg.get("run_dir"):
        raise ValueError("task=generate needs run_dir=<directory of a trained run>")
    out = Path(cfg.output_dir)
    results = {"main": generate_from_run(cfg.run_dir, cfg)}
    if cfg.task.get("compare_run_dir"):
        results["compare"] = generate_from_run(cfg.task.compare_run_dir, cfg)
    for name, res in results.items():
        label = f", label {res['label']}" if "label" in res else ""
        rprint(f"[bold]{name}[/bold] ({res['objective']}, {res['sampler']}, {res['steps']} steps{label}, {res['wall_s']:.2f} s)")
        for i, text in enumerate(res["texts"]):
            rprint(f"  [{i}] {text}")
            print(text)
    with (out / "samples.txt").open("w", encoding="utf-8") as f:
        for name, res in results.items():
            f.writelines(f"{name}\t{t}\n" for t in res["texts"])
    if cfg.task.get("save_trajectory", True):
        torch.save({k: {"trajectory": torch.stack(v["trajectory"]), "step_times": v["step_times"],
                        "prompt_length": v["prompt_length"], "run_dir": v["run_dir"], "objective": v["objective"],
                        "wall_s": v["wall_s"]}
                    for k, v in results.items()}, out / "trajectory.pt")
    summary = {k: {kk: vv for kk, vv in v.items() if kk not in ("trajectory", "step_times")} for k, v in results.items()}
    (out / "generation.json").write_text(json.dumps(summary, indent=2))
    return summary

"""``task=generate run_dir=<trained run> prompt="..." sampler=...``: text from a trained model.

Prints the texts, saves ``samples.txt`` / ``generation.json`` (and ``trajectory.pt`` for
``task=visualize``) in this run's own directory. With ``task.compare_run_dir=<autoregressive run>``
the AR model generates on the same prompt and length, and both trajectories are saved.
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

from diffusion_lab.runs import load_run

log = logging.getLogger(__name__)


def generate_from_run(run_dir, cfg: DictConfig, sampler=None) -> dict:
    """Load ``run_dir``, generate ``task.num_samples`` texts; returns texts, trajectory and timing."""
    loaded = load_run(run_dir, cfg.get("checkpoint", "best"))
    module = loaded.module
    if sampler is None:
        sampler = instantiate(loaded.cfg.sampler if loaded.cfg.model.objective == "autoregressive" else cfg.sampler)
    prompts = [cfg.task.prompt or ""] * cfg.task.num_samples
    start = time.perf_counter()
    texts, out = module.generate(prompts, cfg.task.length, sampler=sampler, seed=cfg.seed, return_output=True)
    return {
        "run_dir": str(run_dir),
        "objective": loaded.cfg.model.objective,
        "sampler": type(sampler).__name__,
        "steps": len(out.trajectory) - 1,
        "wall_s": time.perf_counter() - start,
        "texts": texts,
        "trajectory": out.trajectory,
        "step_times": out.step_times,
        "prompt_length": len(loaded.tokenizer(cfg.task.prompt or "", add_special_tokens=False)["input_ids"]),
    }


def run(cfg: DictConfig) -> dict:
    if not cfg.get("run_dir"):
        raise ValueError("task=generate needs run_dir=<directory of a trained run>")
    out = Path(cfg.output_dir)
    results = {"main": generate_from_run(cfg.run_dir, cfg)}
    if cfg.task.get("compare_run_dir"):
        results["compare"] = generate_from_run(cfg.task.compare_run_dir, cfg)
    for name, res in results.items():
        rprint(f"[bold]{name}[/bold] ({res['objective']}, {res['sampler']}, {res['steps']} steps, {res['wall_s']:.2f} s)")
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

"""``task=visualize``: watch text emerge from a trained run, or see what the model is trained on.

``task.mode=denoise`` (default), ``run_dir=<trained run>``: generate on ``task.prompt`` (row 0 of the
batch is drawn) and write into this run's own directory ``denoising.gif``, ``frames/step_XX.png``,
``viewer.html``, ``trajectory.json`` and ``samples.txt``. With ``task.compare_run_dir=<AR run>``
also ``comparison.gif`` (+ ``comparison_frames/``): this run on top, the other below, same prompt
and length.

``task.mode=masking``: ``task.text`` (or the prompt) masked at each rate of the chosen ``masking=``
schedule, as ``masking.png`` (+ ``masking.json``) and a rich table; tokens from ``run_dir``'s
tokenizer when given, else whitespace words.

With ``logger=wandb`` the images, GIFs and viewer are logged to W&B (see ``viz.wandb_media``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict
from rich.console import Console
from transformers import AutoTokenizer

from diffusion_lab.errors import ConfigError
from diffusion_lab.logging_utils import get_logger
from diffusion_lab.runs import find_checkpoint, load_run_config, require_run_kind
from diffusion_lab.tasks.generate import KINDS, generate_from_run
from diffusion_lab.viz import (
    frames_from_trajectory,
    masking_explainer,
    render_comparison,
    render_gif,
    write_viewer,
)
from diffusion_lab.viz.masking_explainer import masked_positions, schedule_rates, whitespace_pieces
from diffusion_lab.viz.trajectory import decode_pieces
from diffusion_lab.viz.wandb_media import log_files, start_wandb_run

log = get_logger(__name__)

MODES = ("denoise", "masking")
DEFAULT_TEXT = "the film was a quiet delight from its first scene to the very last line"
TITLES = {"diffusion": "Masked diffusion: text emerging from masks",
          "autoregressive": "Autoregressive: text written left to right"}


def check_run_dir(path: Any, key: str = "run_dir", checkpoint: str | None = "best") -> Path:
    """``path`` as a Path if it holds a trained run (config, tokenizer, checkpoint), else ``ConfigError``.

    Checked before any generation, so a typo in ``compare_run_dir`` fails at once, not after the
    main model has run. ``checkpoint=None`` skips the checkpoint (the masking mode reads only the
    tokenizer, so a run still training will do).
    """
    if not path:
        raise ConfigError(f"task=visualize needs {key}=<directory of a trained run> (task.mode=masking does not)")
    run_dir = Path(str(path)).expanduser()
    if not run_dir.is_dir():
        raise ConfigError(f"{key}={run_dir}: no such directory")
    try:
        load_run_config(run_dir)
        if not (run_dir / "tokenizer").is_dir():
            raise FileNotFoundError(f"{run_dir / 'tokenizer'} is missing")
        if checkpoint is not None:
            require_run_kind(run_dir, KINDS, f"task=visualize ({key})")
            find_checkpoint(run_dir, checkpoint)
    except FileNotFoundError as err:
        raise ConfigError(f"{key}={run_dir} is not a trained diffusion_lab run: {err}") from None
    return run_dir


def check_steps(cfg: DictConfig, length: int) -> None:
    """Every sampler step is a frame and a forward pass, and a step past ``length`` reveals nothing:
    ``sampler.steps > task.length`` would run for minutes to draw empty frames, so it stops here."""
    steps = int(cfg.sampler.get("steps", 0) or 0)
    if cfg.sampler.get("name") != "autoregressive" and steps > length:
        raise ConfigError(f"sampler.steps={steps} exceeds task.length={length}: each step reveals at least one of "
                          f"the {length} tokens, so the extra steps are empty frames; set sampler.steps<={length}")


def load_tokenizer(run_dir: Path):
    """The run's saved tokenizer (cheap; the model itself is loaded by ``generate_from_run``)."""

    return AutoTokenizer.from_pretrained(str(run_dir / "tokenizer"))


def run(cfg: DictConfig) -> dict:
    """The task entry point (``cfg.task.run``): render, then log to W&B when configured; returns a summary."""
    mode = cfg.task.get("mode", "denoise")
    if mode not in MODES:
        raise ConfigError(f"task.mode={mode!r}: allowed values are {', '.join(MODES)}")
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    wandb_run = None
    try:
        result = RENDERERS[mode](cfg, out)
        wandb_run = start_wandb_run(cfg, out)
        if wandb_run is not None:
            log_files(wandb_run, result.pop("media"), result.get("summary"), tuple(result.pop("artifact")))
            result["wandb_dir"] = str(Path(wandb_run.dir).parent)
        return {k: v for k, v in result.items() if k not in ("media", "artifact")}
    finally:
        if wandb_run is not None:
            wandb_run.finish()  # app.run also finishes any run; this one never outlives the task


# --- denoise -----------------------------------------------------------------------------------------


def _generation_cfg(cfg: DictConfig, run_dir: Path) -> DictConfig:
    """A copy of ``cfg`` with ``task.length`` filled in: null means the run's trained window."""
    gen = copy.deepcopy(cfg)
    with open_dict(gen):
        if gen.task.get("length") is None:
            gen.task.length = int(load_run_config(run_dir).data.max_length)
    return gen


def _generate(run_dir: Path, cfg: DictConfig) -> dict:
    """Generate with one run and turn row 0 of its trajectory into frames."""
    res = generate_from_run(run_dir, cfg)
    tokenizer = load_tokenizer(run_dir)
    res["mask_token_id"] = tokenizer.mask_token_id
    res["states"] = frames_from_trajectory(res["trajectory"], 0, tokenizer, res["prompt_length"],
                                           res["step_times"] or None, tokenizer.mask_token_id)
    seconds = res["states"][-1].elapsed
    res["seconds"] = res["wall_s"] if seconds is None else seconds
    res["label"] = f"{res['objective']} · {res['sampler']}: {res['steps']} steps, {res['seconds']:.2f} s"
    return res


def _record(res: dict) -> dict:
    """The JSON-ready part of a generation (row 0's canvas after every step)."""
    keys = ("run_dir", "objective", "sampler", "steps", "wall_s", "prompt_length", "mask_token_id", "texts")
    return {**{k: res[k] for k in keys}, "text": res["texts"][0],
            "step_times": [float(t) for t in res["step_times"]],
            "token_ids": [[int(v) for v in canvas[0].tolist()] for canvas in res["trajectory"]]}


def visualize_generation(cfg: DictConfig, out: Path) -> dict:
    """The denoise mode: GIF, PNG frames, viewer, trajectory and, with a second run, the comparison."""
    task = cfg.task
    checkpoint = cfg.get("checkpoint", "best")
    run_dir = check_run_dir(cfg.get("run_dir"), "run_dir", checkpoint)
    compare_dir = check_run_dir(task.compare_run_dir, "task.compare_run_dir", checkpoint) \
        if task.get("compare_run_dir") else None
    gen_cfg = _generation_cfg(cfg, run_dir)  # both runs share the prompt and the length
    check_steps(cfg, int(gen_cfg.task.length))
    runs = {"main": _generate(run_dir, gen_cfg)}
    if compare_dir is not None:
        runs["compare"] = _generate(compare_dir, gen_cfg)

    main = runs["main"]
    look = {"width": task.width, "font_size": task.font_size}
    title = TITLES.get(main["objective"], TITLES["diffusion"])
    images = render_gif(main["states"], out / "denoising.gif", task.frame_ms, title=title,
                        frames_dir=out / "frames", **look)
    write_viewer(main["states"], out / "viewer.html", title=f"{title} ({main['label']})", frame_ms=task.frame_ms,
                 png_frames=images if task.embed_frames else None)
    media = {"visualize/denoising": out / "denoising.gif", "visualize/viewer": out / "viewer.html"}
    if compare_dir is not None:
        other = runs["compare"]
        render_comparison(main["states"], other["states"], out / "comparison.gif", (main["label"], other["label"]),
                          task.frame_ms, frames_dir=out / "comparison_frames", **look)
        media["visualize/comparison"] = out / "comparison.gif"

    record = {"prompt": task.prompt or "", "length": int(gen_cfg.task.length), "frame_ms": int(task.frame_ms),
              "row": 0, "runs": {name: _record(res) for name, res in runs.items()}}
    (out / "trajectory.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    with (out / "samples.txt").open("w", encoding="utf-8") as f:
        for name, res in runs.items():
            f.writelines(f"{name}\t{text}\n" for text in res["texts"])

    console = Console()
    for name, res in runs.items():
        console.print(f"[bold]{name}[/bold] ({res['label']})", highlight=False)
        print(res["texts"][0])  # plain print: the text itself, never parsed as rich markup
    console.print(f"wrote {', '.join(sorted(p.name for p in media.values()))}, frames/ and trajectory.json to {out}",
                  highlight=False, markup=False)
    return {"mode": "denoise", "text": main["texts"][0], "steps": main["steps"],
            "compare_steps": runs["compare"]["steps"] if compare_dir else None,
            "media": media, "artifact": [out / "viewer.html"],
            "summary": {"visualize/text": main["texts"][0], "visualize/steps": main["steps"]}}


# --- masking -----------------------------------------------------------------------------------------


def _pieces(cfg: DictConfig, text: str) -> tuple[list[str], str]:
    """The explainer's tokens: the run's tokenizer when ``run_dir`` is given, else whitespace words."""
    if cfg.get("run_dir"):
        tokenizer = load_tokenizer(check_run_dir(cfg.run_dir, "run_dir", checkpoint=None))
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return decode_pieces(tokenizer, ids), "run tokenizer"
    return whitespace_pieces(text), "whitespace words"


def explain_masking(cfg: DictConfig, out: Path) -> dict:
    """The masking mode: one sentence at each rate of ``cfg.masking`` (or ``task.rates``)."""
    task = cfg.task
    text = task.get("text") or task.get("prompt") or DEFAULT_TEXT
    pieces, source = _pieces(cfg, text)
    if not pieces:
        raise ConfigError(f"task.text={text!r} has no tokens to mask")
    rates = [float(r) for r in task.rates] if task.get("rates") else schedule_rates(instantiate(cfg.masking))
    _, table = masking_explainer(pieces, rates, seed=cfg.seed, path=out / "masking.png",
                                 width=task.width, font_size=task.font_size)
    Console().print(table)
    masks = masked_positions(len(pieces), rates, cfg.seed)  # the same seeded draw the picture shows
    record = {"text": text, "tokens": pieces, "token_source": source, "schedule": cfg.masking.get("name"),
              "rates": rates, "masked": [sum(m) for m in masks], "seed": int(cfg.seed)}
    (out / "masking.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return {"mode": "masking", "rates": rates, "masked": record["masked"], "num_tokens": len(pieces),
            "media": {"visualize/masking": out / "masking.png"}, "artifact": []}


#: ``task.mode`` (one of ``MODES``) -> what it renders: a table, so no code compares the name
RENDERERS = {"denoise": visualize_generation, "masking": explain_masking}

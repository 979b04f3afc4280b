"""Run directories: what a run leaves behind, and rebuilding model + tokenizer from it.

A run directory holds ``config_resolved.yaml`` (and Hydra's ``.hydra/``), ``tokenizer/``,
``checkpoints/{best,last}.ckpt``, ``metrics.csv``, ``results.json`` and samples. Later tasks
(generate, evaluate, visualize) take ``run_dir=`` and call ``load_run``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


@dataclass
class LoadedRun:
    cfg: DictConfig
    tokenizer: object
    module: object
    run_dir: Path
    checkpoint: Path


def write_results(run_dir: Path, results: dict, name: str = "results.json") -> Path:
    """Write ``results.json`` (machine-readable final metrics) on rank zero only."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    path = Path(run_dir) / name
    if rank_zero_only.rank == 0:
        path.write_text(json.dumps(results, indent=2, default=float))
    return path


def find_checkpoint(run_dir: Path, which: str = "best") -> Path:
    """``best`` (falls back to ``last``), ``last``, or an explicit path."""
    ckpt_dir = Path(run_dir) / "checkpoints"
    if which not in ("best", "last"):
        path = Path(which)
        if not path.exists():
            raise FileNotFoundError(f"checkpoint={which!r} does not exist")
        return path
    candidates = [ckpt_dir / f"{which}.ckpt", ckpt_dir / "last.ckpt"]
    for path in candidates:
        if path.exists():
            return path
    found = sorted(p.name for p in ckpt_dir.glob("*")) if ckpt_dir.exists() else []
    raise FileNotFoundError(
        f"no checkpoint in {ckpt_dir} (looked for {which}.ckpt and last.ckpt; found {found or 'nothing'}). "
        "Is run_dir= the directory of a finished training run?"
    )


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise RuntimeError(
            f"checkpoint {path} is unreadable ({type(err).__name__}: {err}); it may be truncated or corrupt. "
            "Use checkpoint=last or checkpoint=<another .ckpt>, or retrain."
        ) from err


def load_run_config(run_dir: str | Path) -> DictConfig:
    run_dir = Path(run_dir)
    for candidate in (run_dir / "config_resolved.yaml", run_dir / ".hydra" / "config.yaml"):
        if candidate.exists():
            return OmegaConf.load(candidate)
    raise FileNotFoundError(
        f"run_dir={run_dir} holds no config_resolved.yaml or .hydra/config.yaml: not a diffusion_lab run directory"
    )


def load_run(run_dir: str | Path, which: str = "best", build=None) -> LoadedRun:
    """Rebuild tokenizer and module from a run directory and load its weights.

    ``build(cfg, tokenizer) -> module`` defaults to the language-model builder; the classifier
    task passes its own.
    """
    from transformers import AutoTokenizer

    from diffusion_lab.builders import build_lm

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    tok_dir = run_dir / "tokenizer"
    if not tok_dir.exists():
        raise FileNotFoundError(f"{tok_dir} is missing: the run's tokenizer is needed to rebuild the model")
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    module = (build or (lambda c, t: build_lm(c, t)))(cfg, tokenizer)
    ckpt_path = find_checkpoint(run_dir, which)
    state = load_checkpoint(ckpt_path)
    module.load_state_dict(state["state_dict"])
    if hasattr(module, "on_load_checkpoint"):
        module.on_load_checkpoint(state)
    module.eval()
    log.info("loaded %s", ckpt_path)
    return LoadedRun(cfg=cfg, tokenizer=tokenizer, module=module, run_dir=run_dir, checkpoint=ckpt_path)

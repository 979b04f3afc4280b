"""Log rendered files (GIFs, PNGs, the viewer page) to Weights & Biases.

A visualize run has no Trainer, so it cannot go through ``logging_utils.build_loggers``; it follows
the same rules instead: only when ``cfg.logger.wandb`` is configured and ``wandb_mode()`` is not
``disabled``, online only with credentials and a reachable server (else offline, under
``<output_dir>/wandb/``; ``logging_utils.wandb_start_mode``), silent,
and with the project/name/group/job_type/tags of ``conf/logger/wandb.yaml``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from diffusion_lab.logging_utils import wandb_mode, wandb_start_mode

log = logging.getLogger(__name__)


def wandb_enabled(cfg: DictConfig) -> bool:
    """Whether this config asks for W&B (``logger=wandb``) and the environment allows it."""
    logger_cfg = (cfg.get("logger") or {}).get("wandb")
    return logger_cfg is not None and "_target_" in logger_cfg and wandb_mode() != "disabled"


def start_wandb_run(cfg: DictConfig, out_dir: str | Path) -> Any | None:
    """Start the W&B run configured under ``cfg.logger.wandb`` (or return None when W&B is off).

    Built through the configured ``WandbLogger`` exactly as ``build_loggers`` does, so every key in
    ``conf/logger/wandb.yaml`` (and any a user adds, e.g. ``entity``) means the same here.
    """
    if not wandb_enabled(cfg):
        return None
    state = wandb_start_mode(out_dir)
    os.environ.setdefault("WANDB_SILENT", "true")
    logger = instantiate(cfg.logger.wandb, save_dir=str(out_dir), offline=(state == "offline"),
                         settings={"init_timeout": 60, "silent": True})
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return logger.experiment


def media_for(path: Path, caption: str | None = None) -> Any:
    """The W&B media object for a rendered file: GIF -> Video, PNG -> Image, HTML -> Html."""
    import wandb  # deferred: a heavy import, only when W&B logs

    suffix = path.suffix.lower()
    if suffix == ".gif":
        return wandb.Video(str(path), caption=caption)
    if suffix == ".png":
        return wandb.Image(str(path), caption=caption)
    if suffix in (".html", ".htm"):
        # inject=False: W&B would otherwise add its own stylesheet link, and the viewer stays offline
        return wandb.Html(path, inject=False)
    raise ValueError(f"no W&B media type for {path.name}")


def log_files(run: Any, files: Mapping[str, Path], summary: Mapping[str, Any] | None = None,
              artifact_files: tuple[Path, ...] = ()) -> None:
    """Log ``files`` (key -> path) as media, ``summary`` values, and ``artifact_files`` as one artifact.

    The viewer page goes in as an artifact too: the Html panel shows it, the artifact keeps the
    exact self-contained file for download.
    """
    import wandb  # deferred: a heavy import, only when W&B logs

    run.log({key: media_for(path) for key, path in files.items()})
    for key, value in (summary or {}).items():
        run.summary[key] = value
    if artifact_files:
        # artifact names allow letters, digits, '-', '_' and '.'
        name = re.sub(r"[^A-Za-z0-9_.-]", "-", f"visualize-{run.id}")
        artifact = wandb.Artifact(name, type="visualization", description="diffusion_lab task=visualize output")
        for path in artifact_files:
            artifact.add_file(str(path))
        run.log_artifact(artifact)

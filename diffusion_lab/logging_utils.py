"""Experiment tracking: CSV always, W&B by default (online with credentials, else offline), rich output.

W&B never prompts and never blocks: without credentials (``WANDB_API_KEY`` or a netrc entry) the
run is written offline and a ``wandb sync`` hint is printed.
"""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path

from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf


class RankedLogger(logging.LoggerAdapter):
    """A logger that writes on rank zero only (as lightning-hydra-template's ``RankedLogger``).

    Under DDP every rank runs the same code; plain ``getLogger`` calls would print each message once
    per process. ``rank_zero_only=False`` logs on every rank, prefixed with the rank.
    """

    def __init__(self, name: str = __name__, rank_zero_only: bool = True):
        super().__init__(logging.getLogger(name), {})
        self.rank_zero_only = rank_zero_only

    def log(self, level: int, msg, *args, **kwargs) -> None:
        from lightning.pytorch.utilities.rank_zero import rank_zero_only

        if not self.isEnabledFor(level):
            return
        rank = getattr(rank_zero_only, "rank", 0)
        if self.rank_zero_only and rank != 0:
            return
        msg, kwargs = self.process(msg, kwargs)
        self.logger.log(level, msg if self.rank_zero_only else f"[rank {rank}] {msg}", *args, **kwargs)


def get_logger(name: str) -> RankedLogger:
    """The project's logger: rank zero only."""
    return RankedLogger(name)


log = get_logger(__name__)


def wandb_credentials_available() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_mode() -> str:
    """``online`` only with credentials and no explicit ``WANDB_MODE``; otherwise offline/disabled."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in {"offline", "disabled", "dryrun"}:
        return "offline" if mode == "dryrun" else mode
    return "online" if wandb_credentials_available() else "offline"


def build_loggers(cfg: DictConfig, run_dir: Path) -> list[Logger]:
    """``metrics.csv`` in ``run_dir`` always; plus each logger configured under ``cfg.logger``."""
    loggers: list[Logger] = [CSVLogger(save_dir=str(run_dir), name="", version="")]
    for name, logger_cfg in (cfg.get("logger") or {}).items():
        if logger_cfg is None or "_target_" not in logger_cfg:
            continue
        if name == "wandb":
            mode = wandb_mode()
            if mode == "disabled":
                continue
            os.environ.setdefault("WANDB_SILENT", "true")
            logger = instantiate(logger_cfg, save_dir=str(run_dir), offline=(mode == "offline"),
                                 settings={"init_timeout": 60, "silent": True})
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
            if mode == "offline":
                log.info("W&B is offline (no credentials or WANDB_MODE=offline). Upload later with: "
                         "wandb sync %s", Path(run_dir) / "wandb" / "offline-run-*")
        else:
            logger = instantiate(logger_cfg, save_dir=str(run_dir))
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        loggers.append(logger)
    return loggers


def wandb_logger(trainer_or_module) -> WandbLogger | None:
    for logger in getattr(trainer_or_module, "loggers", []) or []:
        if isinstance(logger, WandbLogger):
            return logger
    return None


def log_samples(module, texts: list[str], step: int) -> None:
    """Append samples to ``samples.txt`` in the run directory and log a W&B table."""
    out_dir = module.hparams.get("samples_dir")
    if out_dir and module.global_rank == 0:
        path = Path(out_dir) / "samples.txt"
        with path.open("a", encoding="utf-8") as f:
            for i, text in enumerate(texts):
                f.write(f"step {step}\tsample {i}\t{text!r}\n")
    wb = wandb_logger(module.trainer) if module._trainer is not None else None
    if wb is not None:
        wb.log_text(key="samples", columns=["step", "sample"], data=[[step, t] for t in texts])


def finish_wandb() -> None:
    """Close the W&B run so sweeps never merge runs, also after a failure."""
    try:
        import wandb

        if wandb.run is not None:
            wandb.finish()
    except Exception as err:  # closing must never mask the real error
        log.warning("wandb.finish() failed: %s", err)

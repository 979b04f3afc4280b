"""Experiment tracking: CSV always, W&B by default (online with credentials, else offline), rich output.

W&B never prompts and never blocks: without credentials (``WANDB_API_KEY`` or a netrc entry) the
run is written offline and a ``wandb sync`` hint is printed. Before starting online, the W&B server
(``WANDB_BASE_URL``, else wandb's settings file, else wandb's default) must accept a connection
within ``WANDB_CONNECT_TIMEOUT_S`` seconds; if it does not (no network, unknown host, closed port)
the run logs offline, with one warning that names the reason and the ``wandb sync`` command.
``WANDB_MODE=""`` means unset (wandb itself rejects the empty value); an unknown value is an error.
"""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from urllib.parse import urlsplit

from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from diffusion_lab.net import unreachable


class RankedLogger(logging.LoggerAdapter):
    """A logger that writes on rank zero only (as lightning-hydra-template's ``RankedLogger``).

    Under DDP every rank runs the same code; plain ``getLogger`` calls would print each message once
    per process. ``rank_zero_only=False`` logs on every rank, prefixed with the rank.
    """

    def __init__(self, name: str = __name__, rank_zero_only: bool = True):
        super().__init__(logging.getLogger(name), {})
        self.rank_zero_only = rank_zero_only

    def log(self, level: int, msg, *args, **kwargs) -> None:
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


WANDB_CONNECT_TIMEOUT_S = 3.0
WANDB_DEFAULT_BASE_URL = "https://api.wandb.ai"
WANDB_MODES = ("online", "offline", "disabled", "dryrun", "shared", "run")  # what wandb accepts
_reachability: dict[str, str | None] = {}  # base URL -> None (reachable) or why not; asked once per process
_warned: set[str] = set()


def wandb_base_url() -> str:
    """The server W&B would talk to: resolved by wandb's own settings (env var, settings file, default)."""
    try:
        from wandb.sdk.wandb_settings import Settings  # deferred: a heavy import, only when W&B logs

        settings = Settings(silent=True)
        config_dir = os.environ.get("WANDB_CONFIG_DIR")
        settings.settings_system = str(Path(config_dir).expanduser() / "settings" if config_dir
                                       else Path("~", ".config", "wandb", "settings").expanduser())
        settings.update_from_system_settings()
        settings.update_from_env_vars(dict(os.environ))
        return str(settings.base_url)
    except Exception:  # another wandb version, or a setting wandb would reject itself later
        return os.environ.get("WANDB_BASE_URL") or WANDB_DEFAULT_BASE_URL


def wandb_credentials_available() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc()
    except (FileNotFoundError, netrc.NetrcParseError):
        return False

    hosts = {"api.wandb.ai", urlsplit(wandb_base_url()).hostname}
    return any(auth.authenticators(h) is not None for h in hosts if h)


def _env_mode() -> str:
    """``WANDB_MODE``, lower case; an empty value is removed from the environment (it means unset)."""
    raw = os.environ.get("WANDB_MODE")
    if raw is not None and not raw.strip():
        del os.environ["WANDB_MODE"]  # wandb would fail on it with a pydantic error
        return ""
    mode = (raw or "").strip().lower()
    if mode and mode not in WANDB_MODES:
        raise ValueError(f"WANDB_MODE={raw!r}: use online, offline or disabled, or leave it unset (online "
                         f"with credentials, else offline)")
    return mode


def wandb_mode_and_reason() -> tuple[str, str, bool]:
    """(``online`` | ``offline`` | ``disabled``, why, whether offline is a fallback from online).

    Online needs credentials, no ``WANDB_MODE`` saying otherwise, and a W&B server that accepts a
    connection within ``WANDB_CONNECT_TIMEOUT_S`` (asked once per server and process)."""
    state = _env_mode()
    if state in {"offline", "disabled", "dryrun"}:
        return ("offline" if state == "dryrun" else state), f"WANDB_MODE={state}", False
    if not state and not wandb_credentials_available():
        return "offline", "no W&B credentials (WANDB_API_KEY or a netrc entry)", False
    url = wandb_base_url()
    if url not in _reachability:
        _reachability[url] = unreachable(url, WANDB_CONNECT_TIMEOUT_S)
    problem = _reachability[url]
    if problem:
        return "offline", f"cannot reach the W&B server {url} ({problem})", True
    return "online", f"W&B server {url}", False


def wandb_mode() -> str:
    """``online`` only with credentials, no explicit offline ``WANDB_MODE`` and a reachable server."""
    return wandb_mode_and_reason()[0]


def wandb_start_mode(run_dir: str | Path) -> str:
    """The mode to start W&B in for a run that writes under ``run_dir``; says why and how to upload when
    offline (a warning the first time the server is found unreachable, else an info line)."""
    state, why, fallback = wandb_mode_and_reason()
    if state != "offline":
        return state
    hint = f"Upload later with: wandb sync {Path(run_dir) / 'wandb' / 'offline-run-*'}"
    if fallback and why not in _warned:
        _warned.add(why)
        log.warning("W&B: %s; this run logs offline instead (WANDB_MODE=offline skips the check). %s", why, hint)
        return state
    log.info("W&B is offline (%s). %s", why, hint)
    return state


def build_loggers(cfg: DictConfig, run_dir: Path) -> list[Logger]:
    """``metrics.csv`` in ``run_dir`` always; plus each logger configured under ``cfg.logger``."""
    loggers: list[Logger] = [CSVLogger(save_dir=str(run_dir), name="", version="")]
    for name, logger_cfg in (cfg.get("logger") or {}).items():
        if logger_cfg is None or "_target_" not in logger_cfg:
            continue
        if name == "wandb":
            state = wandb_start_mode(run_dir)
            if state == "disabled":
                continue
            os.environ.setdefault("WANDB_SILENT", "true")
            logger = instantiate(logger_cfg, save_dir=str(run_dir), offline=(state == "offline"),
                                 settings={"init_timeout": 60, "silent": True})
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
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
    wb = wandb_logger(module)  # LightningModule.loggers: the trainer's, or [] when not attached
    if wb is not None:
        wb.log_text(key="samples", columns=["step", "sample"], data=[[step, t] for t in texts])


def finish_wandb() -> None:
    """Close the W&B run so sweeps never merge runs, also after a failure."""
    try:
        import wandb  # deferred: a heavy import, only when W&B logs

        if wandb.run is not None:
            wandb.finish()
    except Exception as err:  # closing must never mask the real error
        log.warning("wandb.finish() failed: %s", err)

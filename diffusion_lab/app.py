"""The thin entry point: ``main -> run (validate, check resume, save config) -> task``.

``run`` always closes the W&B run, also on failure, and always leaves a ``results.json`` that says
how the run ended: ``finished`` (the task's own results), ``failed`` (error and traceback) or
``interrupted`` (Ctrl-C / SIGTERM; Lightning's ``OnExceptionCheckpoint`` has saved
``checkpoints/on_exception.ckpt``). A results file of finished work written before this process
started is never replaced by a failure record (that goes to ``results_<status>.json``).
In a multirun sweep a failing job is recorded and the sweep goes on with the next job.

On the command line an error is one line after a one-line header; the full traceback is in the
run directory's log file (``<job name>.log``) and in ``results.json``. ``HYDRA_FULL_ERROR=1`` raises.
The config is saved as ``config_resolved.yaml``; ``print_config=true`` also prints it as a tree.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

from diffusion_lab import resolvers  # noqa: F401  (registers ${dl.*} resolvers)
from diffusion_lab.config_schema import ConfigError, check_accelerator, validate
from diffusion_lab.logging_utils import finish_wandb, get_logger
from diffusion_lab.rich_utils import print_config_tree
from diffusion_lab.runs import check_resume_config, require_run_kind, write_results

log = get_logger("diffusion_lab")


def conf_dir() -> str:
    """``diffusion_lab/conf``: a symlink to the top-level ``conf/`` in a checkout, a copy in a wheel."""
    return str(Path(__file__).parent / "conf")


def _is_multirun() -> bool:
    return HydraConfig.initialized() and str(HydraConfig.get().mode) == "RunMode.MULTIRUN"


def resume_dir(cfg: DictConfig) -> Path | None:
    """The run ``resume=true`` continues (``run_dir``, else this run's own directory), or None."""
    if not cfg.get("resume"):
        return None
    return Path(str(cfg.run_dir)) if cfg.get("run_dir") else Path(cfg.output_dir)


def check_resume(cfg: DictConfig) -> None:
    """``resume=true``: the run must be of this task, and its config the same (``runs.check_resume_config``)."""
    base = resume_dir(cfg)
    if base is None:
        return
    if not (base / "config_resolved.yaml").exists() and not (base / ".hydra" / "config.yaml").exists():
        return  # nothing to compare with: the task reports the missing checkpoint
    require_run_kind(base, [cfg.task.name], f"resume=true with task={cfg.task.name}")
    check_resume_config(cfg, base)


def _log_files() -> list[logging.FileHandler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]


def _traceback_to_log_file(err: BaseException) -> str | None:
    """The full traceback into the run's log file only (the terminal gets one line); its path."""
    handlers = _log_files()
    record = logging.LogRecord("diffusion_lab", logging.ERROR, __file__, 0, "run failed: %s: %s",
                               (type(err).__name__, err), (type(err), err, err.__traceback__))
    for handler in handlers:
        handler.handle(record)
    return handlers[0].baseFilename if handlers else None


def record_status(out: Path, status: str, err: BaseException, started: float) -> Path | None:
    """Write ``results.json`` with ``status`` and the error, never over finished earlier work."""
    if not out.is_dir():
        return None
    path = out / "results.json"
    try:
        earlier = json.loads(path.read_text()) if path.exists() and path.stat().st_mtime < started else None
    except (OSError, ValueError):
        earlier = None
    name = f"results_{status}.json" if earlier and earlier.get("status") == "finished" else "results.json"
    return write_results(out, {"status": status, "error": f"{type(err).__name__}: {err}",
                               "traceback": traceback.format_exc()}, name)


def run(cfg: DictConfig):
    """Validate, save the config, check a resume, then run ``cfg.task.run(cfg)``; returns its result dict."""
    out = Path(cfg.output_dir)
    started = time.time()
    try:
        validate(cfg)
        check_accelerator(cfg)
        check_resume(cfg)
        out.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, out / "config_resolved.yaml", resolve=True)
        if cfg.get("print_config", False):
            print_config_tree(cfg)
        log.info("task=%s  run directory: %s  (config: config_resolved.yaml)", cfg.task.name, out)
        result = get_method(cfg.task.run)(cfg)
        if isinstance(result, dict) and not _written_since(out / "results.json", started):
            write_results(out, {"status": "finished", **result})
        return result
    except (KeyboardInterrupt, SystemExit) as err:
        if isinstance(err, SystemExit) and err.code in (0, None):
            raise
        record_status(out, "interrupted", err, started)
        log.error("interrupted: results.json says status=interrupted; checkpoints/on_exception.ckpt holds "
                  "the state when training was running")
        raise
    except Exception as err:
        _traceback_to_log_file(err)
        record_status(out, "failed", err, started)
        if isinstance(err, ConfigError) or not _is_multirun():
            raise
        log.error("job failed (the sweep goes on): %s", err)
        return {"status": "failed"}
    finally:
        finish_wandb()


def _written_since(path: Path, started: float) -> bool:
    return path.exists() and path.stat().st_mtime >= started - 1e-3


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if isinstance(err, ConfigError) else f"{type(err).__name__}: {text}"


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="config")
def _hydra_main(cfg: DictConfig):
    try:
        result = run(cfg)
    except ConfigError as err:
        print(f"config error: {_one_line(err)}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        logs = [h.baseFilename for h in _log_files()]
        where = f"full traceback in {logs[0]}" if logs else "set HYDRA_FULL_ERROR=1 for the traceback"
        print(f"task={cfg.task.name} failed ({where}; status in {cfg.output_dir}/results.json)", file=sys.stderr)
        print(f"error: {_one_line(err)}", file=sys.stderr)
        sys.exit(1)
    metric = cfg.task.get("monitor")
    if isinstance(result, dict) and metric in result:  # the value Optuna sweepers optimise
        return result[metric]
    return None


def main() -> None:
    _hydra_main()

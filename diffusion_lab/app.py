"""The thin entry point: ``main -> run (validate, check resume, save config) -> task``.

``run`` always closes the W&B run, also on failure, and always leaves a ``results.json`` that says
how the run ended: ``finished`` (the task's own results), ``failed`` (error and traceback) or
``interrupted`` (Ctrl-C: exit 130, SIGTERM as sent by SLURM, Kubernetes or ``timeout``: exit 143;
Lightning's ``OnExceptionCheckpoint`` has saved ``checkpoints/on_exception.ckpt`` when training was
running, and the message says how to resume). A results file written before this process started
is never replaced by a failure record (that goes to ``results_<status>.json``). A directory that
holds a started or finished run is refused unless ``resume=true`` (``run_guard.RunDirGuard`` decides
before Hydra writes there; ``run`` checks again for runs started without Hydra's launcher).
In a multirun sweep a failing job is recorded and the sweep goes on with the next job.

On the command line an error is one line after a one-line header; the full traceback is in the
run directory's log file (``<job name>.log``) and in ``results.json``. ``HYDRA_FULL_ERROR=1`` raises.
The config is saved as ``config_resolved.yaml``; ``print_config=true`` also prints it as a tree.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import traceback
from pathlib import Path

import hydra
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

from diffusion_lab import resolvers  # noqa: F401  (registers ${dl.*} resolvers)
from diffusion_lab.config_schema import check_accelerator, validate
from diffusion_lab.errors import ConfigError
from diffusion_lab.logging_utils import finish_wandb, get_logger
from diffusion_lab.redaction import redact
from diffusion_lab.resolvers import conf_dir, in_multirun
from diffusion_lab.rich_utils import print_config_tree
from diffusion_lab.runs import check_fresh_output_dir, check_resume, read_status, write_results

log = get_logger("diffusion_lab")


def _log_files() -> list[logging.FileHandler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]


def _traceback_to_log_file(err: BaseException) -> str | None:
    """The full traceback into the run's log file only (the terminal gets one line); its path."""
    handlers = _log_files()
    text = redact("".join(traceback.format_exception(type(err), err, err.__traceback__)).rstrip("\n"))
    record = logging.LogRecord("diffusion_lab", logging.ERROR, __file__, 0, "run failed: %s: %s\n%s",
                               (type(err).__name__, redact(str(err)), text), None)
    for handler in handlers:
        handler.handle(record)
    return handlers[0].baseFilename if handlers else None


def record_status(out: Path, status: str, err: BaseException, started: float) -> Path | None:
    """Write ``results.json`` with ``status`` and the error, never over an earlier run's record (a finished,
    failed or interrupted run being resumed keeps its ``results.json``; this goes to ``results_<status>.json``)."""
    if not out.is_dir():
        return None
    path = out / "results.json"
    earlier = path.exists() and path.stat().st_mtime < started
    name = f"results_{status}.json" if earlier else "results.json"
    try:
        return write_results(out, {"status": status, "error": redact(f"{type(err).__name__}: {err}"),
                                   "traceback": redact(traceback.format_exc())}, name)
    except OSError as write_err:  # a full disk: say so instead of pointing at a file that is not there
        log.error("could not write %s (%s): the run's status is only in this log", out / name, write_err)
        return None


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived: raised from the signal handler, so Lightning's interrupt handling
    (``OnExceptionCheckpoint``) runs during ``fit`` and ``run`` records ``interrupted`` anywhere else."""


#: the signals a run records as ``interrupted``, with the shell's exit code for each (128 + number)
EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}
_received: list[signal.Signals] = []


def _on_signal(signum, frame) -> None:
    _received.append(signal.Signals(signum))
    raise Interrupted(f"{signal.Signals(signum).name} received")


def _install_signal_handlers() -> dict:
    """Our handler for SIGTERM and SIGINT (main thread only); returns the previous ones to restore."""
    previous = {}
    for sig in EXIT_CODES:
        try:
            previous[sig] = signal.signal(sig, _on_signal)
        except ValueError:  # not the main thread (a launcher's worker): the process default stays
            break
    return previous


def _resume_hint(cfg: DictConfig, out: Path) -> str:
    on_exc = out / "checkpoints" / "on_exception.ckpt"
    which = f" checkpoint={on_exc}" if on_exc.exists() else ""
    return f"resume with the same command plus: resume=true run_dir={out}{which}"


def run(cfg: DictConfig):
    """Validate, save the config, check a resume, then run ``cfg.task.run(cfg)``; returns its result dict."""
    out = Path(cfg.output_dir)
    started = time.time()
    check_fresh_output_dir(out, bool(cfg.get("resume")), key="output_dir")  # before anything is written there
    previous_handlers = _install_signal_handlers()
    _received.clear()
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
        if isinstance(err, SystemExit) and err.code in (0, None) and not _received:
            raise
        what = _received[0].name if _received else type(err).__name__
        record_status(out, "interrupted", Interrupted(f"{what} received") if _received else err, started)
        log.error("interrupted (%s): results.json says status=interrupted; %s", what, _resume_hint(cfg, out))
        print(f"interrupted ({what}): status in {out}/results.json; {_resume_hint(cfg, out)}", file=sys.stderr)
        if _received:  # the shell's convention, also when Lightning turned the interrupt into sys.exit(1)
            raise SystemExit(EXIT_CODES[_received[0]]) from None
        raise
    except Exception as err:
        _traceback_to_log_file(err)
        record_status(out, "failed", err, started)
        if isinstance(err, ConfigError) or not in_multirun():
            raise
        log.error("job failed (the sweep goes on): %s", err)
        return {"status": "failed"}
    finally:
        finish_wandb()
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)


def _written_since(path: Path, started: float) -> bool:
    return path.exists() and path.stat().st_mtime >= started - 1e-3


def _status_file(out: Path) -> str:
    """Where the failure record is: ``results_failed.json`` beside an earlier run's ``results.json``, or
    neither when the disk was full (said, never pointed at a file that is not there)."""
    for name in ("results_failed.json", "results.json"):
        path = out / name
        if read_status(path) == "failed":
            return f"status in {path}"
    return f"no failure record could be written in {out} (disk full or not writable?)"


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if isinstance(err, ConfigError) else f"{type(err).__name__}: {text}"


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="config")
def _hydra_main(cfg: DictConfig):
    try:
        result = run(cfg)
    except ConfigError as err:
        print(f"config error: {redact(_one_line(err))}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        logs = [h.baseFilename for h in _log_files()]
        where = f"full traceback in {logs[0]}" if logs else "set HYDRA_FULL_ERROR=1 for the traceback"
        print(f"task={cfg.task.name} failed ({where}; {_status_file(Path(cfg.output_dir))})", file=sys.stderr)
        print(f"error: {redact(_one_line(err))}", file=sys.stderr)
        sys.exit(1)
    metric = cfg.task.get("monitor")
    if isinstance(result, dict) and metric in result:  # the value Optuna sweepers optimise
        return result[metric]
    return None


def main() -> None:
    _hydra_main()

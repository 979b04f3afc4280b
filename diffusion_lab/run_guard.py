"""A Hydra callback that decides about a job's directory before Hydra writes into it.

Hydra creates the run directory, writes ``.hydra/`` and opens the log file before the task function
starts, so a check in ``app.run`` alone comes too late to protect a finished run that a new one is
pointed at (``hydra.run.dir=<finished run>``). ``RunDirGuard`` (``hydra.callbacks`` in conf/config.yaml)
runs first: an unwritable directory, or one that holds a started or finished run without
``resume=true``, fails as one ``config error:`` line (exit 2) with nothing written. With ``resume=true``
in place the resume check (run kind, config differences) runs here too. ``app.run`` repeats the same
checks for runs started without Hydra's launcher (the Compose API, tests).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from diffusion_lab.errors import ConfigError
from diffusion_lab.runs import RUN_MARKERS, check_fresh_output_dir, check_resume, check_writable_dir


def _refuse(err: ConfigError) -> None:
    print(f"config error: {' '.join(str(err).split())}", file=sys.stderr)
    sys.exit(2)


class RunDirGuard(Callback):
    """``on_run_start``: check ``hydra.run.dir``; ``on_multirun_start``: check ``hydra.sweep.dir``'s jobs."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        try:
            out = Path(str(OmegaConf.select(config, "hydra.run.dir"))).absolute()
            resume = bool(config.get("resume"))
            check_fresh_output_dir(out, resume)
            if resume and (out / "config_resolved.yaml").exists() and not config.get("run_dir"):
                self._check_resume_in_place(config, out)
            check_writable_dir(out)
        except ConfigError as err:
            _refuse(err)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        try:
            sweep = Path(str(OmegaConf.select(config, "hydra.sweep.dir"))).absolute()
            if not config.get("resume") and sweep.is_dir():
                for job in sorted(p for p in sweep.iterdir() if p.is_dir()):
                    if any((job / m).exists() for m in RUN_MARKERS):
                        check_fresh_output_dir(job, False, key="hydra.sweep.dir job")
            check_writable_dir(sweep, key="hydra.sweep.dir")
        except ConfigError as err:
            _refuse(err)

    @staticmethod
    def _check_resume_in_place(config: DictConfig, out: Path) -> None:
        """``resume=true`` in ``out`` itself: the run kind and config check, before Hydra rewrites ``.hydra/``."""
        cfg = copy.deepcopy(config)
        with open_dict(cfg):
            cfg.output_dir = str(out)  # ${hydra:runtime.output_dir} is set only when the job starts
            del cfg["hydra"]
        check_resume(cfg)

"""The thin entry point: ``main -> run (validate, print, save config) -> task``.

``run`` always closes the W&B run, also on failure. In a multirun sweep a failing job is recorded
(``results.json`` with ``status: failed`` and the error) and the sweep goes on with the next job.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

from diffusion_lab import resolvers  # noqa: F401  (registers ${dl.*} resolvers)
from diffusion_lab.config_schema import ConfigError, validate
from diffusion_lab.logging_utils import finish_wandb
from diffusion_lab.rich_utils import print_config_tree

log = logging.getLogger("diffusion_lab")


def conf_dir() -> str:
    """``diffusion_lab/conf``: a symlink to the top-level ``conf/`` in a checkout, a copy in a wheel."""
    return str(Path(__file__).parent / "conf")


def _is_multirun() -> bool:
    return HydraConfig.initialized() and str(HydraConfig.get().mode) == "RunMode.MULTIRUN"


def run(cfg: DictConfig):
    """Validate, show and save the config, then run ``cfg.task.run(cfg)``; returns its result dict."""
    out = Path(cfg.output_dir)
    try:
        validate(cfg)
        out.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, out / "config_resolved.yaml", resolve=True)
        if cfg.get("print_config", True):
            print_config_tree(cfg)
        return get_method(cfg.task.run)(cfg)
    except ConfigError:
        raise
    except Exception as err:
        if not _is_multirun():
            raise
        log.error("job failed (the sweep goes on): %s", err)
        (out / "results.json").write_text(json.dumps(
            {"status": "failed", "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()},
            indent=2))
        return {"status": "failed"}
    finally:
        finish_wandb()


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="config")
def _hydra_main(cfg: DictConfig):
    try:
        result = run(cfg)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        sys.exit(2)
    metric = cfg.task.get("monitor")
    if isinstance(result, dict) and metric in result:  # the value Optuna sweepers optimise
        return result[metric]
    return None


def main() -> None:
    _hydra_main()

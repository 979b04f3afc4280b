"""Find the jobs of a sweep (or single runs) and read each into one flat row.

A job directory is one holding ``results.json``, ``config_resolved.yaml`` or ``.hydra/overrides.yaml``
(a job killed before writing results still shows up, as ``missing``). Its swept values come from
Hydra's ``.hydra/overrides.yaml`` (parsed with Hydra's own override parser); without it, from the
keys of ``config_resolved.yaml`` that differ between the jobs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from diffusion_lab.logging_utils import get_logger

log = get_logger(__name__)

#: overrides that differ per job without being an experimental factor
IGNORED_KEYS = ("hydra", "output_dir", "run_dir", "print_config")


@dataclass
class Job:
    path: Path
    status: str                                          # finished | failed | interrupted | missing | unreadable
    error: str | None = None
    overrides: dict[str, object] = field(default_factory=dict)
    config: dict[str, object] = field(default_factory=dict)   # flattened resolved config
    metrics: dict[str, float] = field(default_factory=dict)   # flattened numeric results
    monitor: str | None = None                           # the job's task.monitor


def find_job_dirs(root: Path) -> list[Path]:
    """``root`` itself when it is a job, else every job directory below it, in a stable order."""
    markers = ("results.json", "config_resolved.yaml", ".hydra/overrides.yaml")
    found = {p.parent if p.name != "overrides.yaml" else p.parent.parent
             for m in markers for p in root.rglob(m)}
    if any((root / m).exists() for m in markers):
        found.add(root)
    # a job's own subfolders (e.g. wandb/) never hold these, but nested sweeps could: keep the leaves
    jobs = [d for d in found if not any(o != d and d in o.parents for o in found)]
    return sorted(jobs, key=lambda d: [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in d.relative_to(root).parts])


def parse_overrides(lines: list[str]) -> dict[str, object]:
    """``["masking=loglinear", "masking.max_rate=0.5", "+experiment=x"]`` -> typed ``{key: value}``."""

    out = {}
    for ov in OverridesParser.create().parse_overrides(lines):
        key = ov.key_or_group
        if ov.is_delete() or key.split(".")[0] in IGNORED_KEYS:
            continue
        out[key] = ov.value()
    return out


def flatten(node, prefix: str = "") -> dict[str, object]:
    """Nested dicts -> ``{"a/b": leaf}`` (lists are kept as leaves)."""
    out = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}/"))
        else:
            out[name] = value
    return out


def numeric_results(results: dict) -> dict[str, float]:
    """Numbers of a ``results.json``: top-level scalars, ``metrics``, and classifier ``models``
    (``{"generative": {"accuracy": 0.8}}`` -> ``generative/accuracy``) and ``validation``
    (-> ``validation/generative/accuracy``)."""
    out: dict[str, float] = {}

    def take(key, value):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return
        out.setdefault(key, float(value))

    for key, value in results.items():
        take(key, value)
    for key, value in (results.get("metrics") or {}).items():
        take(key, value)
    for model, values in (results.get("models") or {}).items():
        if isinstance(values, dict):
            for key, value in flatten(values).items():
                take(f"{model}/{key}", value)
    for model, values in (results.get("validation") or {}).items():  # validation-only jobs (a sweep's)
        if isinstance(values, dict):
            for key, value in flatten(values).items():
                take(f"validation/{model}/{key}", value)
    return out


def read_results(path: Path) -> tuple[dict | None, str | None]:
    """(results, None), (None, None) when absent, or (None, why) when the file cannot be read."""
    if not path.exists():
        return None, None
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return None, f"{path} is unreadable ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
    if not isinstance(results, dict):
        return None, f"{path} is unreadable (a JSON {type(results).__name__}, not an object)"
    return results, None


def read_job(path: Path) -> Job:
    results, unreadable = read_results(path / "results.json")
    if unreadable:
        log.warning("report: %s; the other jobs go on", unreadable)
        job = Job(path, "unreadable", error=unreadable)
    elif results is None:
        job = Job(path, "missing", error="no results.json (killed, still running, or crashed hard)")
    else:
        job = Job(path, results.get("status", "finished"), error=results.get("error"))
        job.metrics = numeric_results(results)
    overrides = path / ".hydra" / "overrides.yaml"
    config = path / "config_resolved.yaml"
    try:
        if overrides.exists():
            job.overrides = parse_overrides(list(OmegaConf.load(overrides)))
        if config.exists():
            cfg = OmegaConf.to_container(OmegaConf.load(config), resolve=False)
            job.config = {k: v for k, v in flatten(cfg, "").items() if not isinstance(v, list)}
            job.monitor = ((cfg.get("task") or {}).get("monitor")) if isinstance(cfg, dict) else None
    except Exception as err:  # a damaged config file marks this job, never aborts the report
        why = f"config of {path} is unreadable ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        log.warning("report: %s; the other jobs go on", why)
        job.status, job.error = "unreadable", why
    return job


def collect(roots: list[Path]) -> list[Job]:
    jobs = [read_job(d) for root in roots for d in find_job_dirs(Path(root))]
    # an earlier report's own run directory (e.g. <sweep>/report) is not a job of the sweep
    jobs = [j for j in jobs if j.config.get("task/name") != "report"]
    if not jobs:
        raise FileNotFoundError(
            f"no runs found under {', '.join(map(str, roots))}: expected directories with results.json "
            "(a sweep directory like multirun/train_lm/<date>/<time>, or one run directory)"
        )
    return jobs


def swept_keys(jobs: list[Job]) -> list[str]:
    """The keys whose value differs between jobs, in command-line order.

    From Hydra's overrides when every job has them; otherwise from the resolved configs
    (``a/b`` keys turned back into ``a.b``), ignoring per-job paths.
    """
    if all(j.overrides for j in jobs):
        source = [j.overrides for j in jobs]
    else:
        source = [{k.replace("/", "."): v for k, v in j.config.items()} for j in jobs]
    keys: list[str] = []
    for values in source:
        keys += [k for k in values if k not in keys]
    keys = [k for k in keys if k.split(".")[0] not in IGNORED_KEYS and not k.endswith(("_dir", "_path"))
            or k.startswith("dataset.")]
    return [k for k in keys if len({repr(v.get(k)) for v in source}) > 1]


def swept_value(job: Job, key: str):
    if key in job.overrides:
        return job.overrides[key]
    return job.config.get(key.replace(".", "/"))

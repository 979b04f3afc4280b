"""Run directories: what a run leaves behind, read and written (rebuilding a model from one:
``run_loading``).

A run directory holds ``config_resolved.yaml`` (and Hydra's ``.hydra/``), ``tokenizer/``,
``checkpoints/{best,last}.ckpt``, ``metrics.csv``, ``results.json`` and samples. Later tasks
(generate, evaluate, visualize) take ``run_dir=`` and call ``run_loading.load_run``; they check first that the
directory is the right kind of run (``require_run_kind``). ``resume=true`` compares the composed
config with the run's own (``check_resume_config``) and checks the checkpoint is readable before
anything in the run directory is touched (``check_checkpoint_readable``). ``write_results`` is atomic.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
from pathlib import Path

import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, ListConfig, OmegaConf

from diffusion_lab.errors import ConfigError
from diffusion_lab.logging_utils import get_logger
from diffusion_lab.targets import with_targets

log = get_logger(__name__)

#: keys a resumed run may change without naming them: the budget, where things go, how it is shown and
#: observed (callbacks: checkpointing, progress bars, monitors); never the model, data, schedule or optimiser
RESUME_FREE_KEYS = ("resume", "resume_override", "run_dir", "output_dir", "checkpoint", "print_config", "tags",
                    "data_dir", "logger", "trainer.max_epochs", "trainer.max_steps", "trainer.max_time",
                    "trainer.enable_progress_bar", "trainer.enable_model_summary", "trainer.log_every_n_steps",
                    "callbacks", "data.num_workers")


def write_results(run_dir: Path, results: dict, name: str = "results.json") -> Path:
    """Write ``results.json`` (machine-readable final metrics) on rank zero only, atomically.

    The JSON goes to a temporary file in the same directory, is flushed to disk, then replaces
    ``name`` with ``os.replace``: a kill at any moment leaves either the previous file or the new one,
    never a truncated one.
    """
    path = Path(run_dir) / name
    if getattr(rank_zero_only, "rank", 0) != 0:
        return path
    text = json.dumps(results, indent=2, default=float)  # serialise first: a bad value fails before any write
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the run's other files follow the umask
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: what diffusion_lab leaves in a run directory once a run has started (Hydra's own ``.hydra/`` and log are not)
RUN_MARKERS = ("config_resolved.yaml", "results.json", "checkpoints")


def read_status(results_file: Path) -> str | None:
    """The ``status`` a results file records, or None when it is absent or unreadable."""
    try:
        return json.loads(Path(results_file).read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def started_run(path: Path) -> str | None:
    """A one-line description of the run ``path`` holds (``task=train_lm run, status finished``), or None.

    An attempt that failed before writing any checkpoint (a bad value, a missing file) is not a run to
    protect: its directory may be used again, and its record is replaced."""
    path = Path(path)
    found = [m for m in RUN_MARKERS if (path / m).exists()]
    if not found or (read_status(path / "results.json") == "failed" and not (path / "checkpoints").exists()):
        return None
    facts = []
    try:
        facts.append(f"task={run_kind(path)} run")
    except (FileNotFoundError, ValueError, OSError):
        facts.append("run")
    status = read_status(path / "results.json")
    facts.append(f"status {status}" if status else "no readable results.json (started or killed)")
    return ", ".join(facts) + f" ({', '.join(found)})"


def check_fresh_output_dir(out: Path, resume: bool, key: str = "hydra.run.dir") -> None:
    """Refuse to start a new run in a directory that holds a started or finished run, unless ``resume=true``.

    Lightning would continue its ``last.ckpt`` and the new run would replace the old one's config, metrics
    and results: two runs must never write into one directory. Called before anything is written there.
    """
    if resume or getattr(rank_zero_only, "rank", 0) != 0:
        return  # ranks > 0 of a multi-process run start in rank 0's directory on purpose
    what = started_run(out)
    if what is not None:
        raise ConfigError(
            f"{key}={out} already holds a {what}; a new run never writes into another run's directory. "
            f"Choose another {key} (or leave it unset: every run gets its own), or continue that run with "
            f"resume=true run_dir={out}"
        )


def check_writable_dir(out: Path, key: str = "hydra.run.dir") -> None:
    """Create ``out`` (and its parents) now, so an unwritable place fails as one line naming the key."""
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out, prefix=".write_probe.", delete=True)
        probe.close()
    except OSError as err:
        raise ConfigError(f"{key}={out} cannot be written ({err.strerror or err}); choose a writable "
                          f"directory with {key}=<path> (or hydra.sweep.dir=<path> for -m)") from None


def run_kind(run_dir: Path) -> str | None:
    """The ``task.name`` that made ``run_dir`` (from its saved config), or None."""
    cfg = load_run_config(run_dir)
    task = cfg.get("task") if isinstance(cfg, DictConfig) else None
    return task.get("name") if task is not None else None


def require_run_kind(run_dir, allowed_tasks, what: str) -> Path:
    """``run_dir`` as a Path if it was made by one of ``allowed_tasks``, else a one-line ``ConfigError``.

    ``what`` says who asks, e.g. ``"task=visualize"`` or ``"resume=true with task=train_lm"``.
    """
    allowed = [allowed_tasks] if isinstance(allowed_tasks, str) else list(allowed_tasks)
    needs = " or ".join(f"task={t}" for t in allowed)
    if not run_dir:
        raise ConfigError(f"{what} needs run_dir=<directory of a {needs} run>")
    path = Path(str(run_dir)).expanduser()
    if not path.is_dir():
        raise ConfigError(f"run_dir={path}: no such directory ({what} needs a {needs} run)")
    try:
        kind = run_kind(path)
    except FileNotFoundError as err:
        raise ConfigError(f"{what}: {err}") from None
    if kind not in allowed:
        raise ConfigError(f"run_dir={path} is a task={kind} run; {what} needs the directory of a {needs} run")
    return path


def _flat(node, prefix: str = "") -> dict:
    out = {}
    for key, value in (node.items() if isinstance(node, dict) else []):
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = value
    return out


def _covered(key: str, names) -> bool:
    return any(key == n or key.startswith(f"{n}.") for n in names)


def config_differences(cfg: DictConfig, saved: DictConfig) -> dict[str, tuple]:
    """``{key: (saved value, composed value)}`` for every leaf that differs.

    Keys whose composed value is an interpolation of another key (``datamodule.batch_size:
    ${data.batch_size}``) are left out: the key they copy is reported instead.
    """
    raw = _flat(OmegaConf.to_container(cfg, resolve=False))
    new = _flat(OmegaConf.to_container(cfg, resolve=True))
    old = _flat(OmegaConf.to_container(saved, resolve=False))
    diffs = {}
    for key in sorted(set(new) | set(old)):
        if isinstance(raw.get(key), str) and "${" in raw[key]:
            continue
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if a != b:
            diffs[key] = (a, b)
    return diffs


def check_resume_config(cfg: DictConfig, run_dir) -> dict[str, tuple]:
    """Refuse to resume ``run_dir`` with a config that differs from the one it was trained with.

    Differences in ``RESUME_FREE_KEYS`` (budget, paths, display) are allowed; any other key must be
    named in ``resume_override=[key,...]`` (a key also covers everything below it;
    ``resume_override=true`` accepts every difference). Returns the accepted differences.
    Called by ``app.run`` for every task with ``resume=true``, before anything is written.
    """
    run_dir = Path(str(run_dir))
    saved = load_run_config(run_dir)
    override = cfg.get("resume_override") or []
    accept_all = override is True
    names = [] if accept_all else [str(k) for k in (override if isinstance(override, ListConfig | list) else [override])]
    diffs = config_differences(cfg, saved)
    refused = {k: v for k, v in diffs.items() if not accept_all and not _covered(k, (*RESUME_FREE_KEYS, *names))}
    if refused:
        shown = "; ".join(f"{k}: {_short(a)} -> {_short(b)}" for k, (a, b) in list(refused.items())[:6])
        more = f" (and {len(refused) - 6} more)" if len(refused) > 6 else ""
        raise ConfigError(
            f"resume=true: this config differs from the one {run_dir} was trained with: {shown}{more}. "
            f"Compose it as before (the same +experiment=... and overrides; see {run_dir}/.hydra/overrides.yaml), "
            f"or accept the change with resume_override=[{','.join(refused)}]"
        )
    accepted = {k: v for k, v in diffs.items() if not _covered(k, RESUME_FREE_KEYS)}
    if accepted:
        log.warning("resume=true with changed keys (resume_override): %s",
                    ", ".join(f"{k}: {_short(a)} -> {_short(b)}" for k, (a, b) in accepted.items()))
    return accepted


def resume_dir(cfg: DictConfig) -> Path | None:
    """The run ``resume=true`` continues (``run_dir``, else this run's own directory), or None."""
    if not cfg.get("resume"):
        return None
    return Path(str(cfg.run_dir)) if cfg.get("run_dir") else Path(cfg.output_dir)


def check_resume(cfg: DictConfig) -> None:
    """``resume=true``: the run must be of this task, and its config the same (``check_resume_config``)."""
    base = resume_dir(cfg)
    if base is None:
        return
    if not (base / "config_resolved.yaml").exists() and not (base / ".hydra" / "config.yaml").exists():
        return  # nothing to compare with: the task reports the missing checkpoint
    require_run_kind(base, [cfg.task.name], f"resume=true with task={cfg.task.name}")
    check_resume_config(cfg, base)


def _short(value, n: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def record_resume_config(cfg: DictConfig, run_dir: Path) -> None:
    """After a resume has been accepted: the run's ``config_resolved.yaml`` becomes this config,
    the previous one kept as ``config_before_resume_<n>.yaml``."""
    run_dir = Path(run_dir)
    current = run_dir / "config_resolved.yaml"
    if getattr(rank_zero_only, "rank", 0) != 0 or Path(cfg.output_dir).resolve() == run_dir.resolve():
        return  # resuming in place: app.run has saved this config there already
    if current.exists():
        n = len(list(run_dir.glob("config_before_resume_*.yaml")))
        os.replace(current, run_dir / f"config_before_resume_{n}.yaml")
    OmegaConf.save(cfg, current, resolve=True)


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


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read; the message names the file and a real alternative."""


def _alternatives(path: Path, key: str) -> str:
    """Other checkpoints beside ``path`` that are non-empty, as ``key=<path>`` suggestions."""
    others = [p for p in sorted(Path(path).parent.glob("*.ckpt"))
              if p.resolve() != Path(path).resolve() and p.stat().st_size > 0]
    if not others:
        return f"there is no other checkpoint in {Path(path).parent}; retrain (or restore the file from a backup)"
    return "try " + " or ".join(f"{key}={p}" for p in others)


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that holds more than tensors and plain values: unpickling it could run code."""


def _unsupported_global(text: str) -> str:
    """The global torch's restricted unpickler refused (e.g. ``posix.system``), from its error text."""
    match = re.search(r"(?:unsupported GLOBAL|Unsupported global:?)\s+(?:GLOBAL\s+)?([\w.]+)", text, re.IGNORECASE)
    return f"a reference to {match.group(1)}" if match else ""


def _load(path: Path, key: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        # weights_only: torch's restricted unpickler (tensors, containers, numbers, strings); a shared run
        # directory must never be able to run code on the machine that loads it
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or "state_dict" not in state:
            raise ValueError("no state_dict inside")
        return state
    except Exception as err:
        found = _unsupported_global(str(err)) if isinstance(err, pickle.UnpicklingError) else ""
        if found:
            raise UnsafeCheckpointError(
                f"checkpoint {path} refused: it holds objects other than tensors and plain values ({found}), "
                f"and unpickling them could run code. diffusion_lab loads checkpoints with "
                f"torch.load(weights_only=True) only; use a checkpoint written by diffusion_lab, or re-save a "
                f"trusted one as a plain state_dict"
            ) from None
        reason = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
        if "weights_only" in str(err):  # torch's long weights-only notice says nothing about the file
            reason = "not a torch checkpoint"
        size = path.stat().st_size
        raise CheckpointError(
            f"checkpoint {path} is unreadable ({size} bytes, {'empty' if size == 0 else 'truncated or corrupt'}: "
            f"{reason}); {_alternatives(path, key)}"
        ) from None


def load_checkpoint(path: Path) -> dict:
    """A checkpoint's contents, or one ``CheckpointError`` naming the file and the other checkpoints."""
    return _load(path, "checkpoint")


def check_checkpoint_readable(path: Path) -> None:
    """Before a resume touches anything: ``path`` must load (the alternatives are ``checkpoint=<path>``)."""
    _load(path, "resume=true checkpoint")


def load_run_config(run_dir: str | Path) -> DictConfig:
    """The run's saved config; one saved before the ``targets`` table gets the package's (``targets.with_targets``),
    so older runs rebuild, and resume without a difference on those keys."""
    run_dir = Path(run_dir)
    for candidate in (run_dir / "config_resolved.yaml", run_dir / ".hydra" / "config.yaml"):
        if candidate.exists():
            return with_targets(OmegaConf.load(candidate))
    raise FileNotFoundError(
        f"run_dir={run_dir} holds no config_resolved.yaml or .hydra/config.yaml: not a diffusion_lab run directory"
    )

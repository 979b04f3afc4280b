"""The test-access ledger: every scoring of a test split appends one JSON line to ``eval.test_ledger``
(``test_ledger.jsonl`` in the directory runs start from, beside ``outputs/`` and ``multirun/``).

A line holds the dataset, the hash of the scored test items (texts and labels, order-free), the run, the
hash of the run's configuration, and the test metrics. ``configurations`` of a new line counts the distinct
configuration hashes that have scored the SAME items so far: reporting the best of N configurations on one
test set is optimistic by roughly the spread of those N numbers, so results.json and ``task=report`` carry N.
The honest protocol is to select on validation and score the chosen run's test split once.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

#: config keys that name where a run lives or how it logs, not what it is: left out of the config hash
NOT_THE_CONFIGURATION = ("output_dir", "run_dir", "data_dir", "logger", "print_config", "tags", "resume",
                         "resume_override", "hydra", "callbacks", "checkpoint")


def items_hash(texts: Iterable[str], labels: Iterable[int]) -> str:
    """sha256 over the sorted per-item hashes of ``(label, text)``: the same items in any order, one hash."""
    per_item = sorted(hashlib.sha256(f"{int(y)}\t{t}".encode()).hexdigest() for t, y in zip(texts, labels, strict=True))
    return hashlib.sha256("\n".join(per_item).encode()).hexdigest()


def config_hash(config: Mapping) -> str:
    """sha256 of the resolved configuration without ``NOT_THE_CONFIGURATION`` (keys sorted)."""
    kept = {k: v for k, v in config.items() if k not in NOT_THE_CONFIGURATION}
    if isinstance(kept.get("eval"), Mapping):  # where the ledger lives is not part of what was scored
        kept["eval"] = {k: v for k, v in kept["eval"].items() if k not in ("test_ledger", "test_in_sweep")}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


def record(path: str | Path, *, dataset: str, items: str, n: int, run: str, config: str, task: str,
           metrics: Mapping[str, float]) -> dict:
    """Append one line (under an exclusive lock: a parallel sweep's jobs may record at once) and return
    ``{"ledger", "items", "configurations", "scorings"}`` counted over the ledger including this line."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "task": task, "dataset": dataset,
            "items": items, "n": int(n), "run": str(run), "config": config,
            "metrics": {k: float(v) for k, v in metrics.items()}}
    with open(path, "a+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.seek(0)
            earlier = [_parse(raw) for raw in f.read().splitlines() if raw.strip()]
            f.seek(0, 2)
            f.write(json.dumps(line) + "\n")
            f.flush()
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
    same = [e for e in [*earlier, line] if e.get("items") == items]
    return {"ledger": str(path.resolve()), "items": items, "configurations": len({e.get("config") for e in same}),
            "scorings": len(same)}


def _parse(raw: str) -> dict:
    try:
        entry = json.loads(raw)
    except ValueError:
        entry = None
    if not isinstance(entry, dict):  # a hand-edited or cut line: counted as nothing, never fails a finished run
        return {}
    return entry


def record_run(cfg, *, task: str, config, dataset: str, texts: list[str], labels: list[int], run,
               metrics: Mapping[str, float]) -> dict:
    """``record`` at ``cfg.eval.test_ledger`` for a run whose scored configuration is ``config`` (a DictConfig
    or mapping: the trained run's, plus any scoring options). Returns the fields a results file carries,
    ``{"test_access": <record's counts>, "test_configurations": N}``, or ``{}`` when the ledger is off."""
    path = cfg.get("eval", {}).get("test_ledger")
    if not path:
        return {}

    if isinstance(config, DictConfig):
        try:
            config = OmegaConf.to_container(config, resolve=True)
        except Exception:  # an interpolation only its own run could resolve (hydra:...): hash it unresolved
            config = OmegaConf.to_container(config, resolve=False)
    access = record(path, dataset=dataset, items=items_hash(texts, labels), n=len(labels), run=str(run),
                    config=config_hash(config), task=task, metrics=metrics)
    return {"test_access": access, "test_configurations": access["configurations"]}

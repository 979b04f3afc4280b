"""``task=train_lm``: train a language model, report its validation bound, save samples and results."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import lightning as L
from omegaconf import DictConfig

from diffusion_lab.builders import build_datamodule, build_lm, build_trainer, unigram_init
from diffusion_lab.logging_utils import get_logger
from diffusion_lab.runs import check_checkpoint_readable, record_resume_config, write_results

log = get_logger(__name__)


def resume_target(cfg: DictConfig) -> tuple[Path, str | None]:
    """Where this run writes and which checkpoint it continues from.

    ``resume=true``: continue ``<run_dir or output_dir>/checkpoints/last.ckpt`` (or an explicit
    ``checkpoint=<path>``, e.g. ``best.ckpt`` or ``on_exception.ckpt``) in that directory. The
    checkpoint is read first; only then is the earlier ``metrics.csv`` kept as
    ``metrics_before_resume_<n>.csv`` and ``results.json`` as ``results_before_resume_<n>.json`` (the resumed run
    replaces both: resuming a finished run must not lose its metrics) and the run's
    ``config_resolved.yaml`` updated. ``app.run`` has already compared the configs.
    """
    out = Path(cfg.output_dir)
    if not cfg.get("resume"):
        return out, None
    base = Path(cfg.run_dir) if cfg.get("run_dir") else out
    which = str(cfg.get("checkpoint") or "last")
    last = Path(which) if which not in ("best", "last") else base / "checkpoints" / "last.ckpt"
    if not last.exists():
        raise FileNotFoundError(
            f"resume=true but {last} does not exist. Point run_dir= at the interrupted run's directory."
        )
    check_checkpoint_readable(last)  # a corrupt file fails here, before anything in the run is moved
    record_resume_config(cfg, base)
    for name, suffix in (("metrics", "csv"), ("results", "json")):  # the resumed run replaces both
        earlier = base / f"{name}.{suffix}"
        if earlier.exists():
            n = len(list(base.glob(f"{name}_before_resume_*.{suffix}")))
            shutil.copy(earlier, base / f"{name}_before_resume_{n}.{suffix}")
    log.info("resuming from %s", last)
    return base, str(last)


def collect_results(trainer: L.Trainer, module, started: float) -> dict:
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    ckpt = trainer.checkpoint_callback
    return {
        "status": "finished" if trainer.global_step > 0 else "no_steps",
        "metrics": metrics,
        **{k: v for k, v in metrics.items() if k.startswith("val/")},
        "train_tokens_per_s": module.train_tokens_per_s(),
        "global_step": trainer.global_step,
        "epochs": trainer.current_epoch,
        "best_checkpoint": getattr(ckpt, "best_model_path", None),
        "best_score": float(ckpt.best_model_score) if ckpt is not None and ckpt.best_model_score is not None else None,
        "num_parameters": sum(p.numel() for p in module.parameters()),
        "wall_s": time.time() - started,
        "samples": list(getattr(module, "last_samples", [])),
    }


def run(cfg: DictConfig) -> dict:
    started = time.time()
    L.seed_everything(cfg.seed, workers=True)
    run_dir, ckpt_path = resume_target(cfg)
    dm = build_datamodule(cfg, cache_dir=run_dir)
    module = build_lm(cfg, dm.tokenizer, samples_dir=run_dir)
    if ckpt_path is None:
        dm.setup()
        unigram_init(cfg, dm, [module.backbone])
    trainer = build_trainer(cfg, run_dir)
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)  # never unpickle code
    results = collect_results(trainer, module, started)
    results["dataset_stats"] = dm.splits.stats
    write_results(run_dir, results)
    log.info("val/nll_per_token=%s  ppl_bound=%s  tokens/s=%.0f", results.get("val/nll_per_token"),
             results.get("val/ppl_bound"), results["train_tokens_per_s"] or 0)
    return results

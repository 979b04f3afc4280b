"""Build the run's objects from the composed config: datamodule, language model, trainer.

Everything goes through ``hydra.utils.instantiate``; the only table here maps
``model.objective`` to its LightningModule class.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from diffusion_lab.config_schema import ConfigError
from diffusion_lab.logging_utils import build_loggers


def lm_classes() -> dict:
    from diffusion_lab.models.diffusion_lm import DiffusionLM

    classes = {"diffusion": DiffusionLM}
    try:
        from diffusion_lab.models.ar_lm import AutoregressiveLM

        classes["autoregressive"] = AutoregressiveLM
    except ImportError:  # pragma: no cover - the GPT-2 issue adds it
        pass
    return classes


def build_datamodule(cfg: DictConfig, cache_dir: Path | None):
    dm = instantiate(cfg.datamodule, cache_dir=str(cache_dir) if cache_dir else None)
    dm.prepare_tokenizer()
    return dm


def build_backbone(cfg: DictConfig, tokenizer, num_conditions: int = 0):
    return instantiate(
        cfg.model.backbone, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
        num_conditions=num_conditions, max_length=cfg.data.max_length + 8,
    )


def build_lm(cfg: DictConfig, tokenizer, num_conditions: int = 0, samples_dir: Path | None = None,
             backbone=None):
    """The LightningModule for ``model.objective`` (diffusion or autoregressive)."""
    classes = lm_classes()
    objective = cfg.model.objective
    if objective not in classes:
        raise ConfigError(f"model.objective={objective!r}: allowed values are {', '.join(classes)}")
    task = cfg.task
    return classes[objective](
        backbone=backbone if backbone is not None else build_backbone(cfg, tokenizer, num_conditions),
        masking=instantiate(cfg.masking),
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        mask_token_id=tokenizer.mask_token_id,
        eval_draws=task.get("eval_draws", 4),
        eval_seed=task.get("eval_seed", 0),
        seed=cfg.seed,
        uncond_prob=task.get("uncond_prob", 0.1),
        sampler=instantiate(cfg.sampler),
        tokenizer=tokenizer,
        num_samples=task.get("num_samples", 4),
        sample_length=task.get("sample_length", 48),
        samples_dir=str(samples_dir) if samples_dir else None,
    )


def build_trainer(cfg: DictConfig, run_dir: Path, **overrides) -> L.Trainer:
    """Trainer from ``cfg.trainer`` with the configured callbacks and loggers, writing into ``run_dir``."""
    callbacks = []
    for name, cb_cfg in (cfg.get("callbacks") or {}).items():
        if cb_cfg is None or "_target_" not in cb_cfg:
            continue
        extra = {"dirpath": str(run_dir / "checkpoints")} if name == "model_checkpoint" else {}
        callbacks.append(instantiate(cb_cfg, **extra))
    return instantiate(
        cfg.trainer, callbacks=callbacks, logger=build_loggers(cfg, run_dir),
        default_root_dir=str(run_dir), **overrides,
    )

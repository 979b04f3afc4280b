"""Build the run's objects from the composed config: datamodule, language model, trainer.

Everything goes through ``hydra.utils.instantiate``; the LightningModule is the ``_target_`` that
``model.objective`` names in the ``targets.objective`` table of conf/config.yaml (``diffusion_lab.targets``).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from diffusion_lab.batch_size import batch_plan
from diffusion_lab.errors import ConfigError
from diffusion_lab.logging_utils import build_loggers
from diffusion_lab.models.denoiser import subs_token_ids
from diffusion_lab.models.init_from import init_from_run
from diffusion_lab.models.unigram import unigram_log_probs
from diffusion_lab.resolvers import in_multirun
from diffusion_lab.targets import target_node


def build_datamodule(cfg: DictConfig, cache_dir: Path | None):
    """The datamodule; with ``data.global_batch_size`` its batch is the derived per-device batch."""
    plan = batch_plan(cfg)
    extra = {"batch_size": plan[0]} if plan else {}
    dm = instantiate(cfg.datamodule, cache_dir=str(cache_dir) if cache_dir else None, **extra)
    dm.prepare_tokenizer()
    return dm


#: tokens a model may add in front of a window: the label token (conditional classifier) or the
#: start token (autoregressive); a window of ``data.max_length`` tokens must fit with it
PREFIX_TOKENS = 1


def build_backbone(cfg: DictConfig, tokenizer, num_conditions: int = 0):
    backbone = instantiate(
        cfg.model.backbone, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
        num_conditions=num_conditions, max_length=cfg.data.max_length + 8,
    )
    if cfg.model.get("subs", False) and cfg.model.objective == "diffusion":  # SUBS: models/denoiser.py
        backbone.suppress_tokens(subs_token_ids(tokenizer))
    limit = getattr(backbone, "max_positions", None)
    if limit is not None and cfg.data.max_length + PREFIX_TOKENS > limit:
        raise ConfigError(
            f"data.max_length={cfg.data.max_length}: with the label/start token a window holds "
            f"{cfg.data.max_length + PREFIX_TOKENS} tokens, but {cfg.model.name}'s position table has {limit}; "
            f"set data.max_length<={limit - PREFIX_TOKENS} (longer documents: data.long_text=windows)"
        )
    return backbone


def build_lm(cfg: DictConfig, tokenizer, num_conditions: int = 0, samples_dir: Path | None = None,
             backbone=None):
    """The LightningModule that ``model.objective`` names (``targets.objective``: ``DiffusionLM``,
    ``AutoregressiveLM``, or any ``_target_`` taking these keyword arguments)."""

    lightning_module = instantiate(target_node(cfg, "model.objective"), _partial_=True)  # a bad name fails first
    task = cfg.task
    return lightning_module(
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
    """Trainer from ``cfg.trainer`` with the configured callbacks and loggers, writing into ``run_dir``.

    With ``data.global_batch_size`` the gradient accumulation is derived (``batch_size.batch_plan``).
    Checkpoints, ``metrics.csv`` and W&B are written by rank zero only (Lightning's loggers and
    checkpointing are rank-zero; ``write_results`` and ``log_samples`` check the rank).
    """
    plan = batch_plan(cfg)
    if plan and "accumulate_grad_batches" not in overrides:
        overrides["accumulate_grad_batches"] = plan[1]
    callbacks = []
    for name, cb_cfg in (cfg.get("callbacks") or {}).items():
        if cb_cfg is None or "_target_" not in cb_cfg:
            continue
        extra = {"dirpath": str(run_dir / "checkpoints")} if name in ("model_checkpoint", "on_exception_checkpoint") else {}
        callbacks.append(instantiate(cb_cfg, **extra))
    overrides.setdefault("use_distributed_sampler", False)  # TextDataModule shards its loaders itself (DDP, FSDP)
    trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=build_loggers(cfg, run_dir),
        default_root_dir=str(run_dir), **overrides,
    )
    check_launcher_in_sweep(trainer)
    return trainer


def check_launcher_in_sweep(trainer: L.Trainer) -> None:
    """Refuse ``strategy=ddp`` with several local processes inside a Hydra multirun.

    Lightning's script launcher restarts ``sys.argv`` for every extra rank, which inside ``-m`` would
    start the whole sweep again in each rank. ``ddp_fork`` / ``ddp_spawn``, or a cluster that starts
    the ranks itself (SLURM via hydra/launcher=slurm_gpu), do not.
    """

    launcher = getattr(trainer.strategy, "launcher", None)
    env = getattr(trainer.strategy, "cluster_environment", None)
    if (trainer.world_size > 1 and type(launcher).__name__ == "_SubprocessScriptLauncher"
            and env is not None and not env.creates_processes_externally
            and in_multirun()):
        raise ConfigError(
            "trainer.strategy=ddp starts extra ranks by re-running the command line, which repeats the "
            "whole sweep under -m. In a local sweep use trainer.strategy=ddp_fork (CPU) or ddp_spawn (GPU); "
            "on SLURM use hydra/launcher=slurm_gpu (tasks_per_node = trainer.devices)."
        )


def unigram_init(cfg: DictConfig, dm, backbones: list, num_classes: int = 0) -> bool:
    """A fresh run's initialisation: the unigram biases below, then ``model.init_from=<train_lm run>``
    (``models/init_from.py``: the LM's backbone weights). The naive-Bayes class term survives the LM's
    weights in both layouts: a conditional model's ``condition_bias`` is not in the LM, and each
    per_class model gets ``log p(w | c) - log p(w)`` added back to its output bias (which the LM's
    replaced), so model ``c`` starts as ``LM + log p(w | c) - log p(w)``, the conditional start's logits."""
    stats = unigram_biases(cfg, dm, backbones, num_classes)
    if cfg.model.get("init_from"):
        init_from_run(cfg.model.init_from, backbones, dm.tokenizer)
        if stats is not None and len(backbones) > 1:
            log_p, log_p_cond = stats
            with torch.no_grad():
                for c, backbone in enumerate(backbones):
                    backbone.output_bias += (log_p_cond[c] - log_p).to(backbone.output_bias)
    return stats is not None


def unigram_biases(cfg: DictConfig, dm, backbones: list, num_classes: int = 0):
    """Start output biases at the training set's unigram statistics (``model.unigram_init``).

    One backbone: ``log p(w)`` (+ ``log p(w | c)`` rows when ``num_classes``); one per class
    (``per_class`` classifier): backbone ``c`` gets ``log p(w | c)``. Skipped for a pretrained model
    that brings its own LM head (its bias is trained); a new head (``head_is_new``) gets it.
    Returns ``(log p(w), log p(w | c))``, or None when skipped.
    """
    if not cfg.model.get("unigram_init", False):
        return None
    if cfg.model.get("pretrained") and not all(getattr(b, "head_is_new", False) for b in backbones):
        return None

    train = dm.datasets["train"]
    labels = train["label"] if num_classes else [0] * len(train)
    log_p, log_p_cond = unigram_log_probs(train["input_ids"], labels, len(dm.tokenizer), num_classes)
    if len(backbones) == 1:
        backbones[0].init_unigram(log_p, log_p_cond)
    else:
        for c, backbone in enumerate(backbones):
            backbone.init_unigram(log_p_cond[c])
    return log_p, log_p_cond

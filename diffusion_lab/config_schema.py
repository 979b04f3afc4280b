"""Start-up validation: typed schemas (dataclasses) for the keys users sweep, with range checks.

``validate(cfg)`` runs before any work. A wrong type or out-of-range value raises ``ConfigError``
with one line naming the key and what is allowed. Objects whose options are checked by their own
constructors (masking schedule, sampler) are instantiated here too, so their errors also come first.

Each schema is merged with OmegaConf's structured-config machinery (``OmegaConf.structured``, the type
and missing-value checks Hydra's schemas run on), over the keys it declares only. Not Hydra's
ConfigStore schema-in-the-defaults-list pattern: that closes each group to its dataclass, so every key of
every group file, a user's ``--config-dir`` files and ``+group.key=...`` additions would have to be
declared or fail composition, and its errors arrive from inside composition rather than as the one
``config error:`` line naming the key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ValidationError

from diffusion_lab.errors import ConfigError
from diffusion_lab.hub import OFFLINE_HINT, hub_endpoint, hub_offline, hub_reachable
from diffusion_lab.optim import takes_argument
from diffusion_lab.targets import check_names

#: ``classifier.score_precision``: float32 scoring, or the backbone under bfloat16 autocast
SCORE_PRECISIONS = ("32", "bf16")


def _positive(section: str, obj, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is not None and value <= 0:
            raise ConfigError(f"{section}.{name}={value}: must be a positive integer")


@dataclass
class DataSchema:
    max_length: int = 128
    batch_size: int = 32
    eval_batch_size: int = 64
    num_workers: int = 0
    lm_use_unsup: bool = False
    max_val: int | None = None
    max_test: int | None = None
    long_text: str = "truncate"
    window_overlap: int = 0

    def __post_init__(self):
        _positive("data", self, "max_length", "batch_size", "eval_batch_size", "max_val", "max_test")
        if self.long_text not in ("truncate", "windows"):
            raise ConfigError(f"data.long_text={self.long_text!r}: allowed values are truncate, windows")
        if not 0 <= self.window_overlap < self.max_length:
            raise ConfigError(f"data.window_overlap={self.window_overlap}: must lie in [0, data.max_length)")
        if self.num_workers < 0:
            raise ConfigError(f"data.num_workers={self.num_workers}: must be >= 0")


@dataclass
class MaskingSchema:
    name: str = ""
    min_rate: float = 1e-3
    max_rate: float = 1.0
    prefix_keep: int = 0

    def __post_init__(self):
        if not (0.0 < self.min_rate <= 1.0) or not (0.0 < self.max_rate <= 1.0):
            raise ConfigError(
                f"masking.min_rate={self.min_rate}, masking.max_rate={self.max_rate}: mask rates must lie in (0, 1]"
            )
        if self.min_rate > self.max_rate:
            raise ConfigError(f"masking.min_rate={self.min_rate} > masking.max_rate={self.max_rate}")
        if self.prefix_keep < 0:
            raise ConfigError(f"masking.prefix_keep={self.prefix_keep}: must be >= 0")


@dataclass
class SamplerSchema:
    steps: int = 32

    def __post_init__(self):
        _positive("sampler", self, "steps")


@dataclass
class ClassifierSchema:
    num_draws: Any = 8  # a positive int, or "auto" (chosen on validation)
    first_stage_draws: int = 2
    estimator: str = "elbo_crn"
    prior: str = "train"
    mode: str = "conditional"
    stop_z: Any = 3.0  # a positive number, or "auto" (chosen on validation)
    stage_draws: Any = None  # null (first_stage_draws), a positive int, or "auto" (chosen on validation)
    infill_text: str = "noised"
    score_precision: Any = "32"
    bayes_weight: float = 0.0
    bayes_draws: int = 1

    def __post_init__(self):
        _positive("classifier", self, "first_stage_draws", "bayes_draws")
        if not math.isfinite(self.bayes_weight) or self.bayes_weight < 0:
            raise ConfigError(f"classifier.bayes_weight={self.bayes_weight}: must be a finite number >= 0 "
                              "(0: the purely generative loss)")
        if self.stop_z != "auto" and (isinstance(self.stop_z, bool) or not isinstance(self.stop_z, (int, float))
                                      or self.stop_z <= 0):
            raise ConfigError(f"classifier.stop_z={self.stop_z!r}: must be a positive number of standard errors or auto")
        if self.stage_draws not in (None, "auto") and (isinstance(self.stage_draws, bool)
                                                       or not isinstance(self.stage_draws, int) or self.stage_draws < 1):
            raise ConfigError(f"classifier.stage_draws={self.stage_draws!r}: must be null (first_stage_draws), "
                              "a positive number of draws per stage, or auto")
        if self.infill_text not in ("noised", "visible"):
            raise ConfigError(f"classifier.infill_text={self.infill_text!r}: allowed values are noised, visible")
        if str(self.score_precision) not in SCORE_PRECISIONS:
            raise ConfigError(f"classifier.score_precision={self.score_precision!r}: allowed values are "
                              f"{', '.join(SCORE_PRECISIONS)}")
        if self.num_draws != "auto" and (not isinstance(self.num_draws, int) or isinstance(self.num_draws, bool)
                                         or self.num_draws <= 0):
            raise ConfigError(f"classifier.num_draws={self.num_draws!r}: must be a positive integer or auto")
        # mode, prior and estimator: their allowed values are the names in the targets table
        # (validate -> targets.check_names)


@dataclass
class TrainerSchema:
    max_epochs: int | None = None
    max_steps: int = -1
    accumulate_grad_batches: int = 1
    devices: int | str = 1
    num_nodes: int = 1

    def __post_init__(self):
        _positive("trainer", self, "accumulate_grad_batches", "num_nodes")
        if self.max_epochs is not None and self.max_epochs < -1:
            raise ConfigError(f"trainer.max_epochs={self.max_epochs}: must be >= -1")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError(f"trainer.max_steps={self.max_steps}: no optimizer step would run; use -1 (no limit, "
                              "trainer.max_epochs decides) or a positive number of steps")


@dataclass
class EvalSchema:
    """``eval.*`` (task=evaluate, and ``data.max_test`` reads ``eval.max_test``: checked first so the error
    names the key the user set)."""

    max_test: int | None = None
    num_draws: int | None = None
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self):
        _positive("eval", self, "batch_size")
        if self.max_test is not None and self.max_test <= 0:
            raise ConfigError(f"eval.max_test={self.max_test}: must be a positive number of test items, or null (all)")
        if self.num_draws is not None and self.num_draws <= 0:
            raise ConfigError(f"eval.num_draws={self.num_draws}: must be a positive number of draws, or null "
                              "(the run's classifier.num_draws)")
        _seed("eval.seed", self.seed)


@dataclass
class OptimizerSchema:
    lr: float = 1e-3
    weight_decay: float = 0.0

    def __post_init__(self):
        if not math.isfinite(self.lr) or self.lr < 0:  # 0 is allowed: init-only runs take one step at lr 0
            raise ConfigError(f"optimizer.lr={self.lr}: must be a finite learning rate >= 0, e.g. optimizer.lr=1e-3")
        if not math.isfinite(self.weight_decay) or self.weight_decay < 0:
            raise ConfigError(f"optimizer.weight_decay={self.weight_decay}: must be a finite number >= 0")


def _seed(key: str, value) -> None:
    """numpy and torch take seeds in [0, 2**32): a negative one would fail deep inside them."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ConfigError(f"{key}={value!r}: must be a whole number in [0, 2**32), e.g. {key}=0")


SCHEMAS = {"eval": EvalSchema, "optimizer": OptimizerSchema, "data": DataSchema, "masking": MaskingSchema,
           "sampler": SamplerSchema, "classifier": ClassifierSchema, "trainer": TrainerSchema}


def _check(section: str, schema, node: DictConfig) -> None:
    known = {f.name for f in fields(schema)}
    values = {k: node[k] for k in known if k in node}
    try:
        OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))
    except ValidationError as err:
        key = getattr(err, "full_key", "") or "?"
        raise ConfigError(f"{section}.{key}: {str(err).splitlines()[0]}") from None


def validate(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` for the first bad value, before any data is read or model built."""
    if cfg.get("seed") is not None:
        _seed("seed", cfg.seed)
    for section, schema in SCHEMAS.items():
        if section in cfg and cfg[section] is not None:
            _check(section, schema, cfg[section])

    check_names(cfg)  # model.objective, classifier.mode/prior/estimator name an entry of the targets table
    if cfg.get("model") and cfg.model.get("pretrained") and "TrainedBPE" in str(cfg.tokenizer.get("_target_", "")):
        raise ConfigError(
            f"model.pretrained={cfg.model.pretrained!r} needs its own tokenizer: add tokenizer=pretrained "
            "(a BPE trained on the data does not match pretrained embeddings)"
        )
    if cfg.get("model") and cfg.model.get("objective") == "autoregressive" and not cfg.model.get("causal_lm", False):
        raise ConfigError(
            f"model.objective=autoregressive needs a causal backbone; model={cfg.model.get('name')} "
            f"({cfg.model.get('family')}) is an encoder. Use a causal LM (model.causal_lm=true): model=gpt2_tiny, "
            "llama_tiny or qwen2_tiny (random init), or model=smollm2 (pretrained, offline; tokenizer=pretrained)"
        )
    _check_sample_length(cfg)
    _check_unlabelled_text(cfg)
    _check_discriminative_pooling(cfg)
    _check_schedule_horizon(cfg)
    _check_pretrained_reachable(cfg)
    for section in ("masking", "sampler"):
        if section in cfg and cfg[section] is not None:
            try:
                instantiate(cfg[section])
            except Exception as err:  # the constructors raise ValueError naming the argument
                cause = err.__cause__ or err
                raise ConfigError(f"{section}: {cause}") from None


def _check_sample_length(cfg: DictConfig) -> None:
    """Samples drawn at each validation end must fit the window the model is trained on."""
    task, data = cfg.get("task"), cfg.get("data")
    if task is None or data is None or task.get("sample_length") is None or not task.get("num_samples", 1):
        return
    if int(task.sample_length) > int(data.max_length):
        raise ConfigError(
            f"task.sample_length={task.sample_length} exceeds the model's window data.max_length={data.max_length}: "
            f"the validation samples would fail after the first epoch; set task.sample_length<={data.max_length} "
            "(or task.num_samples=0 for no samples)"
        )


def _check_unlabelled_text(cfg: DictConfig) -> None:
    """Unlabelled text (label -1) is for language-model training; a classifier would stop at its first batch."""
    task, data = cfg.get("task"), cfg.get("data")
    if task is not None and data is not None and task.get("name") == "train_classifier" and data.get("lm_use_unsup"):
        raise ConfigError(
            "data.lm_use_unsup=true adds unlabelled text (label -1), which task=train_classifier cannot train on; "
            "set data.lm_use_unsup=false, or train a language model on it first (task=train_lm) and start the "
            "classifier from that run with model.init_from=<run dir>"
        )


def _check_discriminative_pooling(cfg: DictConfig) -> None:
    """The twin's head is built after the generative model trains: a bad value must stop the run first."""
    value = cfg.task.get("discriminative_pooling") if cfg.get("task") is not None else None
    if value is not None and value not in ("auto", "mean", "last"):
        raise ConfigError(f"task.discriminative_pooling={value!r}: allowed values are auto (last token for a causal "
                          "LM, mean for an encoder), mean, last")


def _check_schedule_horizon(cfg: DictConfig) -> None:
    """A step-based LR schedule (warmup_cosine) needs a step count; with trainer.max_steps=-1 and
    trainer.max_epochs=-1 only a clock-based one (budget_triangle, over trainer.max_time) has a horizon.
    Checked here so the run fails before its data is tokenized, not at its first optimizer step."""
    task, trainer, scheduler = cfg.get("task"), cfg.get("trainer"), cfg.get("scheduler")
    if task is None or trainer is None or scheduler is None or task.get("name") not in ("train_lm", "train_classifier"):
        return
    if trainer.get("max_steps", -1) != -1 or trainer.get("max_epochs") != -1:
        return

    if not takes_argument(instantiate(scheduler), "trainer"):
        raise ConfigError(
            f"scheduler {scheduler.get('_target_')} decays over a number of steps, but trainer.max_steps=-1 and "
            "trainer.max_epochs=-1 give none; set trainer.max_steps, or use scheduler=budget_triangle with "
            "trainer.max_time (it decays over the wall-clock budget)"
        )


def check_accelerator(cfg: DictConfig) -> None:
    """A GPU trainer (gpu, ddp, fsdp, multinode) on a machine without one: stop before any data work.

    Not part of ``validate`` (a GPU recipe is a valid config anywhere); ``app.run`` calls it on the
    machine that runs the task, right after ``validate``."""
    trainer = cfg.get("trainer")
    if trainer is None or str(trainer.get("accelerator", "cpu")) not in ("gpu", "cuda"):
        return

    if not torch.cuda.is_available():
        strategy = trainer.get("strategy")
        name = strategy if isinstance(strategy, str) else "fsdp"
        hint = ("trainer=ddp_cpu (2 CPU processes, gloo)" if name not in ("auto", None)
                else "trainer=cpu")
        raise ConfigError(
            f"trainer.accelerator={trainer.accelerator} (strategy={name}) needs a GPU, but torch sees none "
            f"(torch.cuda.is_available() is False); on this machine use {hint}"
        )


def _check_pretrained_reachable(cfg: DictConfig) -> None:
    """A hub id that is not a local folder nor cached: offline, or no network, stops now (seconds), not
    after loading the data or a minute of hub retries."""
    name = cfg.get("model", {}).get("pretrained") if cfg.get("model") else None
    if not name or Path(str(name)).expanduser().exists():
        return
    from huggingface_hub import try_to_load_from_cache  # deferred: only for a hub id

    if isinstance(try_to_load_from_cache(str(name), "config.json"), str):
        return  # in the local hub cache
    if hub_offline():
        raise ConfigError(f"model.pretrained={name!r} is not cached and the hub is offline (HF_HUB_OFFLINE=1). "
                          f"Options: {OFFLINE_HINT.split(', and use ', 1)[1]}")
    if not hub_reachable():
        raise ConfigError(f"model.pretrained={name!r} is not cached and {hub_endpoint()} cannot be reached "
                          f"(no network?); {OFFLINE_HINT}")

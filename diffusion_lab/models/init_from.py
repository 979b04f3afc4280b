"""``model.init_from=<train_lm run dir>``: start a run's backbones from a trained language model.

The pretraining stage of a generative classifier (IMDB ``unsup`` first, then the class-conditional
stage): every tensor of the LM's backbone (``backbone.*`` in its checkpoint) is copied into each
backbone of the new run. Vocabulary-sized tensors (word embeddings, LM-head decoder and bias,
``output_bias``) may have more rows in the new run, the label tokens the conditional classifier adds
after the LM's vocabulary; those rows keep their fresh initialisation. The condition embedding and
bias do not exist in an unconditional LM and stay as initialised (zeros, or the naive-Bayes
``log p(w | c) - log p(w)`` of ``model.unigram_init``, which runs first). A per_class model has no
condition bias: ``builders.unigram_init`` adds its class's term back onto the LM's output bias.

The tokenizer must be the LM run's (``tokenizer=pretrained tokenizer.name_or_path=<run>/tokenizer``, as
``experiment=scratch_pretrained`` sets): every token of the LM's vocabulary must have the same id here.
Anything else (another family or size, another vocabulary) is an error naming the first mismatch.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import AutoTokenizer

from diffusion_lab.runs import find_checkpoint, load_checkpoint, load_run_config

log = logging.getLogger(__name__)


def lm_backbone_state(run_dir: str | Path, which: str = "best") -> tuple[dict, dict]:
    """``(backbone state_dict, LM tokenizer vocab)`` of a ``task=train_lm`` run."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    if cfg.task.get("name") != "train_lm":
        raise ValueError(f"model.init_from={run_dir} is a {cfg.task.get('name')!r} run; it must be a task=train_lm run")
    state = load_checkpoint(find_checkpoint(run_dir, which))["state_dict"]
    backbone = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    vocab = AutoTokenizer.from_pretrained(str(run_dir / "tokenizer")).get_vocab()
    return backbone, vocab


def check_vocabulary(lm_vocab: dict, vocab: dict, run_dir) -> None:
    wrong = [t for t, i in lm_vocab.items() if vocab.get(t) != i]
    if wrong:
        raise ValueError(
            f"model.init_from={run_dir}: {len(wrong)} of the LM's {len(lm_vocab)} tokens have another id in this "
            f"run's tokenizer (first: {wrong[0]!r}). Use the LM's tokenizer: tokenizer=pretrained "
            f"tokenizer.name_or_path={Path(run_dir) / 'tokenizer'} (experiment=scratch_pretrained does)"
        )


@torch.no_grad()
def load_lm_weights(backbone: torch.nn.Module, source: dict, run_dir="the LM run") -> list[str]:
    """Copy ``source`` into ``backbone``; vocabulary rows beyond the LM's keep their values. Returns the
    target keys left as initialised (allowed: ``condition_*`` only)."""
    target = backbone.state_dict()
    for key, value in source.items():
        if key not in target:
            raise ValueError(f"model.init_from={run_dir}: the LM has {key!r}, this model does not (another family?)")
        dest = target[key]
        if dest.shape == value.shape:
            dest.copy_(value)
        elif dest.ndim == value.ndim and dest.shape[1:] == value.shape[1:] and dest.shape[0] > value.shape[0]:
            dest[: value.shape[0]].copy_(value)  # the vocabulary grew (label tokens)
        else:
            raise ValueError(f"model.init_from={run_dir}: {key} is {tuple(value.shape)} in the LM but "
                             f"{tuple(dest.shape)} here; the model sizes must match the LM run's")
    kept = [k for k in target if k not in source]
    unexpected = [k for k in kept if not k.startswith("condition_")]
    if unexpected:
        raise ValueError(f"model.init_from={run_dir}: the LM has no {unexpected[0]!r} (another model config?)")
    return kept


def init_from_run(run_dir, backbones: list, tokenizer, which: str = "best") -> None:
    """Load the LM run's backbone into every backbone of ``backbones`` (see the module docstring)."""
    source, lm_vocab = lm_backbone_state(run_dir, which)
    check_vocabulary(lm_vocab, tokenizer.get_vocab(), run_dir)
    for backbone in backbones:
        kept = load_lm_weights(backbone, source, run_dir)
    log.info("initialised %d backbone(s) from %s (%d tensors; kept as initialised: %s)", len(backbones), run_dir,
             len(source), ", ".join(kept) or "none")

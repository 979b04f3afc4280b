"""``CausalLMDenoiser``: any ``AutoModelForCausalLM`` (GPT-2, LLaMA/SmolLM, Qwen, ...) as a ``Denoiser``.

A new family is a config file (``model_type`` + that family's own size keys, or ``pretrained``), not a
class. Two objectives over the same weights:

``objective="autoregressive"``: the plain causal LM; logits at i model p(x_{i+1} | x_{<=i}).

``objective="diffusion"``: bidirectional through the attention mask alone (DiffuGPT / DiffuLLaMA, Gong
et al. 2024). We hand the model a prepared 4-D additive float mask ``[B, 1, L, L]`` (0 = attend,
``finfo(dtype).min`` = blocked) through its public ``attention_mask`` argument: transformers' mask
utilities return a 4-D mask as-is (``masking_utils._preprocess_mask_arguments``), sdpa then runs with
``is_causal=False`` and eager adds it to the scores, so nothing inside transformers is patched and
every family reads it the same way. Flash attention ignores custom masks and is refused for diffusion.

- ``shift=True``: logits at i are the head output at i-1, so a pretrained next-token head keeps its
  meaning (the hidden state at i-1 predicts token i). Position 0 has no left neighbour and gets its
  own output (it sees the whole canvas anyway).
- ``attention_anneal_steps=N``: while training, attention moves from causal to full: at progress
  p = min(1, step / N) each future key (j > i) is unlocked independently with probability p, one
  pattern per forward pass shared across the batch: ``A = causal | (future & Bernoulli(p))``. p = 0 is
  exactly causal, p = 1 exactly full; outside training the mask is always full.

Logits are ``get_output_embeddings()(h)`` on the last hidden state ``h`` (what GPT-2, LLaMA, Qwen and
Mistral compute), so the head runs only at ``positions`` when those are given (sparse scoring). Families
that rescale logits after the head (soft-capping, ``logit_scale``) are refused rather than scored wrongly.

Random init: ``AutoConfig.for_model(model_type, **sizes)``, ``max_position_embeddings = max_length + 1``
(the autoregressive start token), every dropout field = ``dropout``. Pretrained: a hub id, local folder or
``.gguf`` file (``weight_files``), ``sha256`` checked first, the checkpoint's own dropout. Embeddings are
resized to ``vocab_size`` (``len(tokenizer)``, mask token included).
``lora`` (a dict of ``peft.LoraConfig`` fields, e.g. ``{r: 8}``; ``r: 0`` or None = off) adds LoRA adapters
and freezes the rest of the transformer (``models/lora.py``); the ``Denoiser``'s own output biases and
condition embedding still train.
"""

from __future__ import annotations

import math

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from diffusion_lab.models.denoiser import Denoiser
from diffusion_lab.models.lora import add_lora
from diffusion_lab.models.pretrained import check_weights_sha256, load_pretrained

OBJECTIVES = ("diffusion", "autoregressive")
#: attention implementations whose reading of a custom 4-D mask is tested (tests/test_gpt2.py, test_causal.py)
MASKED_ATTENTION = ("sdpa", "eager")
#: config fields that change logits after the head; our sparse head would skip them
POST_HEAD_FIELDS = ("final_logit_softcapping", "logit_scale")


def attention_pattern(length: int, anneal_progress: float, device=None) -> torch.Tensor:
    """Boolean ``[L, L]`` query x key pattern ``causal | (future & Bernoulli(p))``: p >= 1 all True, p <= 0 causal."""
    if anneal_progress >= 1.0:
        return torch.ones(length, length, dtype=torch.bool, device=device)
    causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()
    if anneal_progress <= 0.0:
        return causal
    unlocked = torch.rand(length, length, device=device) < anneal_progress
    return causal | unlocked


def bidirectional_mask(pattern: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """4-D boolean mask ``[B, 1, L, L]``: ``pattern[i, j] & key j is a real token``.

    Each query keeps its own key, so a padding query never has an empty row (NaN in sdpa).
    """
    length = attention_mask.shape[1]
    keys = attention_mask.bool()[:, None, None, :]
    eye = torch.eye(length, dtype=torch.bool, device=attention_mask.device)
    return (pattern[None, None] & keys) | eye


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """0 where ``mask`` is True, ``finfo(dtype).min`` elsewhere: the one format sdpa and eager both read
    (eager adds the mask to the scores, so a boolean would add 1 / 0 and block nothing)."""
    zero = torch.zeros((), dtype=dtype, device=mask.device)
    return torch.where(mask, zero, torch.finfo(dtype).min)


def shift_right(x: torch.Tensor) -> torch.Tensor:
    """``out[:, i] = x[:, i - 1]`` for i >= 1 and ``out[:, 0] = x[:, 0]``."""
    return torch.cat([x[:, :1], x[:, :-1]], dim=1)


class CausalLMDenoiser(Denoiser):
    """A transformers causal LM behind the ``Denoiser`` interface (see the module docstring).

    ``config`` holds the family's own size keys for random init (GPT-2: ``n_embd``, ``n_layer``,
    ``n_head``; LLaMA / Qwen: ``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``,
    ``num_key_value_heads``, ``intermediate_size``); ignored with ``pretrained``.
    """

    def __init__(
        self,
        vocab_size: int,
        pad_token_id: int,
        num_conditions: int = 0,
        max_length: int = 512,
        model_type: str = "gpt2",
        pretrained: str | None = None,
        sha256: str | None = None,
        dropout: float = 0.0,
        objective: str = "diffusion",
        shift: bool = False,
        attention_anneal_steps: int = 0,
        attn_implementation: str = "sdpa",
        lora: dict | None = None,
        **config,
    ):
        _check_options(objective, shift, attention_anneal_steps, attn_implementation)
        model = (_load(pretrained, sha256, attn_implementation) if pretrained
                 else _random_init(model_type, vocab_size, pad_token_id, max_length, dropout, attn_implementation, config))
        _check_head(model.config)
        positions = getattr(model.config, "max_position_embeddings", None)
        needed = max_length + (1 if objective == "autoregressive" else 0)
        if positions is not None and positions < needed:
            raise ValueError(
                f"model.max_length={max_length} needs {needed} positions but the checkpoint has "
                f"max_position_embeddings={positions} (GPT-2: n_positions); lower the data's max_length."
            )
        known = model.get_input_embeddings().num_embeddings
        if known != vocab_size:
            model.resize_token_embeddings(vocab_size)
        super().__init__(vocab_size, num_conditions, model.config.hidden_size)
        added = list(range(known, vocab_size))  # label tokens, mask, pad: random rows a LoRA run must train
        self.model = add_lora(model, lora, added) if lora and lora.get("r", 0) > 0 else model
        self.max_length = max_length
        self.objective = objective
        self.causal = objective == "autoregressive"
        self.shift = shift
        self.attention_anneal_steps = attention_anneal_steps
        self.anneal_progress = 0.0 if attention_anneal_steps > 0 else 1.0

    def set_anneal_progress(self, progress: float) -> None:
        """Fraction p in [0, 1] of the way from causal to full attention (training only)."""
        if not 0.0 <= progress <= 1.0:
            raise ValueError(f"anneal progress must lie in [0, 1], got {progress}")
        self.anneal_progress = float(progress)

    def set_anneal_step(self, step: int) -> None:
        """``p = min(1, step / attention_anneal_steps)``; a no-op without annealing."""
        if self.attention_anneal_steps > 0:
            self.set_anneal_progress(min(1.0, step / self.attention_anneal_steps))

    def _attention_mask(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # causal: transformers builds causal & padding from the 2-D mask; diffusion: our 4-D mask
        if self.causal:
            return attention_mask
        progress = self.anneal_progress if self.training else 1.0
        pattern = attention_pattern(attention_mask.shape[1], progress, attention_mask.device)
        return additive_mask(bidirectional_mask(pattern, attention_mask), inputs_embeds.dtype)

    def _hidden(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = self._attention_mask(inputs_embeds, attention_mask)
        out = self.model.base_model(inputs_embeds=inputs_embeds, attention_mask=mask, use_cache=False)
        return out.last_hidden_state

    def _backbone_logits(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                         positions: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self._hidden(inputs_embeds, attention_mask)
        if self.shift:
            hidden = shift_right(hidden)
        if positions is not None:
            hidden = hidden[positions]  # [N, H]: the head only where logits are read
        return self.model.get_output_embeddings()(hidden)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, inputs_embeds=None) -> torch.Tensor:
        """Last hidden states ``[B, L, H]`` (after the final norm) with the logits' attention: causal for
        the autoregressive objective, the (annealed) bidirectional mask for diffusion. No condition, no
        shift; for discriminative heads on the same backbone."""
        if inputs_embeds is None:
            inputs_embeds = self.embed(input_ids, None)
        return self._hidden(inputs_embeds, attention_mask)


def _random_init(model_type, vocab_size, pad_token_id, max_length, dropout, attn_implementation, sizes):
    config = AutoConfig.for_model(
        model_type, vocab_size=vocab_size, pad_token_id=pad_token_id,
        # the families' default ids (GPT-2: 50256) lie outside a small test vocabulary; generate() is unused
        bos_token_id=None, eos_token_id=None, max_position_embeddings=max_length + 1, **sizes,
    )
    for key in config.to_dict():
        if "dropout" in key or key.endswith("pdrop"):
            setattr(config, key, dropout)
    return AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation)


def _load(pretrained: str, sha256: str | None, attn_implementation: str):
    if sha256:
        check_weights_sha256(pretrained, sha256)
    model = load_pretrained(AutoModelForCausalLM, pretrained)
    model.set_attn_implementation(attn_implementation)
    return model.train()  # from_pretrained returns eval mode, and Lightning keeps each module's mode


def _check_head(config) -> None:
    rescaled = [k for k in POST_HEAD_FIELDS if getattr(config, k, None) not in (None, 1.0)]
    if rescaled:
        raise ValueError(
            f"{config.model_type} rescales its logits after the LM head ({', '.join(rescaled)}), which "
            "CausalLMDenoiser's head (output embeddings on the last hidden state) would skip; use a family "
            "without it (gpt2, llama, qwen2, mistral)."
        )


def _check_options(objective: str, shift: bool, anneal_steps: int, attn_implementation: str) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"model.objective must be one of {OBJECTIVES}, got {objective!r}")
    if anneal_steps < 0 or anneal_steps != math.floor(anneal_steps):
        raise ValueError(f"model.backbone.attention_anneal_steps must be an integer >= 0, got {anneal_steps}")
    if objective == "autoregressive" and (shift or anneal_steps):
        raise ValueError(
            "model.backbone.shift and model.backbone.attention_anneal_steps only apply to "
            "model.objective=diffusion (a causal LM already predicts the next token with causal "
            f"attention); got shift={shift}, attention_anneal_steps={anneal_steps} with "
            "model.objective=autoregressive."
        )
    if objective == "diffusion" and attn_implementation not in MASKED_ATTENTION:
        raise ValueError(
            f"model.backbone.attn_implementation={attn_implementation!r} cannot take the custom "
            f"bidirectional attention mask of model.objective=diffusion; use one of {MASKED_ATTENTION}."
        )

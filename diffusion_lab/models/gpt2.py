"""GPT-2 backbone as a ``Denoiser``: a causal LM, or a bidirectional masked-diffusion denoiser.

``objective="autoregressive"``: plain GPT-2; logits at i model p(x_{i+1} | x_{<=i}).

``objective="diffusion"``: the same weights made bidirectional through the attention mask alone. We
hand transformers a prepared 4-D mask ``[B, 1, L, L]``; its mask utilities return a 4-D mask as-is
(``masking_utils._preprocess_mask_arguments``) and sdpa then runs with ``is_causal=False``, so no
transformers internals are patched. The mask's format is the one each attention function reads:
boolean (True = attend) for sdpa, additive float (0 / dtype min) for eager, which adds it to the
scores. Other implementations (flash attention ignores custom masks) are refused for diffusion.

Diffusion options:

- ``shift=True``: logits at position i are the head output at position i-1, so a pretrained
  next-token head keeps its meaning (the hidden state at i-1 predicts token i). Position 0 has no
  left neighbour and gets the head output at position 0 itself (it sees the whole canvas anyway).
- ``attention_anneal_steps=N``: while training, attention moves from causal to full (DiffuLLaMA):
  at progress p, each future key (j > i) is unlocked independently with probability p, one random
  pattern per forward pass shared across the batch. p = 0 is exactly causal, p = 1 exactly full;
  outside training the mask is always full. The training loop calls ``set_anneal_step(step)``.
"""

from __future__ import annotations

import math

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from diffusion_lab.models.denoiser import Denoiser
from diffusion_lab.models.pretrained import load_pretrained

OBJECTIVES = ("diffusion", "autoregressive")
#: attention implementations whose reading of a custom 4-D mask is tested (tests/test_gpt2.py)
MASKED_ATTENTION = ("sdpa", "eager")


def attention_pattern(length: int, anneal_progress: float, device=None) -> torch.Tensor:
    """Boolean ``[L, L]`` query x key pattern: ``causal | (future & Bernoulli(p))``.

    ``p >= 1`` gives all True (bidirectional), ``p <= 0`` the lower triangle (causal).
    """
    if anneal_progress >= 1.0:
        return torch.ones(length, length, dtype=torch.bool, device=device)
    causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()
    if anneal_progress <= 0.0:
        return causal
    unlocked = torch.rand(length, length, device=device) < anneal_progress
    return causal | unlocked


def bidirectional_mask(pattern: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """4-D boolean mask ``[B, 1, L, L]``: ``pattern[i, j] & key j is a real token``.

    Each query also keeps its own key, so a padding query (left padding under a causal pattern)
    never has an empty row (NaN in sdpa); real queries already attend to themselves, so only the
    discarded outputs at padding positions see that extra entry.
    """
    length = attention_mask.shape[1]
    keys = attention_mask.bool()[:, None, None, :]
    eye = torch.eye(length, dtype=torch.bool, device=attention_mask.device)
    return (pattern[None, None] & keys) | eye


def shift_logits_right(logits: torch.Tensor) -> torch.Tensor:
    """``out[:, i] = logits[:, i - 1]`` for i >= 1 and ``out[:, 0] = logits[:, 0]``."""
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)


class GPT2Denoiser(Denoiser):
    """GPT-2 LM head model behind the ``Denoiser`` interface.

    Random init uses ``n_embd``, ``n_layer``, ``n_head`` with ``n_positions = max_length + 1`` (one
    extra position for the start token the autoregressive objective prepends, see
    ``models/ar_likelihood.py``); ``pretrained`` (hub id or local folder) overrides the sizes. The
    token embeddings are resized to ``vocab_size`` (``len(tokenizer)``, mask token included).
    """

    def __init__(
        self,
        vocab_size: int,
        pad_token_id: int,
        num_conditions: int = 0,
        max_length: int = 512,
        pretrained: str | None = None,
        n_embd: int = 256,
        n_layer: int = 4,
        n_head: int = 4,
        dropout: float = 0.0,
        objective: str = "diffusion",
        shift: bool = False,
        attention_anneal_steps: int = 0,
        attn_implementation: str = "sdpa",
        **config_overrides,
    ):
        _check_options(objective, shift, attention_anneal_steps, attn_implementation)
        if pretrained:
            model = load_pretrained(GPT2LMHeadModel, pretrained)
            model.set_attn_implementation(attn_implementation)
        else:
            config = GPT2Config(
                vocab_size=vocab_size,
                n_positions=max_length + 1,
                n_embd=n_embd,
                n_layer=n_layer,
                n_head=n_head,
                resid_pdrop=dropout,
                embd_pdrop=dropout,
                attn_pdrop=dropout,
                pad_token_id=pad_token_id,
                # GPT-2's defaults (50256) are outside a small test vocabulary; generate() is unused
                bos_token_id=None,
                eos_token_id=None,
                attn_implementation=attn_implementation,
                **config_overrides,
            )
            model = GPT2LMHeadModel(config)
        needed = max_length + (1 if objective == "autoregressive" else 0)
        if model.config.n_positions < needed:
            raise ValueError(
                f"model.max_length={max_length} needs {needed} positions but the GPT-2 checkpoint has "
                f"n_positions={model.config.n_positions}; lower the data's max_length."
            )
        if model.get_input_embeddings().num_embeddings != vocab_size:
            model.resize_token_embeddings(vocab_size)
        super().__init__(vocab_size, num_conditions, model.config.n_embd)
        self.model = model
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

    def _attention_mask_4d(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        progress = self.anneal_progress if self.training else 1.0
        pattern = attention_pattern(attention_mask.shape[1], progress, attention_mask.device)
        mask = bidirectional_mask(pattern, attention_mask)
        if self.model.config._attn_implementation == "eager":
            # eager adds the mask to the scores: a boolean would add 1/0 and mask nothing
            zero = torch.zeros((), dtype=inputs_embeds.dtype, device=mask.device)
            return torch.where(mask, zero, torch.finfo(inputs_embeds.dtype).min)
        return mask

    def _attention_mask(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # causal: transformers builds causal & padding from the 2-D mask; diffusion: our 4-D mask
        return attention_mask if self.causal else self._attention_mask_4d(inputs_embeds, attention_mask)

    def _dense_logits(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = self._attention_mask(inputs_embeds, attention_mask)
        logits = self.model(inputs_embeds=inputs_embeds, attention_mask=mask).logits
        return shift_logits_right(logits) if self.shift else logits

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, inputs_embeds=None) -> torch.Tensor:
        """Last hidden states ``[B, L, H]`` (after the final LayerNorm) with the same attention as the
        logits: causal for the autoregressive objective, the (annealed) bidirectional mask for diffusion.
        For discriminative heads on the same backbone; no condition, no shift."""
        if inputs_embeds is None:
            inputs_embeds = self.embed(input_ids, None)
        mask = self._attention_mask(inputs_embeds, attention_mask)
        return self.model.transformer(inputs_embeds=inputs_embeds, attention_mask=mask).last_hidden_state


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

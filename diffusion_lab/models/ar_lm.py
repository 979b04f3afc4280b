"""``AutoregressiveLM``: a causal language model (GPT-2, LLaMA/SmolLM, Qwen) as a LightningModule, the exact reference.

Built by ``builders.build_lm`` for ``model.objective=autoregressive`` with the same keyword
arguments as ``DiffusionLM``, so ``task=train_lm`` (and ``generate``, and the classifiers, through
``sequence_log_likelihood``) run it unchanged. With the start token ``s`` of
``models/ar_likelihood.py`` every real token is scored, the first one included:

    log p(x | c) = sum_{i in S} log p(x_i | s, x_{<i}, c)        (exact; S = scored positions)

S is the set the diffusion bound sums over: ``masking.maskable(attention_mask)`` (real tokens,
minus a kept prefix ``masking.prefix_keep``, which is conditioned on but not scored). Training loss
and validation use the same normalisation as ``DiffusionLM``: ``sum_{b, i in S} -log p / |S|``.
Validation logs ``val/nll_per_token``, ``val/bits_per_token = nll / ln 2``, ``val/ppl = exp(nll)``
and ``val/ppl_bound``, equal to ``val/ppl`` so that checkpoint monitors and tables written for the
diffusion bound work unchanged; here it is exact (``ppl_is_bound = False``), not a bound.

Differences from ``DiffusionLM``, each on purpose:
- ``masking`` is accepted and only its ``prefix_keep`` is read; there is no noise.
- ``num_draws`` / ``generator`` of ``sequence_log_likelihood`` are accepted and ignored (exact).
- Generation is always left to right: a diffusion sampler handed in (the run's default
  ``sampler=``) is replaced by an ``AutoregressiveSampler`` with the same token choice
  (``samplers.autoregressive.as_autoregressive``); ``sampler=autoregressive`` configures it directly.
- The "no label" draw of conditional training (``uncond_prob``) comes from a generator seeded by
  ``(seed, global_step, batch_idx)``: stateless, so a resumed run repeats it without saved RNG state.
"""

from __future__ import annotations

import torch

from diffusion_lab.masking import real_tokens
from diffusion_lab.models.ar_likelihood import ar_token_scores
from diffusion_lab.models.ar_likelihood import start_token_id as tokenizer_start_token
from diffusion_lab.models.conditions import draw_no_label, label_conditions, no_label_condition
from diffusion_lab.models.denoiser import Denoiser
from diffusion_lab.models.generation import generate_with_sampler
from diffusion_lab.models.lm_base import LanguageModel
from diffusion_lab.samplers.autoregressive import as_autoregressive


class AutoregressiveLM(LanguageModel):
    """Causal LM over a causal ``Denoiser`` (``backbone.causal``; ``CausalLMDenoiser`` with objective=autoregressive).

    Arguments are ``DiffusionLM``'s; ``start_token_id`` defaults to the tokenizer's bos (else eos).
    """

    ppl_is_bound = False  #: val/ppl_bound is the exact perplexity for this model

    def __init__(
        self,
        backbone: Denoiser,
        masking=None,
        optimizer=None,
        scheduler=None,
        mask_token_id: int = 0,
        eval_draws: int = 1,
        eval_seed: int = 0,
        seed: int = 0,
        uncond_prob: float = 0.1,
        sampler=None,
        tokenizer=None,
        num_samples: int = 4,
        sample_length: int = 48,
        samples_dir: str | None = None,
        start_token_id: int | None = None,
    ):
        super().__init__()
        if not getattr(backbone, "causal", False):
            raise ValueError(
                f"model.objective=autoregressive needs a causal backbone; {type(backbone).__name__} attends "
                "both ways. Use a causal LM: model=gpt2_tiny, llama_tiny, smollm2, ... (encoders are diffusion-only)."
            )
        if start_token_id is None:
            if tokenizer is None:
                raise ValueError("AutoregressiveLM needs a tokenizer (for its start token) or start_token_id")
            start_token_id = tokenizer_start_token(tokenizer)
        self.save_hyperparameters(ignore=["backbone", "masking", "optimizer", "scheduler", "sampler", "tokenizer"])
        self._init_shared(backbone, optimizer, scheduler, tokenizer)
        self.prefix_keep = getattr(masking, "prefix_keep", 0)
        self.sampler = as_autoregressive(sampler, start_token_id) if sampler is not None else None

    # --- model ---------------------------------------------------------------------------------

    def scored(self, attention_mask: torch.Tensor) -> torch.Tensor:
        """The positions S that are scored: real tokens after the kept prefix (= DiffusionLM's maskable)."""
        return real_tokens(attention_mask, self.prefix_keep)

    def token_scores(self, input_ids, attention_mask, condition=None) -> torch.Tensor:
        """``[B, L]`` float32: ``log p(x_i | s, x_{<i}, c)`` on S, 0 elsewhere (differentiable)."""
        return ar_token_scores(self.backbone, input_ids, attention_mask, self.hparams.start_token_id,
                               condition, self.scored(attention_mask))

    @torch.no_grad()
    def sequence_log_likelihood(self, input_ids, attention_mask, conditions=None, num_draws=None,
                                generator=None, return_token_scores=False, chunk_size=256):
        """Exact ``log p(x)`` ``[B]``, or ``log p(x | c)`` ``[B, C]`` for each ``c`` in ``conditions``.

        Same interface as ``DiffusionLM``; ``num_draws`` and ``generator`` are ignored (nothing is
        sampled). ``return_token_scores`` also gives ``[B(, C), L]`` per-token log-probs that sum to
        it. float64, like the diffusion bound; ``chunk_size`` rows per forward pass.
        """
        conds = [None] if conditions is None else list(conditions)
        scores = torch.zeros(input_ids.shape[0], len(conds), input_ids.shape[1], dtype=torch.float64,
                             device=input_ids.device)
        for ci, cond in enumerate(conds):
            for start in range(0, input_ids.shape[0], chunk_size):
                sl = slice(start, start + chunk_size)
                c = None if cond is None else torch.full_like(input_ids[sl, 0], cond)
                scores[sl, ci] = self.token_scores(input_ids[sl], attention_mask[sl], c).double()
        if conditions is None:
            scores = scores[:, 0]
        total = scores.sum(-1)
        return (total, scores) if return_token_scores else total

    def _condition(self, batch, batch_idx: int):
        """Labels (no-label id for unlabelled rows), or all no-label with probability ``uncond_prob``."""
        no_label = no_label_condition(self.backbone)
        if no_label is None:
            return None
        gen = torch.Generator().manual_seed(self.hparams.seed * 1_000_003 + self.global_step * 1009 + batch_idx)
        return label_conditions(batch["labels"], no_label, draw_no_label(gen, self.hparams.uncond_prob))

    def training_loss(self, input_ids, attention_mask, condition=None, condition_fn=None) -> dict:
        """The exact next-token loss ``sum_{b, i in S} -log p(x_i | s, x_{<i}) / |S|`` (DiffusionLM's
        normalisation), as ``{"loss", "token_scores"}``; the interface classifiers train LMs through.

        ``condition_fn(masked)`` is DiffusionLM's hook for conditions that depend on the masked
        positions; nothing is masked here, so it receives an all-False mask.
        """
        if condition_fn is not None:
            condition = condition_fn(torch.zeros_like(input_ids, dtype=torch.bool))
        scores = self.token_scores(input_ids, attention_mask, condition)
        loss = -scores.sum() / self.scored(attention_mask).sum().clamp_min(1)
        return {"loss": loss, "token_scores": scores}

    def training_step(self, batch, batch_idx):
        ids, att = batch["input_ids"], batch["attention_mask"]
        loss = self.training_loss(ids, att, self._condition(batch, batch_idx))["loss"]
        self.log("train/loss", loss, prog_bar=True, batch_size=ids.shape[0])
        return loss


    # --- validation: exact NLL, float64 sums -------------------------------------------------------
    def validation_step(self, batch, batch_idx):
        ids, att = batch["input_ids"], batch["attention_mask"]
        no_label = no_label_condition(self.backbone)
        conditions = None if no_label is None else [no_label]  # unconditional p(x), as DiffusionLM reports
        log_p = self.sequence_log_likelihood(ids, att, conditions=conditions)
        if conditions is not None:
            log_p = log_p[:, 0]
        self.record_validation(log_p, self.scored(att))

    # --- generation: left to right ----------------------------------------------------------------
    @torch.no_grad()
    def generate(self, prompts: list[str], length: int, sampler=None, seed: int | None = None,
                 condition: int | None = None, return_output: bool = False):
        """Decode ``prompts`` into texts of ``length`` tokens (prompt included), one token per step."""
        sampler = as_autoregressive(sampler or self.sampler, self.hparams.start_token_id)
        return generate_with_sampler(self, sampler, prompts, length, seed, condition, return_output)

"""``LanguageModel``: what the masked-diffusion and the autoregressive LM modules share.

The backbone call, the optimizer set-up, the training throughput (``TokenThroughputMixin``), and validation's
bookkeeping: float64 sums of the per-sequence negative log-likelihood and of the scored tokens
(torchmetrics, synced across processes), reported at the epoch end as

    val/nll_per_token = sum NLL / sum |S|,   val/bits_per_token = nll / ln 2,   val/ppl_bound = exp(nll)

(an upper bound for a diffusion model, exact for a causal one: ``ppl_is_bound``), then a few samples from
empty prompts (``num_samples`` of ``sample_length`` tokens) when a sampler and a tokenizer are set.
Subclasses give the objective: ``training_loss``, ``validation_step`` (calling ``record_validation``),
``sequence_log_likelihood`` and ``generate``.
"""

from __future__ import annotations

import math

import lightning as L
import torch
from torchmetrics.aggregation import SumMetric

from diffusion_lab.logging_utils import log_samples
from diffusion_lab.models.throughput import TokenThroughputMixin
from diffusion_lab.optim import configure_optimizers


class LanguageModel(TokenThroughputMixin, L.LightningModule):
    ppl_is_bound = True  #: val/ppl_bound bounds the perplexity from above (False: it is the exact perplexity)

    def _init_shared(self, backbone, optimizer, scheduler, tokenizer) -> None:
        """Call after ``save_hyperparameters`` (``num_samples`` and ``sample_length`` are read from them)."""
        self.backbone = backbone
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.tokenizer = tokenizer
        self.val_nll_sum, self.val_tokens = SumMetric(), SumMetric()
        self.val_nll_sum.set_dtype(torch.float64)
        self.val_tokens.set_dtype(torch.float64)
        self.last_samples: list[str] = []

    def forward(self, input_ids, attention_mask=None, condition=None):
        return self.backbone(input_ids, attention_mask, condition=condition)

    # --- validation ---------------------------------------------------------------------------------
    def record_validation(self, log_likelihood: torch.Tensor, scored_tokens: torch.Tensor) -> None:
        """One batch: per-sequence log-likelihoods (or bounds) and the count of tokens they score."""
        self.val_nll_sum.update(-log_likelihood.sum())
        self.val_tokens.update(scored_tokens.sum().double())

    def validation_metrics(self, nll: float) -> dict[str, float]:
        ppl = math.exp(min(nll, 50.0))
        exact = {} if self.ppl_is_bound else {"val/ppl": ppl}
        return {"val/nll_per_token": nll, "val/bits_per_token": nll / math.log(2), **exact, "val/ppl_bound": ppl}

    def on_validation_epoch_end(self):
        nll = float(self.val_nll_sum.compute() / self.val_tokens.compute().clamp_min(1))
        self.val_nll_sum.reset()
        self.val_tokens.reset()
        self.log_dict(self.validation_metrics(nll), sync_dist=True)
        if (self.sampler is not None and self.tokenizer is not None and self.hparams.num_samples > 0
                and not self.trainer.sanity_checking):
            self.last_samples = self.generate([""] * self.hparams.num_samples, self.hparams.sample_length)
            log_samples(self, self.last_samples, step=self.global_step)

    # --- optimisation -------------------------------------------------------------------------------
    def configure_optimizers(self):
        return configure_optimizers(self, self.optimizer_factory, self.scheduler_factory)

"""``DiffusionLM``: the masked-diffusion language model as a LightningModule.

Training: draw ``t`` from the masking schedule, mask, predict, weighted masked cross-entropy
(``diffusion_lab.masking``). Validation: the per-sequence likelihood bound of
``diffusion_lab.likelihood`` on fixed-seed draws, accumulated in float64 (torchmetrics), reported as
NLL per token, bits per token and perplexity bound. Samples are generated at each validation end.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffusion_lab.likelihood import elbo_log_likelihood
from diffusion_lab.masking import MaskingSchedule, rate_buckets
from diffusion_lab.models.conditions import draw_no_label, label_conditions, no_label_condition
from diffusion_lab.models.denoiser import Denoiser
from diffusion_lab.models.generation import generate_with_sampler
from diffusion_lab.models.lm_base import LanguageModel
from diffusion_lab.samplers.autoregressive import AutoregressiveSampler


class DiffusionLM(LanguageModel):
    """Masked-diffusion LM over any ``Denoiser`` backbone.

    ``optimizer`` / ``scheduler`` are partials (Hydra ``_partial_: true``) called in
    ``configure_optimizers``; the scheduler partial receives ``num_training_steps``.
    ``uncond_prob``: with a conditional backbone, the fraction of batches trained with the
    "no label" condition (the last condition id) so the same model also gives ``p(x)``.
    """

    def __init__(
        self,
        backbone: Denoiser,
        masking: MaskingSchedule,
        optimizer,
        scheduler=None,
        mask_token_id: int = 0,
        eval_draws: int = 4,
        eval_seed: int = 0,
        seed: int = 0,
        uncond_prob: float = 0.1,
        sampler=None,
        tokenizer=None,
        num_samples: int = 4,
        sample_length: int = 48,
        samples_dir: str | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone", "masking", "optimizer", "scheduler", "sampler", "tokenizer"])
        self._init_shared(backbone, optimizer, scheduler, tokenizer)
        self.masking, self.sampler = masking, sampler
        # masking draws have their own generator so a resumed run continues the same stream
        self.mask_generator = torch.Generator().manual_seed(seed)

    # --- model ---------------------------------------------------------------------------------

    def _condition(self, batch):
        """Label dropout (``models.conditions``), drawn from the masking generator."""
        no_label = no_label_condition(self.backbone)
        if no_label is None:
            return None
        return label_conditions(batch["labels"], no_label, draw_no_label(self.mask_generator, self.hparams.uncond_prob))

    def sequence_log_likelihood(self, input_ids, attention_mask, conditions=None, num_draws=None,
                                generator=None, return_token_scores=False, chunk_size=None, score_mask=None):
        """``log p(x)`` lower bound ``[B]`` (or ``log p(x | c)`` ``[B, C]`` on shared draws); see
        ``diffusion_lab.likelihood.elbo_log_likelihood``. The interface every LM offers classifiers."""
        return elbo_log_likelihood(
            self.backbone, input_ids, attention_mask, self.hparams.mask_token_id,
            num_draws or self.hparams.eval_draws, conditions=conditions, prefix_keep=self.masking.prefix_keep,
            generator=generator, chunk_size=chunk_size, return_token_scores=return_token_scores,
            score_mask=score_mask,
        )

    def training_step(self, batch, batch_idx):
        if hasattr(self.backbone, "set_anneal_step"):  # GPT-2: causal -> full attention over training
            self.backbone.set_anneal_step(self.global_step)
        ids, att = batch["input_ids"], batch["attention_mask"]
        out = self.training_loss(ids, att, self._condition(batch))
        self.log("train/loss", out["loss"], prog_bar=True, batch_size=ids.shape[0])
        self._log_buckets(out["nll"].detach(), out["masked"], out["rates"])
        return out["loss"]

    def training_loss(self, input_ids, attention_mask, condition=None, condition_fn=None) -> dict:
        """One draw of the training objective: sample ``t``, mask (``q_xt``), predict, weighted loss.

        ``condition_fn(masked) -> condition`` lets a caller make the condition depend on which
        positions were masked (the conditional classifier hides the label when its token is masked).
        Returns ``loss``, per-token ``nll`` ``[B, L]`` (zero where not masked), ``masked``, ``rates``.
        """
        t = self.masking.sample_t(input_ids.shape[0], self.mask_generator).to(input_ids.device)
        rates = self.masking.rate(t)
        x_t, masked = self.masking.q_xt(input_ids, attention_mask, rates, self.hparams.mask_token_id,
                                        self._cpu_gen(input_ids))
        if condition_fn is not None:
            condition = condition_fn(masked)
        # sparse head: logits only at the masked positions, the only ones the loss reads
        logits = self.backbone(x_t, attention_mask, condition=condition, positions=masked)
        nll = torch.zeros(input_ids.shape, dtype=torch.float32, device=input_ids.device)
        nll[masked] = F.cross_entropy(logits.float(), input_ids[masked], reduction="none")
        loss = self.masking.loss(None, input_ids, attention_mask, masked, t, nll=nll)
        return {"loss": loss, "nll": nll, "masked": masked, "rates": rates}

    def _cpu_gen(self, ids):
        # the generator lives on the CPU; masks are drawn there for any device, then moved
        return self.mask_generator if ids.device.type == "cpu" else None

    def _log_buckets(self, nll, masked, rates):
        """Unweighted masked cross-entropy per masking-rate bucket (``train/loss_mask_0.1`` ...)."""
        nll = nll * masked
        buckets = rate_buckets(rates)
        for bucket in buckets.unique():
            rows = buckets == bucket
            n = masked[rows].sum()
            if n > 0:
                self.log(f"train/loss_mask_{bucket.item():.1f}", nll[rows].sum() / n, batch_size=int(rows.sum()))


    # --- validation: the likelihood bound ---------------------------------------------------------
    def on_validation_epoch_start(self):
        self._val_gen = torch.Generator().manual_seed(self.hparams.eval_seed)

    def validation_step(self, batch, batch_idx):
        ids, att = batch["input_ids"], batch["attention_mask"]
        no_label = no_label_condition(self.backbone)
        condition = None if no_label is None else [no_label]  # unconditional p(x)
        scored = batch.get("score_mask")  # windows: overlap context is not scored (counted once)
        bound = self.sequence_log_likelihood(ids, att, conditions=condition, generator=self._val_gen,
                                             score_mask=scored)
        if condition is not None:
            bound = bound[:, 0]
        maskable = self.masking.maskable(att)
        self.record_validation(bound, maskable if scored is None else maskable & scored)

    # --- generation ---------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, prompts: list[str], length: int, sampler=None, seed: int | None = None,
                 condition: int | None = None, return_output: bool = False):
        """Decode ``prompts`` into texts of ``length`` tokens (prompt included) with ``sampler``."""
        sampler = sampler or self.sampler
        if isinstance(sampler, AutoregressiveSampler):
            raise ValueError("sampler=autoregressive generates left to right with a causal model; a diffusion "
                             "model needs sampler=confidence, random_remask or ddpm_cache")
        return generate_with_sampler(self, sampler, prompts, length, seed, condition, return_output)

    # --- resume: the masking stream is part of the state -------------------------------------------
    def on_save_checkpoint(self, checkpoint):
        checkpoint["mask_generator_state"] = self.mask_generator.get_state()

    def on_load_checkpoint(self, checkpoint):
        if "mask_generator_state" in checkpoint:
            self.mask_generator.set_state(checkpoint["mask_generator_state"])

"""``GenerativeClassifier``: class-conditional language models scored by Bayes' rule.

    log p(y | x) = log p(x | y) + log p(y) - logsumexp_y' [ log p(x | y') + log p(y') ]

``per_class``: one language model per class, each trained only on its class (the original
design). ``conditional``: one shared model reading ``[<label_y>, x]`` with the label also added
to every position as a condition embedding while its token is visible; the label token is masked
like any token, so the model also infills p(y | x), and ``<nolabel>`` batches (``uncond_prob``,
label dropout as ``models.conditions`` defines it) teach it p(x). Scoring lives in
``diffusion_lab.classifiers.scoring``.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from diffusion_lab.classifiers.label_tokens import with_prefix
from diffusion_lab.classifiers.scoring import class_log_likelihoods, doc_labels
from diffusion_lab.models.conditions import draw_no_label, label_conditions, no_label_condition
from diffusion_lab.models.throughput import TokenThroughputMixin


class GenerativeClassifier(TokenThroughputMixin, L.LightningModule):
    def __init__(
        self,
        lms: list,
        mode: str,
        num_classes: int,
        log_prior: list[float],
        mask_token_id: int,
        optimizer,
        scheduler=None,
        label_token_ids: list[int] | None = None,
        nolabel_token_id: int | None = None,
        start_token_id: int | None = None,
        estimator: str = "elbo_crn",
        num_draws: int = 8,
        val_draws: int = 2,
        adaptive_prune: bool = True,
        first_stage_draws: int = 2,
        prune_margin: float = 4.0,
        uncond_prob: float = 0.1,
        eval_seed: int = 0,
        seed: int = 0,
        sequential: bool = False,
        stop_z: float = 3.0,
        stage_draws: int | None = None,
        infill_weight: float = 0.0,
        infill_mask_prob: float = 0.5,
        infill_text: str = "noised",
        hybrid_threshold: float = 0.9,
        score_tokens: int | None = None,
        score_precision: str = "32",
        estimators: dict | None = None,
    ):
        super().__init__()
        if mode not in ("conditional", "per_class"):
            raise ValueError(f"classifier.mode={mode!r}: allowed values are conditional, per_class")
        if infill_text not in ("noised", "visible"):
            raise ValueError(f"classifier.infill_text={infill_text!r}: allowed values are noised, visible")
        if mode == "per_class" and len(lms) != num_classes:
            raise ValueError(f"per_class needs one language model per class ({num_classes}), got {len(lms)}")
        self.save_hyperparameters(ignore=["lms", "optimizer", "scheduler"])
        self.lms = nn.ModuleList(lms)
        self.mode, self.num_classes, self.mask_token_id = mode, num_classes, mask_token_id
        self.label_token_ids, self.nolabel_token_id = label_token_ids, nolabel_token_id
        self.start_token_id = start_token_id
        self.register_buffer("log_prior", torch.tensor(log_prior, dtype=torch.float64), persistent=True)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.generator = torch.Generator().manual_seed(seed)
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_nll = MeanMetric()

    @property
    def autoregressive(self) -> bool:
        return bool(getattr(self.lms[0].backbone, "causal", False))

    # --- training -----------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        for lm in self.lms:  # GPT-2: causal -> full attention over training (the LMs are not trained by fit)
            if hasattr(lm.backbone, "set_anneal_step"):
                lm.backbone.set_anneal_step(self.global_step)
        ids, att, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        if (labels < 0).any() or (labels >= self.num_classes).any():
            raise ValueError(f"training batch has labels outside 0..{self.num_classes - 1}: {labels.unique().tolist()}")
        loss = self._conditional_loss(ids, att, labels) if self.mode == "conditional" else self._per_class_loss(ids, att, labels)
        self.log("train/loss", loss, prog_bar=True, batch_size=ids.shape[0])
        return loss

    def _conditional_loss(self, ids, att, labels):
        lm = self.lms[0]
        drop = draw_no_label(self.generator, self.hparams.uncond_prob)  # drawn with or without a condition
        label_tokens = torch.tensor(self.label_token_ids, device=ids.device)
        first = torch.full_like(labels, self.nolabel_token_id) if drop else label_tokens[labels]
        x, a = with_prefix(ids, att, first)
        no_label = no_label_condition(lm.backbone)
        if no_label is None:
            return lm.training_loss(x, a)["loss"]
        if self.autoregressive:
            return lm.training_loss(x, a, condition=label_conditions(labels, no_label, drop))["loss"]
        if self.hparams.infill_weight > 0 and not drop:
            return self._loss_with_label_infill(lm, x, a, labels, no_label)

        def condition_fn(masked):  # the label is visible to every position only while its token is
            return label_conditions(labels, no_label, drop, hidden=masked[:, 0])

        return lm.training_loss(x, a, condition_fn=condition_fn)["loss"]

    def _loss_with_label_infill(self, lm, x, a, labels, no_label):
        """``(1 - w) * L_text + w * L_label`` with ``w = classifier.infill_weight``.

        ``L_text``: the diffusion loss of the masking schedule on the text tokens (the label token is
        not one of them). ``L_label = -log p(y | x_t)`` at the label token (softmax over the label
        tokens, as the readout reads it), the label token masked on its own with
        probability ``classifier.infill_mask_prob`` (mean over the rows where it is masked), the
        condition hidden there; both from ONE forward pass. The readout learns from a signal of its
        own size instead of one token in L + 1.

        ``classifier.infill_text``: ``noised`` masks the text of label-masked rows by the schedule too;
        ``visible`` keeps it clean there, the layout the readout scores (``infill_label_probs``), and
        ``L_text`` is then the bound over the label-visible rows only.
        """
        hp, schedule = self.hparams, lm.masking
        t = schedule.sample_t(x.shape[0], lm.mask_generator).to(x.device)
        text_att = a.clone()
        text_att[:, 0] = 0  # the label slot is not a text token of the schedule
        x_t, masked = schedule.q_xt(x, text_att, schedule.rate(t), self.mask_token_id, lm._cpu_gen(x))
        label_masked = torch.rand(x.shape[0], generator=self.generator).to(x.device) < hp.infill_mask_prob
        if hp.infill_text == "visible":  # clean text where the label is the target, as the readout reads it
            x_t = torch.where(label_masked[:, None], x, x_t)
            masked = masked & ~label_masked[:, None]
            text_att = text_att * ~label_masked[:, None]
        masked[:, 0] = label_masked
        x_t[:, 0] = torch.where(label_masked, torch.full_like(labels, self.mask_token_id), x[:, 0])
        cond = label_conditions(labels, no_label, False, hidden=label_masked)
        logits = lm.backbone(x_t, a, condition=cond, positions=masked)
        text_masked = masked.clone()
        text_masked[:, 0] = False
        at_label = (masked & ~text_masked)[masked]  # which rows of the sparse logits are label slots
        nll = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        nll[text_masked] = F.cross_entropy(logits[~at_label].float(), x[text_masked], reduction="none")
        text = schedule.loss(None, x, text_att, text_masked, t, nll=nll)
        # over the label tokens only: the readout's own softmax (infill_label_probs), not the vocabulary's
        label_logits = logits[at_label][:, self.label_token_ids].float()
        label = F.cross_entropy(label_logits, labels[label_masked]) if label_masked.any() else text * 0
        self.log("train/label_infill_nll", label, batch_size=x.shape[0])
        return (1 - hp.infill_weight) * text + hp.infill_weight * label

    def _per_class_loss(self, ids, att, labels):
        loss = ids.new_zeros((), dtype=torch.float32)
        for c, lm in enumerate(self.lms):
            rows = labels == c
            if rows.any():  # each model sees only its class; weights keep the gradient scale of one batch
                loss = loss + lm.training_loss(ids[rows], att[rows])["loss"] * rows.float().mean()
        return loss

    # --- scoring -------------------------------------------------------------------------------
    @torch.no_grad()
    def log_joint(self, input_ids, attention_mask, num_draws=None, estimator=None, generator=None,
                  adaptive=None, seed_draws=5, score_mask=None, doc_ids=None, sequential=None, stop_z=None,
                  stage_draws=None, return_token_scores=True):
        """``log p(x | y) + log p(y)`` ``[D, C]`` per document (float64; the prior added once per
        document) and the ``ClassScores`` behind it. ``None`` arguments take the hyperparameters."""
        hp = self.hparams
        k = num_draws or hp.num_draws
        if k == "auto":
            raise ValueError("classifier.num_draws=auto is chosen on validation first "
                             "(diffusion_lab.classifiers.draws.choose_num_draws)")
        seq = hp.get("sequential", False) if sequential is None else sequential
        z = stop_z or hp.get("stop_z", 3.0)
        if seq and z == "auto":
            raise ValueError("classifier.stop_z=auto is chosen on validation first "
                             "(diffusion_lab.classifiers.draws.choose_stop_z)")
        stage_draws = hp.get("stage_draws") if stage_draws is None else stage_draws
        if seq and stage_draws == "auto":
            raise ValueError("classifier.stage_draws=auto is chosen on validation first "
                             "(diffusion_lab.classifiers.draws.choose_stages)")
        scores = class_log_likelihoods(
            self, input_ids, attention_mask, estimator=estimator or hp.estimator,
            num_draws=int(k), generator=generator,
            adaptive=hp.adaptive_prune if adaptive is None else adaptive,
            first_stage_draws=hp.first_stage_draws, margin=hp.prune_margin, log_prior=self.log_prior,
            seed_draws=seed_draws, score_mask=score_mask, doc_ids=doc_ids,
            sequential=seq, stop_z=float(z) if seq else 3.0, stage_draws=None if stage_draws == "auto" else stage_draws,
            return_token_scores=return_token_scores, estimators=hp.get("estimators"),
        )
        return scores.log_lik + self.log_prior.to(scores.log_lik), scores

    def on_validation_epoch_start(self):
        self._val_gen = torch.Generator(device=self.device).manual_seed(self.hparams.eval_seed)

    def validation_step(self, batch, batch_idx):
        joint, _ = self.log_joint(batch["input_ids"], batch["attention_mask"], num_draws=self.hparams.val_draws,
                                  generator=self._val_gen, adaptive=False, sequential=False,
                                  score_mask=batch.get("score_mask"), doc_ids=batch.get("doc_ids"),
                                  return_token_scores=False)
        labels = doc_labels(batch["labels"], batch.get("doc_ids"))
        self.val_acc.update(joint.argmax(1), labels)
        self.val_nll.update(torch.nn.functional.cross_entropy(joint.float(), labels, reduction="none"))

    def on_validation_epoch_end(self):
        self.log_dict({"val/accuracy": self.val_acc.compute(), "val/clf_nll": self.val_nll.compute()}, sync_dist=True)
        self.val_acc.reset()
        self.val_nll.reset()

    # --- optimisation / state ------------------------------------------------------------------------
    def configure_optimizers(self):
        from diffusion_lab.optim import configure_optimizers

        return configure_optimizers(self, self.optimizer_factory, self.scheduler_factory)

    def on_save_checkpoint(self, checkpoint):
        checkpoint["generator_states"] = [self.generator.get_state()] + [
            lm.mask_generator.get_state() for lm in self.lms if hasattr(lm, "mask_generator")]

    def on_load_checkpoint(self, checkpoint):
        states = checkpoint.get("generator_states")
        if states:
            self.generator.set_state(states[0])
            for lm, state in zip([lm for lm in self.lms if hasattr(lm, "mask_generator")], states[1:], strict=False):
                lm.mask_generator.set_state(state)

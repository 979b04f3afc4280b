"""``GenerativeClassifier``: class-conditional language models scored by Bayes' rule.

    log p(y | x) = log p(x | y) + log p(y) - logsumexp_y' [ log p(x | y') + log p(y') ]

How the classes sit on the language models is the classifier's ``layout`` (``classifiers.base_layout``:
``conditional``, one shared model reading ``[<label_y>, x]``; ``per_class``, one model per class), the
object ``classifier.mode`` names; it owns the training loss, the scoring rows, the readouts and the
generation prefix. Scoring lives in ``diffusion_lab.classifiers.scoring``; its options in ``ScoreOptions``.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from diffusion_lab.classifiers.base_layout import Layout
from diffusion_lab.classifiers.scoring import ScoreOptions, class_log_likelihoods, doc_labels
from diffusion_lab.models.throughput import TokenThroughputMixin
from diffusion_lab.optim import configure_optimizers
from diffusion_lab.targets import named_target


class GenerativeClassifier(TokenThroughputMixin, L.LightningModule):
    def __init__(
        self,
        lms: list,
        mode: str | Layout,
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
        bayes_weight: float = 0.0,
        bayes_draws: int = 1,
        layout: Layout | None = None,
    ):
        """``mode``: the layout's name (saved in the checkpoint's hyperparameters); ``layout``: the object
        (``None``: the one the package's ``targets.classifier_mode`` table builds for ``mode``)."""
        super().__init__()
        if infill_text not in ("noised", "visible"):
            raise ValueError(f"classifier.infill_text={infill_text!r}: allowed values are noised, visible")
        self.layout = named_target("classifier.mode", mode)() if layout is None else layout
        self.layout.check(lms, num_classes)
        self.save_hyperparameters(ignore=["lms", "optimizer", "scheduler", "layout"])
        self.lms = nn.ModuleList(lms)
        if bayes_weight > 0 and self.autoregressive:  # its estimator masks tokens: a masked-diffusion model's
            raise ValueError(f"classifier.bayes_weight={bayes_weight} needs a masked-diffusion model; "
                             "autoregressive classifiers train with bayes_weight=0")
        self.mode, self.num_classes, self.mask_token_id = mode, num_classes, mask_token_id
        self.label_token_ids, self.nolabel_token_id = label_token_ids, nolabel_token_id
        self.start_token_id = start_token_id
        self.register_buffer("log_prior", torch.tensor(log_prior, dtype=torch.float64), persistent=True)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.generator = torch.Generator().manual_seed(seed)
        # the Bayes term's draws (classifiers.bayes_term): a stream of their own, so a bayes_weight > 0 run
        # draws its label dropout and infill masks as the bayes_weight = 0 run does
        self.bayes_generator = torch.Generator().manual_seed(seed + 1)
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_nll = MeanMetric()

    @property
    def autoregressive(self) -> bool:
        return bool(getattr(self.lms[0].backbone, "causal", False))

    @property
    def readouts(self) -> tuple[str, ...]:
        """The readouts this classifier has (``classifiers.predict``), as its layout says."""
        return self.layout.readouts(self.autoregressive)

    # --- training -----------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        for lm in self.lms:  # GPT-2: causal -> full attention over training (the LMs are not trained by fit)
            if hasattr(lm.backbone, "set_anneal_step"):
                lm.backbone.set_anneal_step(self.global_step)
        ids, att, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        if (labels < 0).any() or (labels >= self.num_classes).any():
            raise ValueError(f"training batch has labels outside 0..{self.num_classes - 1}: {labels.unique().tolist()}")
        loss = self.layout.training_loss(self, ids, att, labels, batch.get("score_mask"))
        self.log("train/loss", loss, prog_bar=True, batch_size=ids.shape[0])
        return loss

    # --- scoring -------------------------------------------------------------------------------
    def score_options(self, num_draws=None, estimator=None, adaptive=None, seed_draws=5, sequential=None,
                      stop_z=None, stage_draws=None, return_token_scores=True) -> ScoreOptions:
        """The run's ``ScoreOptions`` (its hyperparameters), each ``None`` argument left as saved; ``auto``
        values must have been chosen on validation first (``classifiers.draws``)."""
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
        return ScoreOptions(
            estimator=estimator or hp.estimator, num_draws=int(k),
            adaptive=hp.adaptive_prune if adaptive is None else adaptive, first_stage_draws=hp.first_stage_draws,
            margin=hp.prune_margin, seed_draws=seed_draws, sequential=seq, stop_z=float(z) if seq else 3.0,
            stage_draws=None if stage_draws == "auto" else stage_draws, return_token_scores=return_token_scores)

    @torch.no_grad()
    def log_joint(self, input_ids, attention_mask, generator=None, score_mask=None, doc_ids=None, **options):
        """``log p(x | y) + log p(y)`` ``[D, C]`` per document (float64; the prior added once per
        document) and the ``ClassScores`` behind it. ``options``: ``score_options``' arguments."""
        scores = class_log_likelihoods(self, input_ids, attention_mask, self.score_options(**options),
                                       generator=generator, log_prior=self.log_prior, score_mask=score_mask,
                                       doc_ids=doc_ids, estimators=self.hparams.get("estimators"))
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
        return configure_optimizers(self, self.optimizer_factory, self.scheduler_factory)

    def on_save_checkpoint(self, checkpoint):
        checkpoint["generator_states"] = [self.generator.get_state()] + [
            lm.mask_generator.get_state() for lm in self.lms if hasattr(lm, "mask_generator")]
        checkpoint["bayes_generator_state"] = self.bayes_generator.get_state()  # its own key: older runs lack it

    def on_load_checkpoint(self, checkpoint):
        if "bayes_generator_state" in checkpoint:
            self.bayes_generator.set_state(checkpoint["bayes_generator_state"])
        states = checkpoint.get("generator_states")
        if states:
            self.generator.set_state(states[0])
            for lm, state in zip([lm for lm in self.lms if hasattr(lm, "mask_generator")], states[1:], strict=False):
                lm.mask_generator.set_state(state)

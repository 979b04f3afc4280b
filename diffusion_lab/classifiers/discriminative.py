"""The ``discriminative`` baseline: the same backbone and size with a classification head.

Pooled last hidden states -> linear layer; cross-entropy. ``pooling="mean"`` (encoders): the mean of the
hidden states over the real tokens, ``h = sum_i m_i h_i / sum_i m_i``; ``pooling="last"`` (causal LMs, whose
state at position i has read only tokens <= i): the state of the last real token, ``h = h_j`` with
``j = max{i : m_i = 1}`` (either padding side). Trained on the same data for the
same number of optimizer steps as the generative classifier, and scored at the generative model's
``classifier.score_precision`` (bf16: the forward under bfloat16 autocast), so a run compares the two
at one precision.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from diffusion_lab.classifiers.scoring import score_autocast
from diffusion_lab.optim import configure_optimizers

POOLINGS = ("mean", "last")


class DiscriminativeClassifier(L.LightningModule):
    #: its one readout (``classifiers.predict``): softmax over the head's logits, one pass per window
    readouts = ("discriminative",)

    def __init__(self, backbone, num_classes: int, optimizer, scheduler=None, dropout: float = 0.1,
                 score_precision: str = "32", pooling: str = "mean"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"discriminative pooling={pooling!r}: allowed values are {', '.join(POOLINGS)}")
        self.save_hyperparameters(ignore=["backbone", "optimizer", "scheduler"])
        self.backbone = backbone
        hidden = backbone.input_embeddings().embedding_dim
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, num_classes))
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_nll = MeanMetric()

    def forward(self, input_ids, attention_mask, inputs_embeds=None):
        """Class logits ``[B, C]``; ``inputs_embeds`` enables gradient x input explanations."""
        hidden = self.backbone.encode(input_ids, attention_mask, inputs_embeds=inputs_embeds)
        if self.hparams.pooling == "last":
            last = attention_mask.shape[1] - 1 - attention_mask.flip(1).long().argmax(1)  # last real token
            return self.head(hidden[torch.arange(hidden.shape[0], device=hidden.device), last])
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1)
        return self.head(pooled)

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["labels"].shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"])
        self.val_acc.update(logits.argmax(1), batch["labels"])
        self.val_nll.update(F.cross_entropy(logits, batch["labels"], reduction="none"))

    def on_validation_epoch_end(self):
        self.log_dict({"val/accuracy": self.val_acc.compute(), "val/clf_nll": self.val_nll.compute()}, sync_dist=True)
        self.val_acc.reset()
        self.val_nll.reset()

    @torch.no_grad()
    def log_joint(self, input_ids, attention_mask, **_):
        """Same interface as the generative classifier: unnormalised class scores ``[B, C]`` (float64)."""
        with score_autocast(self, input_ids.device):
            logits = self(input_ids, attention_mask)
        return logits.double(), None

    def configure_optimizers(self):
        return configure_optimizers(self, self.optimizer_factory, self.scheduler_factory)

"""The one scoring path: any classifier, any readout, batches of windows -> one row per DOCUMENT.

``task=train_classifier`` (``predict`` on its data loaders) and ``task=evaluate`` (``RunModels``, on
batches it builds from texts) both come here, so the fast path exists once.

Readouts of a generative classifier (``readout=``):

- ``bayes``: ``log p(x | y) + log p(y)`` from the bound (fixed K, sequential or pruned; see
  ``classifiers.scoring``); passes per document as spent.
- ``infill``: the conditional model's one-pass label readout (``scoring.infill_label_probs``).
- ``hybrid``: the infill posterior where its largest probability is at least ``hybrid_threshold``;
  Bayes draws only for the other documents (1 pass, plus the draws where it is unsure).

A discriminative model's document logits are the scored-token-weighted mean of its window logits
(``sum_w n_w z_w / sum_w n_w``): each scored token counts once, like the generative sum, while the
scale of the logits stays that of one window (its temperature is fitted on validation anyway).

Draws come from one generator on the model's device seeded with ``seed`` (reproducible).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from diffusion_lab.classifiers.scoring import (
    doc_labels,
    documents,
    infill_label_probs,
    per_document,
    scored_token_mean,
)
from diffusion_lab.likelihood import device_generator

READOUTS = ("bayes", "infill", "hybrid")


@dataclass
class Predictions:
    log_joint: torch.Tensor  # [N, C] float64: log p(x | y) + log p(y) (or discriminative logits)
    labels: torch.Tensor  # [N]
    examples_per_s: float
    forward_passes_per_example: float
    token_scores: list | None = None  # per document [C, n_scored] (generative, on request)
    passes: torch.Tensor | None = None  # [N] forward passes per document
    draw_values: torch.Tensor | None = None  # [N, K, C] each draw's log p(x | y) (Bayes readout, on request)

    @property
    def probs(self) -> torch.Tensor:
        return torch.softmax(self.log_joint, -1)


def _on(batch: dict, device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def _score_mask(batch: dict) -> torch.Tensor:
    return batch["score_mask"] if batch.get("score_mask") is not None else batch["attention_mask"].bool()


def discriminative_documents(model, batch: dict):
    """Scored-token-weighted mean of window logits per document ``[D, C]`` and passes ``[D]``."""
    logits, _ = model.log_joint(batch["input_ids"], batch["attention_mask"])
    index, num_docs = documents(batch.get("doc_ids"), len(logits), logits.device)
    joint = scored_token_mean(logits.double(), _score_mask(batch), index, num_docs)
    return joint, per_document(torch.ones(len(logits), dtype=torch.float64, device=logits.device), index, num_docs), None


def infill_documents(clf, batch: dict):
    probs = infill_label_probs(clf, batch["input_ids"], batch["attention_mask"], batch.get("score_mask"),
                               batch.get("doc_ids"))
    index, num_docs = documents(batch.get("doc_ids"), batch["input_ids"].shape[0], probs.device)
    return torch.log(probs.double().clamp_min(1e-300)), per_document(torch.ones(len(index), dtype=torch.float64,
                                                                                device=probs.device), index, num_docs)


def bayes_documents(clf, batch: dict, generator, keep_token_scores=False, **score_kwargs):
    """``(log joint [D, C], passes [D], token scores per document or None, per-draw values [D, K, C] or None)``."""
    score_mask = _score_mask(batch)
    joint, scores = clf.log_joint(batch["input_ids"], batch["attention_mask"], generator=generator,
                                  score_mask=score_mask, doc_ids=batch.get("doc_ids"),
                                  return_token_scores=keep_token_scores, **score_kwargs)
    tokens = None
    if keep_token_scores and scores.token_scores is not None:
        index, num_docs = documents(batch.get("doc_ids"), len(score_mask), score_mask.device)
        tokens = [[] for _ in range(num_docs)]
        for w in range(len(score_mask)):  # a document's scored tokens, window after window
            tokens[int(index[w])].append(scores.token_scores[w][:, score_mask[w]].cpu())
        tokens = [torch.cat(t, -1) for t in tokens]
    passes = scores.passes if scores.passes is not None else torch.full((len(joint),), scores.forward_passes)
    return joint, passes.double(), tokens, scores.values


def hybrid_documents(clf, batch: dict, generator, threshold: float, **score_kwargs):
    """Infill where it is sure (max prob >= ``threshold``), Bayes draws for the other documents."""
    joint, passes = infill_documents(clf, batch)
    unsure = joint.exp().max(1).values < threshold
    if unsure.any():
        index, _ = documents(batch.get("doc_ids"), batch["input_ids"].shape[0], joint.device)
        rows = unsure[index]
        sub = {k: v[rows] if torch.is_tensor(v) and v.shape[:1] == rows.shape else v for k, v in batch.items()}
        bayes, extra, _, _ = bayes_documents(clf, sub, generator, **score_kwargs)
        joint[unsure], passes[unsure] = bayes.to(joint), passes[unsure] + extra.to(passes)
    return joint, passes


def score_batch(model, batch: dict, generator=None, readout: str = "bayes", keep_token_scores: bool = False,
                hybrid_threshold: float | None = None, **score_kwargs):
    """One batch of windows -> ``(log joint [D, C], passes [D], token scores or None, per-draw values or None)``."""
    if readout not in READOUTS:
        raise ValueError(f"readout={readout!r}: allowed values are {', '.join(READOUTS)}")
    if "discriminative" in model.readouts:  # the model's own readout, whatever was asked of a generative one
        return (*discriminative_documents(model, batch), None)
    if readout == "infill":
        return (*infill_documents(model, batch), None, None)
    if readout == "hybrid":
        threshold = model.hparams.get("hybrid_threshold", 0.9) if hybrid_threshold is None else hybrid_threshold
        return (*hybrid_documents(model, batch, generator, threshold, **score_kwargs), None, None)
    return bayes_documents(model, batch, generator, keep_token_scores, **score_kwargs)


@torch.no_grad()
def predict(model, dataloader, seed: int = 0, keep_token_scores: bool = False, readout: str = "bayes",
            keep_draws: bool = False, **score_kwargs) -> Predictions:
    """Inference over ``dataloader`` (batches of windows) with one device generator seeded by ``seed``;
    ``keep_draws``: also each document's per-draw estimates (``Predictions.draw_values``)."""
    was_training = model.training
    model.eval()
    gen = device_generator(seed, model.device)
    joints, labels, tokens, passes, draws = [], [], [], [], []
    start = time.perf_counter()
    for batch in dataloader:
        batch = _on(batch, model.device)
        joint, spent, toks, values = score_batch(model, batch, gen, readout, keep_token_scores, **score_kwargs)
        joints.append(joint.double().cpu())
        if keep_draws and values is not None:
            draws.append(values.cpu())
        passes.append(spent.double().cpu())
        if "labels" in batch:
            labels.append(doc_labels(batch["labels"], batch.get("doc_ids")).cpu())
        tokens += toks or []
    elapsed = time.perf_counter() - start
    model.train(was_training)
    passes = torch.cat(passes) if passes else torch.zeros(0, dtype=torch.float64)
    n = len(passes)
    return Predictions(torch.cat(joints).double(), torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long),
                       n / max(elapsed, 1e-9), float(passes.mean()) if n else 0.0, tokens or None, passes,
                       torch.cat(draws) if draws else None)

"""Score a split with a trained classifier: log joint ``[N, C]``, labels, speed, fixed-seed draws."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch


@dataclass
class Predictions:
    log_joint: torch.Tensor  # [N, C] float64: log p(x | y) + log p(y) (or discriminative logits)
    labels: torch.Tensor  # [N]
    examples_per_s: float
    forward_passes_per_example: float
    token_scores: list | None = None  # per item [C, L_i] (generative, on request)

    @property
    def probs(self) -> torch.Tensor:
        return torch.softmax(self.log_joint, -1)


@torch.no_grad()
def predict(model, dataloader, seed: int = 0, keep_token_scores: bool = False, **score_kwargs) -> Predictions:
    """Inference over ``dataloader`` with one generator seeded by ``seed`` (reproducible draws)."""
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    joints, labels, tokens, passes, n = [], [], [], 0.0, 0
    start = time.perf_counter()
    for batch in dataloader:
        ids = batch["input_ids"].to(model.device)
        att = batch["attention_mask"].to(model.device)
        joint, scores = model.log_joint(ids, att, generator=gen, **score_kwargs)
        joints.append(joint.cpu())
        labels.append(batch["labels"])
        passes += (scores.forward_passes if scores is not None else 1.0) * ids.shape[0]
        n += ids.shape[0]
        if keep_token_scores and scores is not None and scores.token_scores is not None:
            lengths = att.sum(1).tolist()
            tokens.extend(scores.token_scores[i, :, : lengths[i]].cpu() for i in range(ids.shape[0]))
    elapsed = time.perf_counter() - start
    model.train(was_training)
    return Predictions(torch.cat(joints).double(), torch.cat(labels), n / max(elapsed, 1e-9),
                       passes / max(n, 1), tokens or None)

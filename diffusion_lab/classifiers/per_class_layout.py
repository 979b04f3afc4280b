"""``PerClassLayout`` (``classifier.mode=per_class``): one language model per class, each trained only on
its class (the original design). No label token: model c scores the rows of class c."""

from __future__ import annotations

import torch

from diffusion_lab.builders import build_lm
from diffusion_lab.classifiers.base_layout import Layout
from diffusion_lab.likelihood import sparse_logits


class PerClassLayout(Layout):
    def build(self, cfg, tokenizer, num_classes: int) -> dict:
        """One language model per class, all starting from the first one's weights: random weights (a
        random-init model, or the new MLM head of a head-less checkpoint such as MiniLM's) drawn once per
        class would add a context term ``log p_c(x) - log p_c'(x)`` that is pure initialisation noise and
        does not cancel between classes. Only what is trained on each class's data (and its unigram bias,
        set later) tells them apart."""
        lms = [build_lm(cfg, tokenizer) for _ in range(num_classes)]
        for lm in lms[1:]:
            lm.load_state_dict(lms[0].state_dict())
        return {"lms": lms, "label_token_ids": None, "nolabel_token_id": None}

    def check(self, lms, num_classes: int) -> None:
        if len(lms) != num_classes:
            raise ValueError(f"per_class needs one language model per class ({num_classes}), got {len(lms)}")

    def generative_loss(self, clf, ids, att, labels):
        """``sum_c (B_c / B) * L_c``: each model's loss on its class's rows only."""
        loss = ids.new_zeros((), dtype=torch.float32)
        for c, lm in enumerate(clf.lms):
            rows = labels == c
            if rows.any():  # each model sees only its class; weights keep the gradient scale of one batch
                loss = loss + lm.training_loss(ids[rows], att[rows])["loss"] * rows.float().mean()
        return loss

    def score(self, scorer, x, att, condition, positions):
        order = torch.zeros(positions.shape, dtype=torch.long, device=x.device)
        order[positions] = torch.arange(int(positions.sum()), device=x.device)
        out = None
        for c in condition.unique().tolist():  # one model per class: its rows, in one pass
            rows = condition == c
            part = sparse_logits(scorer.clf.lms[c].backbone, x[rows], att[rows], None, positions[rows])
            if out is None:
                out = part.new_empty(int(positions.sum()), part.shape[-1])
            out[order[rows][positions[rows]]] = part
        return out

    def logits(self, scorer, c: int, x, att, label_pos: int = 0):
        return scorer.clf.lms[c].backbone(x, att)

    def generation(self, clf, c: int, tokenizer):
        return clf.lms[c], "", None, 0

    @torch.no_grad()
    def drop_class_bias(self, clf) -> None:
        """Every class model's ``output_bias`` replaced by their mean: the class difference of the biases
        (``log p(w | c) - log p(w)`` at a unigram start) is removed, what they share is kept."""
        biases = [getattr(lm.backbone, "output_bias", None) for lm in clf.lms]
        if any(b is None for b in biases):
            raise ValueError("these per-class models have no output bias (output_bias): nothing to drop")
        mean = torch.stack([b.float() for b in biases]).mean(0)
        for b in biases:
            b.copy_(mean.to(b))

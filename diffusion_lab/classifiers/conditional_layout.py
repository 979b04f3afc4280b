"""``ConditionalLayout`` (``classifier.mode=conditional``): one shared model reads ``[<label_y>, x]``.

The label is also added to every position as a condition embedding while its token is visible; the
label token is masked like any token, so the model also infills ``p(y | x)`` (the ``infill`` and
``hybrid`` readouts), and ``<nolabel>`` batches (``uncond_prob``, label dropout as
``models.conditions`` defines it) teach it ``p(x)``. Scoring puts every class of a draw in one pass:
row r is class ``condition[r]``: label token ``<label_c>`` at position 0 and condition embedding c.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffusion_lab.builders import build_lm
from diffusion_lab.classifiers.base_layout import Layout
from diffusion_lab.classifiers.label_tokens import add_label_tokens, with_prefix
from diffusion_lab.likelihood import sparse_logits
from diffusion_lab.models.conditions import (
    draw_no_label,
    label_conditions,
    no_label_condition,
    num_conditions,
)


class ConditionalLayout(Layout):
    prefix = 1  # the label slot

    def build(self, cfg, tokenizer, num_classes: int) -> dict:
        """One shared model (the label tokens are added to ``tokenizer`` before the embeddings are sized),
        with a condition embedding per class plus "no label" unless ``classifier.label_embedding=false``."""
        label_ids, nolabel = add_label_tokens(tokenizer, num_classes)
        conditions = num_conditions(num_classes) if cfg.classifier.get("label_embedding", True) else 0
        return {"lms": [build_lm(cfg, tokenizer, num_conditions=conditions)],
                "label_token_ids": label_ids, "nolabel_token_id": nolabel}

    def readouts(self, autoregressive: bool) -> tuple[str, ...]:
        """The label token infills in one pass only in a masked-diffusion model."""
        return ("bayes",) if autoregressive else ("bayes", "infill", "hybrid")

    # --- training -----------------------------------------------------------------------------------
    def generative_loss(self, clf, ids, att, labels):
        """The LM's training loss on ``[<label_y> or <nolabel>, x]``; with ``infill_weight > 0`` (diffusion,
        labelled batches) the mixture of ``label_infill_loss``."""
        lm = clf.lms[0]
        drop = draw_no_label(clf.generator, clf.hparams.uncond_prob)  # drawn with or without a condition
        label_tokens = torch.tensor(clf.label_token_ids, device=ids.device)
        first = torch.full_like(labels, clf.nolabel_token_id) if drop else label_tokens[labels]
        x, a = with_prefix(ids, att, first)
        no_label = no_label_condition(lm.backbone)
        if no_label is None:
            return lm.training_loss(x, a)["loss"]
        if clf.autoregressive:
            return lm.training_loss(x, a, condition=label_conditions(labels, no_label, drop))["loss"]
        if clf.hparams.infill_weight > 0 and not drop:
            return label_infill_loss(clf, lm, x, a, labels, no_label)

        def condition_fn(masked):  # the label is visible to every position only while its token is
            return label_conditions(labels, no_label, drop, hidden=masked[:, 0])

        return lm.training_loss(x, a, condition_fn=condition_fn)["loss"]

    # --- scoring ------------------------------------------------------------------------------------
    def inputs(self, clf, input_ids, attention_mask, score_mask=None):
        """The label slot prepended (filled per class by ``score``); never scored."""
        first = torch.full((input_ids.shape[0],), clf.label_token_ids[0], device=input_ids.device)
        input_ids, attention_mask = with_prefix(input_ids, attention_mask, first)
        if score_mask is not None:
            score_mask = torch.cat([score_mask.new_zeros(score_mask.shape[0], self.prefix), score_mask], 1)
        return input_ids, attention_mask, score_mask

    def score(self, scorer, x, att, condition, positions):
        backbone = scorer.clf.lms[0].backbone
        x = x.clone()
        x[:, 0] = scorer.label_ids(x.device)[condition]
        cond = condition if backbone.condition_embedding is not None else None
        return sparse_logits(backbone, x, att, cond, positions)

    def logits(self, scorer, c: int, x, att, label_pos: int = 0):
        clf = scorer.clf
        x = x.clone()
        x[:, label_pos] = clf.label_token_ids[c]
        backbone = clf.lms[0].backbone
        cond = None
        if backbone.condition_embedding is not None:
            cond = torch.full((x.shape[0],), c, device=x.device, dtype=torch.long)
        return backbone(x, att, condition=cond)

    # --- generation and p(x) ------------------------------------------------------------------------
    def generation(self, clf, c: int, tokenizer):
        """The shared model on a canvas starting with ``<label_c>`` (kept), condition ``c`` throughout."""
        lm = clf.lms[0]
        prefix = tokenizer.convert_ids_to_tokens(clf.label_token_ids[c])
        condition = c if lm.backbone.condition_embedding is not None else None
        return lm, prefix, condition, 1

    def unconditional_token(self, clf) -> int | None:
        """``<nolabel>``: the model's own p(x), trained on ``uncond_prob`` of the batches (diffusion only)."""
        return None if clf.autoregressive else clf.nolabel_token_id

    @torch.no_grad()
    def drop_class_bias(self, clf) -> None:
        """``condition_bias[c] = 0`` for every condition (``log p(w | c) - log p(w)`` at a unigram start)."""
        bias = getattr(clf.lms[0].backbone, "condition_bias", None)
        if bias is None:
            raise ValueError("this conditional model has no per-class output bias (condition_bias): nothing to drop")
        bias.weight.zero_()


def label_infill_loss(clf, lm, x, a, labels, no_label):
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
    hp, schedule, mask_id = clf.hparams, lm.masking, clf.mask_token_id
    t = schedule.sample_t(x.shape[0], lm.mask_generator).to(x.device)
    text_att = a.clone()
    text_att[:, 0] = 0  # the label slot is not a text token of the schedule
    x_t, masked = schedule.q_xt(x, text_att, schedule.rate(t), mask_id, lm._cpu_gen(x))
    label_masked = torch.rand(x.shape[0], generator=clf.generator).to(x.device) < hp.infill_mask_prob
    if hp.infill_text == "visible":  # clean text where the label is the target, as the readout reads it
        x_t = torch.where(label_masked[:, None], x, x_t)
        masked = masked & ~label_masked[:, None]
        text_att = text_att * ~label_masked[:, None]
    masked[:, 0] = label_masked
    x_t[:, 0] = torch.where(label_masked, torch.full_like(labels, mask_id), x[:, 0])
    cond = label_conditions(labels, no_label, False, hidden=label_masked)
    logits = lm.backbone(x_t, a, condition=cond, positions=masked)
    text_masked = masked.clone()
    text_masked[:, 0] = False
    at_label = (masked & ~text_masked)[masked]  # which rows of the sparse logits are label slots
    nll = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    nll[text_masked] = F.cross_entropy(logits[~at_label].float(), x[text_masked], reduction="none")
    text = schedule.loss(None, x, text_att, text_masked, t, nll=nll)
    # over the label tokens only: the readout's own softmax (infill_label_probs), not the vocabulary's
    label_logits = logits[at_label][:, clf.label_token_ids].float()
    label = F.cross_entropy(label_logits, labels[label_masked]) if label_masked.any() else text * 0
    clf.log("train/label_infill_nll", label, batch_size=x.shape[0])
    return (1 - hp.infill_weight) * text + hp.infill_weight * label

"""``Layout``: how a generative classifier lays its classes out over language models, the one interface.

A layout is the object ``classifier.mode`` names (its ``_target_`` in ``targets.classifier_mode``,
conf/config.yaml; the name stays what configs and runs save). It owns everything that differs between
layouts, so no code compares a mode name:

- ``build``: the language models (and label tokens) for ``num_classes`` classes;
- ``generative_loss``: the training loss of one batch (the layout's NELBO / infill terms);
- ``training_loss``: that loss plus the Bayes term of ``classifier.bayes_weight`` (``classifiers.bayes_term``):

      loss = generative_loss + lambda * CE(y, softmax_c(s_c + log p(c)))

  with ``s_c`` the K = 1 class log-likelihood estimate of each window on ONE masked draw shared by all
  classes; ``lambda = 0`` adds nothing and draws nothing (the generative loss, bit for bit);
- ``prefix`` / ``inputs`` / ``score`` / ``logits``: the scoring rows of each class (``scoring.ClassScorer``);
- ``readouts``: the readouts it has (``classifiers.predict``: bayes, infill, hybrid);
- ``generation``: the model, prefix and condition that generate class ``c``;
- ``unconditional_token``: the input token of its own ``p(x)``, if it has one;
- ``drop_class_bias``: remove the per-class output biases (the naive-Bayes word term) from a trained model.

A new layout is one subclass and one ``conf/classifier/<name>.yaml`` (plus its ``targets`` entry).
"""

from __future__ import annotations

import torch

from diffusion_lab.classifiers.bayes_term import bayes_cross_entropy


class Layout:
    """The interface (see the module docstring); subclasses fill in the layout-specific parts."""

    #: tokens prepended to every text row (a label slot), never masked, never scored
    prefix = 0

    def build(self, cfg, tokenizer, num_classes: int) -> dict:
        """``{"lms": [...], "label_token_ids": ..., "nolabel_token_id": ...}`` for ``GenerativeClassifier``."""
        raise NotImplementedError

    def check(self, lms, num_classes: int) -> None:
        """Raise ``ValueError`` when ``lms`` cannot serve ``num_classes`` classes in this layout."""

    def readouts(self, autoregressive: bool) -> tuple[str, ...]:
        """Every layout has Bayes' rule over the class-conditional bound."""
        return ("bayes",)

    # --- training -----------------------------------------------------------------------------------
    def generative_loss(self, clf, ids, att, labels) -> torch.Tensor:
        raise NotImplementedError

    def training_loss(self, clf, ids, att, labels, score_mask=None) -> torch.Tensor:
        """``generative_loss + bayes_weight * bayes_ce`` (module docstring); the Bayes term only for
        ``bayes_weight > 0``, so that ``0`` is today's loss and random streams, bit for bit."""
        loss = self.generative_loss(clf, ids, att, labels)
        weight = float(clf.hparams.get("bayes_weight", 0.0) or 0.0)
        if weight > 0:
            draws = int(clf.hparams.get("bayes_draws", 1) or 1)
            ce = bayes_cross_entropy(clf, ids, att, labels, clf.bayes_generator, score_mask, draws)
            clf.log("train/bayes_ce", ce, batch_size=ids.shape[0])
            loss = loss + weight * ce
        return loss

    # --- scoring ------------------------------------------------------------------------------------
    def inputs(self, clf, input_ids, attention_mask, score_mask=None):
        """``(ids, att, score_mask)`` of the scoring rows (with the layout's prefix, if any)."""
        return input_ids, attention_mask, score_mask

    def score(self, scorer, x, att, condition, positions) -> torch.Tensor:
        """Logits ``[N, V]`` at ``positions`` for rows of classes ``condition [R]`` (one pass per model)."""
        raise NotImplementedError

    def logits(self, scorer, c: int, x, att, label_pos: int = 0) -> torch.Tensor:
        """Dense logits of class ``c`` on ``x`` (``label_pos``: where a label token sits)."""
        raise NotImplementedError

    # --- generation and p(x) ------------------------------------------------------------------------
    def generation(self, clf, c: int, tokenizer):
        """``(lm, prefix text, condition, extra tokens)`` that generate class ``c``."""
        raise NotImplementedError

    def unconditional_token(self, clf) -> int | None:
        """The input token of the layout's own unconditional ``p(x)`` (``None``: it has none)."""
        return None

    def drop_class_bias(self, clf) -> None:
        """Set the class-dependent part of the output biases to zero, in place (the ``task=score``
        ablation ``score.drop_class_bias``): what the Bayes readout then reads comes through the
        transformer's reading of the text, not from per-class word counts."""
        raise NotImplementedError

"""The Bayes readout as a training signal: ``classifier.bayes_weight`` (lambda), the generative-
discriminative dial.

Per training window w (one row of the batch), ONE masked draw shared by every class (common random
numbers; the scoring estimator of ``classifiers.scoring`` with K = 1): ``l`` uniform on ``{1..L}`` (L the
window's scored tokens), exactly ``l`` of them masked uniformly without replacement
(``likelihood.stratified_mask_draws``), and

    s_c(w)  = (L / l) * sum_{i masked} log p(x_i | x_masked, y = c)        (a one-draw ELBO estimate)
    q(c | w) = softmax_c( s_c(w) + log p(c) )
    bayes_ce = mean_w -log q(y_w | w)

added to the layout's generative loss times lambda (``Layout.training_loss``). Every class of the draw is
one row of ONE batched pass, through the layout's own scoring rows (``Layout.score``), so the term reads
exactly what the Bayes readout reads. The draw comes from the classifier's ``bayes_generator`` (its own
stream: the other random streams, and so the generative term, are those of a lambda = 0 run). The bound
used for scoring, perplexity and OOD is untouched: it is the plain ELBO of the layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffusion_lab.classifiers.scoring import ClassScorer
from diffusion_lab.likelihood import stratified_mask_draws


def class_estimates(clf, input_ids, attention_mask, generator, score_mask=None) -> torch.Tensor:
    """``s [W, C]`` (float64, differentiable): every class's one-draw estimate of each window, all on the
    same draw (module docstring)."""
    scorer = ClassScorer(clf)
    ids, att, maskable = scorer.inputs(input_ids, attention_mask, score_mask)
    draws = stratified_mask_draws(maskable, 1, generator)
    masked, weight = draws.masked[:, 0], draws.weight[:, 0]  # [W, L], [W]: the one draw, L / l
    windows, classes = ids.shape[0], clf.num_classes
    # rows (w, c), classes innermost: window w's draw repeated for every class
    m = masked.repeat_interleave(classes, 0)
    x0 = ids.repeat_interleave(classes, 0)
    condition = torch.arange(classes, device=ids.device).repeat(windows)
    x = torch.where(m, torch.full_like(x0, clf.mask_token_id), x0)
    # the layout's scoring rows without scoring's autocast: training runs at the trainer's precision
    logits = clf.layout.score(scorer, x, att.repeat_interleave(classes, 0), condition, m)
    logp = -F.cross_entropy(logits.float(), x0[m], reduction="none")
    row_of = m.nonzero(as_tuple=True)[0]
    sums = torch.zeros(len(x0), dtype=torch.float64, device=ids.device).index_add(0, row_of, logp.double())
    return (sums * weight.double().repeat_interleave(classes)).view(windows, classes)


def bayes_cross_entropy(clf, input_ids, attention_mask, labels, generator, score_mask=None) -> torch.Tensor:
    """``mean_w -log softmax_c(s_c(w) + log p(c))[y_w]`` (module docstring), float32."""
    s = class_estimates(clf, input_ids, attention_mask, generator, score_mask)
    joint = s + clf.log_prior.to(s)
    return F.cross_entropy(joint, labels.to(joint.device)).float()

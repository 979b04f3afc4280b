"""The Bayes readout as a training signal: ``classifier.bayes_weight`` (lambda), the generative-
discriminative dial.

Per training window w (one row of the batch), K = ``classifier.bayes_draws`` masked draws shared by every
class (common random numbers; the scoring estimator of ``classifiers.scoring`` with K draws, default 1): draw
k masks exactly ``l_k`` of the window's L scored tokens uniformly without replacement, the ``l_k`` stratified
over ``{1..L}`` (``likelihood.stratified_mask_draws``; K = 1: ``l`` uniform), and

    s_c(w)  = 1/K sum_k (L / l_k) * sum_{i masked in k} log p(x_i | x_masked_k, y = c)   (a K-draw ELBO estimate)
    q(c | w) = softmax_c( s_c(w) + log p(c) )
    bayes_ce = mean_w -log q(y_w | w)

added to the layout's generative loss times lambda (``Layout.training_loss``). Every class of the draw is
one row of ONE batched pass, through the layout's own scoring rows (``Layout.score``), so the term reads
exactly what the Bayes readout reads. One draw weighs a single token by L (at l = 1), so class differences
of tens of nats saturate the posterior; K draws divide the estimate's variance by about K, for K times the
term's rows (W x K x C). The draw comes from the classifier's ``bayes_generator`` (its own
stream: the other random streams, and so the generative term, are those of a lambda = 0 run). The bound
used for scoring, perplexity and OOD is untouched: it is the plain ELBO of the layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffusion_lab.classifiers.scoring import ClassScorer
from diffusion_lab.likelihood import stratified_mask_draws


def class_estimates(clf, input_ids, attention_mask, generator, score_mask=None, num_draws: int = 1) -> torch.Tensor:
    """``s [W, C]`` (float64, differentiable): every class's ``num_draws``-draw estimate of each window, all
    classes on the same draws (module docstring)."""
    scorer = ClassScorer(clf)
    ids, att, maskable = scorer.inputs(input_ids, attention_mask, score_mask)
    draws = stratified_mask_draws(maskable, num_draws, generator)  # masked [W, K, L], weight [W, K] = L / l_k
    windows, classes = ids.shape[0], clf.num_classes
    repeats = num_draws * classes
    # rows (w, k, c), classes innermost: draw k of window w repeated for every class
    m = draws.masked.flatten(0, 1).repeat_interleave(classes, 0)
    x0 = ids.repeat_interleave(repeats, 0)
    condition = torch.arange(classes, device=ids.device).repeat(windows * num_draws)
    x = torch.where(m, torch.full_like(x0, clf.mask_token_id), x0)
    # the layout's scoring rows without scoring's autocast: training runs at the trainer's precision
    logits = clf.layout.score(scorer, x, att.repeat_interleave(repeats, 0), condition, m)
    logp = -F.cross_entropy(logits.float(), x0[m], reduction="none")
    row_of = m.nonzero(as_tuple=True)[0]
    sums = torch.zeros(len(x0), dtype=torch.float64, device=ids.device).index_add(0, row_of, logp.double())
    weighted = sums * draws.weight.double().flatten().repeat_interleave(classes)
    return weighted.view(windows, num_draws, classes).mean(1)


def bayes_cross_entropy(clf, input_ids, attention_mask, labels, generator, score_mask=None,
                        num_draws: int = 1) -> torch.Tensor:
    """``mean_w -log softmax_c(s_c(w) + log p(c))[y_w]`` (module docstring), float32."""
    s = class_estimates(clf, input_ids, attention_mask, generator, score_mask, num_draws)
    joint = s + clf.log_prior.to(s)
    return F.cross_entropy(joint, labels.to(joint.device)).float()

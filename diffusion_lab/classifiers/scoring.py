"""Class-conditional log-likelihoods ``log p(x | y)`` for generative classifiers.

``elbo_crn``: the stratified bound of ``diffusion_lab.likelihood`` with common random numbers:
every class is scored on the same ``l`` and the same masked positions. For more than two
classes, ``adaptive`` scoring spends ``first_stage_draws`` on every class, drops those more than
``margin`` nats behind the best (for every item of the batch), and spends the rest only on the
survivors; estimates are the draw-weighted means of both stages (each stage is unbiased).

``seed_mean_loss``: the original recipe, for comparison: mask 15% of the tokens, 5 independent
draws per class, score = minus the mean (length-normalised) masked cross-entropy. Not a
likelihood; its "posterior" is only a softmax of scores.

Autoregressive LMs give the exact ``log p(x | y)`` (no draws).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffusion_lab.likelihood import elbo_log_likelihood
from diffusion_lab.masking import token_nll


@dataclass
class ClassScores:
    """``log_lik [B, C]`` (``-inf``-free; pruned classes keep their first-stage estimate),
    ``token_scores [B, C, L]`` per-token contributions (text positions only), ``forward_passes``
    network evaluations per item."""

    log_lik: torch.Tensor
    token_scores: torch.Tensor | None
    forward_passes: float


class ClassScorer:
    """Wraps a classifier's language model(s) as ``score(x, att, condition) -> logits`` for class c.

    ``conditional``: one model; class c is the label token ``<label_c>`` at position 0 and the
    condition embedding c. ``per_class``: model c scores class c. ``prefix`` is 1 when a label
    token is prepended (never masked, not scored).
    """

    def __init__(self, clf):
        self.clf = clf
        self.prefix = 1 if clf.mode == "conditional" else 0

    def inputs(self, input_ids, attention_mask):
        if self.prefix:
            from diffusion_lab.classifiers.label_tokens import with_prefix

            first = torch.full((input_ids.shape[0],), self.clf.label_token_ids[0], device=input_ids.device)
            return with_prefix(input_ids, attention_mask, first)
        return input_ids, attention_mask

    def logits(self, c: int, x, att, label_pos: int = 0):
        """Logits of class ``c``'s model on ``x`` (conditional: label token at ``label_pos``)."""
        if self.clf.mode == "conditional":
            x = x.clone()
            x[:, label_pos] = self.clf.label_token_ids[c]
            backbone = self.clf.lms[0].backbone
            cond = None
            if backbone.condition_embedding is not None:
                cond = torch.full((x.shape[0],), c, device=x.device, dtype=torch.long)
            return backbone(x, att, condition=cond)
        return self.clf.lms[c].backbone(x, att)

    def score(self, x, att, condition=None):
        """The ``score`` callable of ``elbo_log_likelihood`` (the class arrives as ``condition``)."""
        return self.logits(int(condition[0]), x, att)

    @property
    def autoregressive(self) -> bool:
        return getattr(self.clf.lms[0].backbone, "causal", False)


def elbo_scores(scorer: ClassScorer, input_ids, attention_mask, classes, num_draws, generator, mask_token_id,
                chunk_size=256):
    ids, att = scorer.inputs(input_ids, attention_mask)
    ll, tok = elbo_log_likelihood(scorer.score, ids, att, mask_token_id, num_draws, conditions=list(classes),
                                  prefix_keep=scorer.prefix, generator=generator, chunk_size=chunk_size,
                                  return_token_scores=True)
    return ll, tok[..., scorer.prefix:]


def exact_ar_scores(scorer: ClassScorer, input_ids, attention_mask, classes):
    """Exact ``log p(x | y=c)`` from autoregressive LMs (label token scored as context, not as text)."""
    from diffusion_lab.models.autoregressive import ar_token_logprobs, prepend_start_token

    ids, att = scorer.inputs(input_ids, attention_mask)
    start = scorer.clf.start_token_id
    lls, toks = [], []
    x, a = prepend_start_token(ids, att, start)
    for c in classes:
        logits = scorer.logits(c, x, a, label_pos=1)
        # entry i is log p(x_{i+1} | x_{<=i}); with a label token the first entry is its own (skipped)
        lp = ar_token_logprobs(logits, x, a)[:, scorer.prefix:]
        lls.append(lp.double().sum(-1))
        toks.append(lp.double())
    return torch.stack(lls, 1), torch.stack(toks, 1)


def seed_mean_loss_scores(scorer: ClassScorer, input_ids, attention_mask, classes, mask_token_id, generator,
                          rate=0.15, draws=5):
    """The original recipe: minus the mean masked cross-entropy over ``draws`` independent 15% masks."""
    ids, att = scorer.inputs(input_ids, attention_mask)
    maskable = att.bool().clone()
    maskable[:, : scorer.prefix] = False
    out = torch.zeros(ids.shape[0], len(classes), dtype=torch.float64, device=ids.device)
    for j, c in enumerate(classes):
        for _ in range(draws):  # independent draws per class: no common random numbers
            masked = (torch.rand(ids.shape, generator=generator).to(ids.device) < rate) & maskable
            masked[torch.arange(ids.shape[0]), maskable.float().argmax(1)] |= ~masked.any(1)  # at least one
            x = torch.where(masked, torch.full_like(ids, mask_token_id), ids)
            nll = token_nll(scorer.logits(c, x, att), ids) * masked
            out[:, j] -= (nll.sum(1) / masked.sum(1)).double() / draws
    return out


def class_log_likelihoods(clf, input_ids, attention_mask, estimator="elbo_crn", num_draws=8, generator=None,
                          adaptive=False, first_stage_draws=2, margin=10.0, log_prior=None,
                          seed_draws=5) -> ClassScores:
    """``log p(x | y)`` for every class with the configured estimator (see the module docstring)."""
    scorer = ClassScorer(clf)
    classes = list(range(clf.num_classes))
    mask_id = clf.mask_token_id
    if estimator == "seed_mean_loss":
        if scorer.autoregressive:
            raise ValueError("classifier.estimator=seed_mean_loss needs a diffusion model; use elbo_crn")
        ll = seed_mean_loss_scores(scorer, input_ids, attention_mask, classes, mask_id, generator, draws=seed_draws)
        return ClassScores(ll, None, forward_passes=float(seed_draws * len(classes)))
    if scorer.autoregressive:
        ll, tok = exact_ar_scores(scorer, input_ids, attention_mask, classes)
        return ClassScores(ll, tok, forward_passes=float(len(classes)))
    if not adaptive or len(classes) <= 2 or num_draws <= first_stage_draws:
        ll, tok = elbo_scores(scorer, input_ids, attention_mask, classes, num_draws, generator, mask_id)
        return ClassScores(ll, tok, forward_passes=float(num_draws * len(classes)))
    ll, tok = elbo_scores(scorer, input_ids, attention_mask, classes, first_stage_draws, generator, mask_id)
    joint = ll + (log_prior.to(ll) if log_prior is not None else 0)
    alive = (joint >= joint.max(1, keepdim=True).values - margin).any(0)  # a class any item still needs
    survivors = [c for c in classes if alive[c]]
    rest = num_draws - first_stage_draws
    ll2, tok2 = elbo_scores(scorer, input_ids, attention_mask, survivors, rest, generator, mask_id)
    w1, w2 = first_stage_draws / num_draws, rest / num_draws
    for j, c in enumerate(survivors):
        ll[:, c] = w1 * ll[:, c] + w2 * ll2[:, j]
        tok[:, c] = w1 * tok[:, c] + w2 * tok2[:, j]
    passes = first_stage_draws * len(classes) + rest * len(survivors)
    return ClassScores(ll, tok, forward_passes=float(passes))


@torch.no_grad()
def infill_label_probs(clf, input_ids, attention_mask) -> torch.Tensor:
    """Fast readout (conditional diffusion model): p(y | x) from ONE forward pass with the label
    token masked and no condition: softmax of the logits at position 0 over the label tokens."""
    from diffusion_lab.classifiers.label_tokens import with_prefix

    lm = clf.lms[0]
    first = torch.full((input_ids.shape[0],), clf.mask_token_id, device=input_ids.device)
    ids, att = with_prefix(input_ids, attention_mask, first)
    cond = None
    if lm.backbone.condition_embedding is not None:
        cond = torch.full((ids.shape[0],), lm.backbone.num_conditions - 1, device=ids.device)
    logits = lm.backbone(ids, att, condition=cond)[:, 0, clf.label_token_ids]
    return torch.softmax(logits.float(), -1)

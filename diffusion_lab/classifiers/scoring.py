"""Class-conditional log-likelihoods ``log p(x | y)`` of DOCUMENTS for generative classifiers.

A batch is windows (rows) of documents (``doc_ids``; all windows of a document in the same batch,
consecutive). Tokens of ``score_mask`` are scored, the others (overlap with the previous window) are
visible context. A document's estimate is the sum over its windows (the likelihood of a windowed
model, see ``diffusion_lab.data.windows``); without ``doc_ids`` every row is its own document.

``elbo_crn``: the stratified bound of ``diffusion_lab.likelihood`` with common random numbers: every
class is scored on the same ``l`` and the same masked positions of each window, all classes of a draw
in one forward pass. Stages (``diffusion_lab.classifiers.sequential``): with ``sequential`` an item
stops once its paired class difference is decided (``stop_z``); with more than two classes and
``adaptive``, a class is dropped for an item once it is ``margin`` standard errors behind that item's
leader (never by another item's evidence); pruned classes keep the mean over the draws they had.

``seed_mean_loss``: the original recipe, for comparison: mask 15% of the tokens, 5 independent
draws per class, score = minus the mean (length-normalised) masked cross-entropy, summed over
windows. Not a likelihood; its "posterior" is only a softmax of scores.

Autoregressive LMs give the exact ``log p(x | y)`` (no draws; scored tokens only).

Each estimator is one function (``elbo_crn_estimate``, ``seed_mean_loss_estimate``), the ``_target_`` of
its name in ``targets.classifier_estimator`` (conf/config.yaml); ``class_log_likelihoods`` calls the one
``classifier.estimator`` names, so a new estimator is one table entry.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from diffusion_lab.classifiers.label_tokens import with_prefix
from diffusion_lab.classifiers.sequential import decide, stage_plan
from diffusion_lab.likelihood import draw_log_likelihoods, rows_per_pass, sparse_logits, stratified_mask_draws
from diffusion_lab.masking import real_tokens, token_nll
from diffusion_lab.models.ar_likelihood import ar_token_logprobs, prepend_start_token
from diffusion_lab.models.conditions import no_label_condition
from diffusion_lab.targets import named_target


@dataclass
class ClassScores:
    """``log_lik [D, C]`` per document (pruned classes keep their estimate so far), ``token_scores
    [W, C, L]`` per-token contributions per window (text positions only), ``forward_passes`` network
    evaluations per document on average, ``passes [D]`` per document, ``draws [D, C]`` draws spent,
    ``values [D, K, C]`` each draw's estimate (NaN: not drawn; the staged bound only)."""

    log_lik: torch.Tensor
    token_scores: torch.Tensor | None
    forward_passes: float
    passes: torch.Tensor | None = None
    draws: torch.Tensor | None = None
    values: torch.Tensor | None = None


@dataclass(frozen=True)
class ScoreOptions:
    """How the Bayes readout spends its draws (``classifier.*``; a run's own: ``GenerativeClassifier.score_options``).

    ``estimator``: a name of ``targets.classifier_estimator``; ``num_draws``: K; ``adaptive``: prune losing
    classes (more than two) after ``first_stage_draws``, ``margin`` standard errors behind the leader;
    ``sequential``: stop an item once its paired difference is ``stop_z`` standard errors from zero, in
    stages of ``stage_draws`` (None: ``first_stage_draws``); ``seed_draws``: the original recipe's draws;
    ``return_token_scores``: keep per-token contributions (explanations)."""

    estimator: str = "elbo_crn"
    num_draws: int = 8
    adaptive: bool = False
    first_stage_draws: int = 2
    margin: float = 3.0
    seed_draws: int = 5
    sequential: bool = False
    stop_z: float = 3.0
    stage_draws: int | None = None
    return_token_scores: bool = True

    def estimator_options(self) -> dict:
        """Every option but the estimator's name, as the estimator functions take them (keywords)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "estimator"}


def documents(doc_ids: torch.Tensor | None, rows: int, device=None) -> tuple[torch.Tensor, int]:
    """``(index [W] in 0..D-1, D)``: which document each window belongs to (consecutive windows)."""
    if doc_ids is None:
        return torch.arange(rows, device=device), rows
    index = torch.unique_consecutive(doc_ids.to(device), return_inverse=True)[1]
    return index, int(index.max()) + 1 if len(index) else 0


def doc_labels(labels: torch.Tensor, doc_ids: torch.Tensor | None) -> torch.Tensor:
    """One label per document: its first window's (every window of a document carries it)."""
    if doc_ids is None:
        return labels
    first = torch.ones_like(doc_ids, dtype=torch.bool)
    first[1:] = doc_ids[1:] != doc_ids[:-1]
    return labels[first.to(labels.device)]


def per_document(values: torch.Tensor, index: torch.Tensor, num_docs: int) -> torch.Tensor:
    """Sum of ``values [W, ...]`` over each document's windows: ``[D, ...]``."""
    out = torch.zeros((num_docs, *values.shape[1:]), dtype=values.dtype, device=values.device)
    return out.index_add_(0, index.to(values.device), values)


def scored_token_mean(values: torch.Tensor, scored: torch.Tensor, index: torch.Tensor, num_docs: int) -> torch.Tensor:
    """Per document, the mean of its windows' ``values [W, C]`` weighted by each window's scored tokens
    (``scored``, bool ``[W, L]``): ``sum_w n_w v_w / sum_w n_w``, ``[D, C]``; each token's evidence counts once."""
    n = scored.sum(1).to(values.dtype)[:, None]
    return per_document(values * n, index, num_docs) / per_document(n, index, num_docs).clamp_min(1)


def score_autocast(clf, device):
    """The scoring passes' precision: bfloat16 autocast on ``device`` when the classifier's
    ``score_precision`` is ``bf16``, else a no-op (float32)."""
    precision = str((getattr(clf, "hparams", None) or {}).get("score_precision", "32"))
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")


class ClassScorer:
    """Wraps a classifier's language model(s) as ``score(x, att, condition, positions) -> logits``.

    The classifier's layout (``classifiers.base_layout``) lays the rows out: conditional, row r is class
    ``condition[r]`` with its label token at position 0 and condition embedding c, so every class of a
    draw shares one forward pass; per_class, model c scores the rows of class c. ``prefix``: the tokens
    the layout prepends (never masked, not scored). ``classifier.score_precision=bf16`` runs the backbone
    under bfloat16 autocast (``score_autocast``); the log-softmax and every sum stay float32/float64.
    """

    def __init__(self, clf):
        self.clf = clf
        self.layout = clf.layout
        self.prefix = self.layout.prefix
        self._labels = None

    def inputs(self, input_ids, attention_mask, score_mask=None):
        """``(ids, att, maskable)`` with the layout's prefix; ``maskable`` is ``masking.real_tokens`` of
        those rows: real tokens within ``score_mask``, never the prefix."""
        input_ids, attention_mask, score_mask = self.layout.inputs(self.clf, input_ids, attention_mask, score_mask)
        return input_ids, attention_mask, real_tokens(attention_mask, self.prefix, score_mask)

    def label_ids(self, device):
        if self._labels is None or self._labels.device != torch.device(device):
            self._labels = torch.as_tensor(self.clf.label_token_ids, device=device)
        return self._labels

    def logits(self, c: int, x, att, label_pos: int = 0):
        """Dense logits of class ``c``'s model on ``x`` (conditional: label token at ``label_pos``)."""
        with score_autocast(self.clf, x.device):
            return self.layout.logits(self, c, x, att, label_pos)

    def score(self, x, att, condition=None, positions=None):
        """Logits ``[N, V]`` at ``positions`` for rows of (possibly) different classes ``condition [R]``."""
        with score_autocast(self.clf, x.device):
            return self.layout.score(self, x, att, condition, positions)

    def rows(self, length: int, device) -> int:
        backbone = self.clf.lms[0].backbone
        emb = backbone.input_embeddings() if hasattr(backbone, "input_embeddings") else None
        budget = getattr(getattr(self.clf, "hparams", None), "score_tokens", None)
        return rows_per_pass(length, device, getattr(backbone, "vocab_size", 50_000) or 50_000,
                             emb.embedding_dim if emb is not None else 768, budget)

    @property
    def autoregressive(self) -> bool:
        return getattr(self.clf.lms[0].backbone, "causal", False)


def staged_elbo_scores(scorer: ClassScorer, input_ids, attention_mask, score_mask, doc_index, num_docs,
                       num_classes, plan, generator, mask_token_id, log_prior=None, prune_z=None, stop_z=None,
                       return_token_scores=True) -> ClassScores:
    """The bound per document and class over the stages of ``plan`` (see the module docstring)."""
    ids, att, maskable = scorer.inputs(input_ids, attention_mask, score_mask)
    device, total = ids.device, sum(plan)
    values = torch.full((num_docs, total, num_classes), float("nan"), dtype=torch.float64, device=device)
    alive = torch.ones(num_docs, num_classes, dtype=torch.bool, device=device)
    done = torch.zeros(num_docs, dtype=torch.bool, device=device)
    passes = torch.zeros(num_docs, dtype=torch.float64, device=device)
    tokens = torch.zeros(ids.shape[0], num_classes, ids.shape[1], device=device) if return_token_scores else None
    prior = None if log_prior is None else log_prior.to(device=device, dtype=torch.float64)
    rows, k0 = scorer.rows(ids.shape[1], device), 0
    for stage, size in enumerate(plan):
        win = (~done)[doc_index].nonzero(as_tuple=True)[0]
        if len(win) == 0:
            break
        draws = stratified_mask_draws(maskable[win], size, generator)  # stratified within the stage
        alive_w = alive[doc_index[win]]
        totals, tok = draw_log_likelihoods(scorer.score, ids[win], att[win], draws, mask_token_id,
                                           list(range(num_classes)), alive_w, rows, return_token_scores)
        docs = per_document(totals.nan_to_num(0.0), doc_index[win], num_docs)
        keep = (alive & ~done[:, None])[:, None, :].expand_as(docs)
        values[:, k0:k0 + size] = torch.where(keep, docs, values[:, k0:k0 + size])
        if tokens is not None:
            tokens[win] += tok
        passes.index_add_(0, doc_index[win], alive_w.sum(1).double() * size)
        k0 += size
        if stage < len(plan) - 1:
            alive, done = decide(values[:, :k0], alive, done, prior, prune_z, stop_z)
    draws_spent = (~values.isnan()).sum(1)
    log_lik = values.nansum(1) / draws_spent.clamp_min(1)
    if tokens is not None:
        tokens = (tokens.double() / draws_spent[doc_index].clamp_min(1)[..., None])[..., scorer.prefix:]
    return ClassScores(log_lik, tokens, float(passes.mean()) if num_docs else 0.0, passes, draws_spent, values)


def exact_ar_scores(scorer: ClassScorer, input_ids, attention_mask, classes, score_mask=None):
    """Exact ``log p(x | y=c)`` of the scored tokens from autoregressive LMs (label token as context)."""

    ids, att, _ = scorer.inputs(input_ids, attention_mask)
    scored = real_tokens(attention_mask, 0, score_mask).double()
    start = scorer.clf.start_token_id
    lls, toks = [], []
    x, a = prepend_start_token(ids, att, start)
    for c in classes:
        logits = scorer.logits(c, x, a, label_pos=1)
        # entry i is log p(x_{i+1} | x_{<=i}); with a label token the first entry is its own (skipped)
        lp = ar_token_logprobs(logits, x, a)[:, scorer.prefix:].double() * scored
        lls.append(lp.sum(-1))
        toks.append(lp)
    return torch.stack(lls, 1), torch.stack(toks, 1)


def seed_mean_loss_scores(scorer: ClassScorer, input_ids, attention_mask, classes, mask_token_id, generator,
                          rate=0.15, draws=5, score_mask=None):
    """The original recipe: minus the mean masked cross-entropy over ``draws`` independent 15% masks."""
    ids, att, maskable = scorer.inputs(input_ids, attention_mask, score_mask)
    out = torch.zeros(ids.shape[0], len(classes), dtype=torch.float64, device=ids.device)
    gen_device = generator.device if generator is not None else ids.device
    for j, c in enumerate(classes):
        for _ in range(draws):  # independent draws per class: no common random numbers
            masked = (torch.rand(ids.shape, generator=generator, device=gen_device).to(ids.device) < rate) & maskable
            masked[torch.arange(ids.shape[0]), maskable.float().argmax(1)] |= ~masked.any(1)  # at least one
            x = torch.where(masked, torch.full_like(ids, mask_token_id), ids)
            nll = token_nll(scorer.logits(c, x, att), ids) * masked
            out[:, j] -= (nll.sum(1) / masked.sum(1).clamp_min(1)).double() / draws
    return out


def elbo_crn_estimate(scorer: ClassScorer, input_ids, attention_mask, *, doc_index, num_docs, generator=None,
                      num_draws=8, adaptive=False, first_stage_draws=2, margin=3.0, log_prior=None, score_mask=None,
                      sequential=False, stop_z=3.0, stage_draws=None, return_token_scores=True, **_) -> ClassScores:
    """``classifier.estimator=elbo_crn``: the staged, common-random-numbers bound; autoregressive LMs
    give their exact ``log p(x | y)`` instead (no draws)."""
    num_classes = scorer.clf.num_classes
    if scorer.autoregressive:
        ll, tok = exact_ar_scores(scorer, input_ids, attention_mask, list(range(num_classes)), score_mask)
        windows = torch.bincount(doc_index, minlength=num_docs).double()
        return ClassScores(per_document(ll, doc_index, num_docs), tok, float(num_classes * windows.mean()),
                           num_classes * windows)
    prune = adaptive and num_classes > 2
    plan = stage_plan(num_draws, first_stage_draws, sequential, prune, stage_draws)
    return staged_elbo_scores(scorer, input_ids, attention_mask, score_mask, doc_index, num_docs, num_classes, plan,
                              generator, scorer.clf.mask_token_id, log_prior, margin if prune else None,
                              stop_z if sequential else None, return_token_scores)


def seed_mean_loss_estimate(scorer: ClassScorer, input_ids, attention_mask, *, doc_index, num_docs, generator=None,
                            seed_draws=5, score_mask=None, **_) -> ClassScores:
    """``classifier.estimator=seed_mean_loss``: the original recipe (``seed_mean_loss_scores``) summed over
    each document's windows; no per-token scores. Diffusion models only."""
    if scorer.autoregressive:
        raise ValueError("classifier.estimator=seed_mean_loss needs a diffusion model; use elbo_crn")
    num_classes = scorer.clf.num_classes
    ll = seed_mean_loss_scores(scorer, input_ids, attention_mask, list(range(num_classes)), scorer.clf.mask_token_id,
                               generator, draws=seed_draws, score_mask=score_mask)
    windows = torch.bincount(doc_index, minlength=num_docs).double()
    return ClassScores(per_document(ll, doc_index, num_docs), None, float(seed_draws * num_classes * windows.mean()),
                       seed_draws * num_classes * windows)


def class_log_likelihoods(clf, input_ids, attention_mask, options: ScoreOptions | None = None, generator=None,
                          log_prior=None, score_mask=None, doc_ids=None, estimators=None, **loose) -> ClassScores:
    """``log p(x | y)`` ``[D, C]`` per document with the configured estimator (module docstring).

    ``options``: ``ScoreOptions`` (default: its defaults), with any of its fields overridden by ``loose``
    keywords. ``options.estimator`` is a name of ``estimators`` (the run's ``targets.classifier_estimator``
    table; ``None``: the package's), whose ``_target_`` is called with the scorer, the batch and the other
    options (``elbo_crn_estimate``, ``seed_mean_loss_estimate``; an unknown name is a ``ConfigError``)."""
    options = replace(options or ScoreOptions(), **loose)
    estimate = named_target("classifier.estimator", options.estimator, estimators)
    scorer = ClassScorer(clf)
    index, num_docs = documents(doc_ids, input_ids.shape[0], input_ids.device)
    return estimate(scorer, input_ids, attention_mask, doc_index=index, num_docs=num_docs, generator=generator,
                    log_prior=log_prior, score_mask=score_mask, **options.estimator_options())


@torch.no_grad()
def infill_label_probs(clf, input_ids, attention_mask, score_mask=None, doc_ids=None) -> torch.Tensor:
    """Fast readout (conditional diffusion model): p(y | x) from ONE forward pass per window with the
    label token masked and no condition: softmax of the logits at position 0 over the label tokens.

    Documents of several windows pool their windows log-linearly, weighted by scored tokens:
    ``log p(y | x) = softmax_y( sum_w n_w log p_w(y | x_w) / sum_w n_w )`` (a geometric mean of the
    windows' posteriors: each token's evidence counts once, whatever its window)."""

    lm = clf.lms[0]
    first = torch.full((input_ids.shape[0],), clf.mask_token_id, device=input_ids.device)
    ids, att = with_prefix(input_ids, attention_mask, first)
    no_label = no_label_condition(lm.backbone)
    cond = None if no_label is None else torch.full((ids.shape[0],), no_label, device=ids.device)
    positions = torch.zeros_like(att, dtype=torch.bool)
    positions[:, 0] = True
    with score_autocast(clf, ids.device):
        logits = sparse_logits(lm.backbone, ids, att, cond, positions)[:, clf.label_token_ids]
    log_p = torch.log_softmax(logits.double(), -1)
    if doc_ids is None:
        return log_p.exp()
    index, num_docs = documents(doc_ids, len(log_p), log_p.device)
    scored = attention_mask.bool() if score_mask is None else score_mask.bool()
    return torch.softmax(scored_token_mean(log_p, scored, index, num_docs), -1)

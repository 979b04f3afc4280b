"""Token-level explanations and their deletion test.

Generative: token i's contribution to the class log-likelihood ratio between the predicted class
``a`` and the runner-up ``b``, ``s_i(a) - s_i(b)``, where ``s_i(y)`` is token i's share of the
log p(x | y) estimate (``ClassScores.token_scores``) from the SAME draws that made the prediction.
For a context-free model it is ``log p(x_i | a) - log p(x_i | b)`` in expectation over the draws.

Discriminative: gradient x input on the word embeddings of the logit margin ``z_a - z_b``.

Deletion test (``deletion.deletion_curve``): delete the top-k attributed tokens vs k random ones
and watch the probability of the originally predicted class; faithful attributions drop it faster.
"""

from __future__ import annotations

import torch

from diffusion_lab.classifiers.scoring import documents, scored_token_mean
from diffusion_lab.evaluation.deletion import deletion_curve
from diffusion_lab.evaluation.html import escape, token_heatmap_html
from diffusion_lab.evaluation.models import EVAL_MODELS


def top_two(log_joint: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The predicted class and the runner-up per row (``[N]`` each)."""
    order = log_joint.argsort(1, descending=True)
    return order[:, 0], order[:, 1]


def likelihood_ratio_attributions(log_joint: torch.Tensor, token_scores: list[torch.Tensor]) -> list[list[float]]:
    """Per item, per token ``token_scores[a] - token_scores[b]`` (a = predicted, b = runner-up)."""
    pred, other = top_two(log_joint)
    return [(t[int(a)] - t[int(b)]).tolist() for t, a, b in zip(token_scores, pred, other, strict=True)]


def generative_attributions(clf, input_ids, attention_mask, num_draws: int | None = None, generator=None):
    """``(log_joint [B, C], attributions)`` for one padded batch: prediction and explanation share draws."""
    joint, scores = clf.log_joint(input_ids, attention_mask, num_draws=num_draws, generator=generator)
    if scores is None or scores.token_scores is None:
        raise ValueError("this classifier's estimator gives no per-token scores (use classifier.estimator=elbo_crn)")
    lengths = attention_mask.sum(1).tolist()
    tokens = [scores.token_scores[i, :, :n].cpu() for i, n in enumerate(lengths)]
    return joint, likelihood_ratio_attributions(joint.cpu(), tokens)


def gradient_x_input(model, input_ids, attention_mask, doc_ids=None, score_mask=None) -> tuple[torch.Tensor, list[list[float]]]:
    """``(logits [D, C], attributions)``: d(z_a - z_b)/d(embedding_i) . embedding_i per real token.

    Rows are windows of documents ``doc_ids`` (default: each row its own document). A document of
    several windows has the logits ``classifiers.predict`` gives it (the scored-token-weighted mean of
    its windows'), and its attributions are its windows' scored tokens in order."""

    was_training = model.training
    model.eval()
    score_mask = attention_mask.bool() if score_mask is None else score_mask.bool()
    with torch.enable_grad():
        emb = model.backbone.input_embeddings()(input_ids).detach().requires_grad_(True)
        logits = model(input_ids, attention_mask, inputs_embeds=emb)
        index, num_docs = documents(doc_ids, len(logits), logits.device)
        if num_docs < len(logits):
            logits = scored_token_mean(logits, score_mask, index, num_docs)
        pred, other = top_two(logits.detach())
        rows = torch.arange(len(logits))
        (grad,) = torch.autograd.grad((logits[rows, pred] - logits[rows, other]).sum(), emb)
    model.train(was_training)
    attr = (grad * emb.detach()).sum(-1) * attention_mask
    attrs = [[] for _ in range(num_docs)]
    for w in range(len(attr)):  # a document's scored tokens, window after window
        attrs[int(index[w])] += attr[w][score_mask[w]].tolist()
    return logits.detach().double().cpu(), attrs


def likelihood_ratio_explanation(models, name: str, ids: list[list[int]]):
    """The generative model's prediction and its per-token class log-likelihood ratios (same draws)."""
    scores = models.score(name, ids=ids, keep_token_scores=True)
    return scores.log_joint, likelihood_ratio_attributions(scores.log_joint, scores.token_scores)


def gradient_x_input_explanation(models, name: str, ids: list[list[int]]):
    """A discriminative model's logits and gradient x input per token, batch by batch."""
    joints, attrs, model = [], [], models.baselines[EVAL_MODELS[name].source]
    for batch in models.batch_dicts(ids):
        batch = {k: v.to(model.device) for k, v in batch.items()}
        logits, a = gradient_x_input(model, batch["input_ids"], batch["attention_mask"], batch["doc_ids"],
                                     batch["score_mask"])
        joints.append(logits)
        attrs += a
    return torch.cat(joints), attrs


#: ``EvalModel.attribution`` -> (how it explains, what the report says it is)
ATTRIBUTIONS = {
    "likelihood_ratio": (likelihood_ratio_explanation,
                         "class log-likelihood ratio per token (predicted vs runner-up), same draws as the prediction"),
    "gradient_x_input": (gradient_x_input_explanation,
                         "gradient x input on word embeddings of the logit margin (predicted vs runner-up)"),
}


def explain_model(models, name: str, ids: list[list[int]]) -> tuple[torch.Tensor, list[list[float]]]:
    """``(log_joint [N, C], attributions)`` of model ``name`` on encoded items, by its ``attribution``."""
    method = EVAL_MODELS[name].attribution if name in EVAL_MODELS else None
    if method is None:
        have = [n for n, kind in EVAL_MODELS.items() if kind.attribution]
        raise ValueError(f"no token attributions for {name!r} ({' and '.join(have)} have them)")
    return ATTRIBUTIONS[method][0](models, name, ids)


def explanation_entry(models, name: str, texts, labels, ks, seed: int, n_examples: int, pieces, label_names) -> dict:
    """Deletion curves (attributed vs random) and the first ``n_examples`` heatmaps of one model.
    ``pieces(ids) -> display strings`` of the tokens."""
    ids = models.encode(texts)
    log_joint, attrs = explain_model(models, name, ids)
    curve = deletion_curve(lambda batch: models.score(name, ids=batch).probs, ids, attrs, labels, ks, seed)
    gap = [r - a for a, r in zip(curve["attributed"], curve["random"], strict=True)]
    probs = torch.softmax(log_joint, -1)
    examples = []
    for i in range(min(n_examples, len(ids))):
        tokens = pieces(ids[i])
        examples.append({"index": i, "text": texts[i], "label": label_names[int(labels[i])],
                         "prediction": label_names[int(probs[i].argmax())], "confidence": float(probs[i].max()),
                         "tokens": tokens, "attributions": [float(a) for a in attrs[i]]})
    return {"method": ATTRIBUTIONS[EVAL_MODELS[name].attribution][1], "seed": seed, "n": len(ids), "deletion": curve,
            "mean_gap_random_minus_attributed": sum(gap) / len(gap) if gap else float("nan"),
            "examples": examples}


def heatmaps_html(explanations: dict) -> str:
    """Every model's example heatmaps (escaped labels; the token spans escape their text)."""
    parts = []
    for name, entry in explanations.items():
        parts.append(f"<h3>{escape(name)}: {escape(entry['method'])}</h3>")
        for ex in entry["examples"]:
            parts.append(f"<p>#{ex['index']} label <b>{escape(ex['label'])}</b>, predicted "
                         f"<b>{escape(ex['prediction'])}</b> ({ex['confidence']:.2f}); blue = evidence for the "
                         f"prediction, red = against</p>"
                         f"{token_heatmap_html(ex['tokens'], ex['attributions'])}"
                         f"<details><summary>text</summary><p>{escape(ex.get('text', ''))}</p></details>")
    return "\n".join(parts)

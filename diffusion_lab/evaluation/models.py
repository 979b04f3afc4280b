"""Every model of a classifier run behind one interface: texts (or token ids) -> log joint ``[N, C]``.

Scoring goes through ``classifiers.predict`` (the one path ``task=train_classifier`` uses too).
``generative``: Bayes' rule over the class-conditional bound, K draws x C classes per item, with a
device generator seeded afresh on every call (the same texts always get the same draws, and two calls on
perturbed versions of the same items share their random numbers as far as shapes allow).
``generative_infill``: the conditional model's one-pass label readout. ``discriminative``: the same
backbone with a head (logits). ``tfidf_lr``: TF-IDF + logistic regression (log probabilities).

Texts become rows exactly as the run's test loader makes them: ``data.tokenizer.encode_texts`` (no
special tokens; truncated to ``data.max_length``, or whole documents with ``data.long_text=windows``),
then ``data.windows.window_rows`` / ``document_batches`` and ``PadCollator`` (``RunModels.for_run``
reads the policy from the run). One difference, on purpose: a text with no tokens (e.g. every word
deleted) becomes the single ``<unk>`` token, where the data module drops such rows; every scored item
needs a score. TF-IDF reads what it was trained on: the same token window decoded back to text
(``tfidf_window``, runs with ``task.tfidf_full_text=false`` that truncate) or the whole text.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffusion_lab.classifiers.predict import predict
from diffusion_lab.classifiers.scoring import documents, per_document
from diffusion_lab.data.batching import PadCollator
from diffusion_lab.data.splits import NO_LABEL
from diffusion_lab.data.tokenizer import encode_texts
from diffusion_lab.data.windows import POLICIES, document_batches, window_rows
from diffusion_lab.likelihood import device_generator, elbo_log_likelihood
from diffusion_lab.models.conditions import no_label_condition


@dataclass(frozen=True)
class EvalModel:
    """One model name of the evaluation suite and what the suite does with it; ``EVAL_MODELS`` is the one
    table (a new model is one entry, no branch on its name elsewhere).

    ``source``: ``"generative"`` (the run's generative classifier) or the key of a loaded baseline;
    ``readout``: its ``classifiers.predict`` readout (``None``: it scores texts itself, as TF-IDF does);
    ``ood``: its OOD score family beyond max-softmax (``suite.OOD_FAMILIES``: ``likelihood``, ``energy``);
    ``headline_ood``: the OOD score the summary and the OOD figure show; ``attribution``: its token
    attribution method (``explain.ATTRIBUTIONS``), or ``None``."""

    source: str
    readout: str | None = None
    ood: str | None = None
    headline_ood: str = "max_softmax"
    attribution: str | None = None

    @property
    def bayes_generative(self) -> bool:
        """The bound's readout of the generative classifier: ``eval.num_draws`` and per-token scores apply."""
        return self.source == "generative" and self.readout == "bayes"


EVAL_MODELS = {
    "generative": EvalModel("generative", "bayes", "likelihood", "log_px_per_token", "likelihood_ratio"),
    "generative_infill": EvalModel("generative", "infill"),
    "discriminative": EvalModel("discriminative", "bayes", "energy", "energy", "gradient_x_input"),
    "tfidf_lr": EvalModel("tfidf_lr"),
}


def has_readout(kind: EvalModel, readouts) -> bool:
    """Whether a generative classifier with ``readouts`` (its layout's: ``Layout.readouts``) has ``kind``'s."""
    return kind.readout in readouts


def generative_readout(name: str, readouts) -> EvalModel:
    """The ``EVAL_MODELS`` entry ``name``, checked to be a readout of a generative classifier with
    ``readouts`` (its layout's, ``Layout.readouts``); a clear error otherwise (a loop that chooses on it
    checks this at start-up, before any training)."""
    names = [n for n, k in EVAL_MODELS.items() if k.source == "generative" and has_readout(k, readouts)]
    if name not in names:
        why = (f"{name!r} is not a generative readout" if name not in EVAL_MODELS or
               EVAL_MODELS[name].source != "generative" else
               f"{name!r} is not a readout of this layout (infill needs the conditional masked-diffusion "
               "classifier, classifier=conditional)")
        raise ValueError(f"{why}; this classifier's readouts are {', '.join(names)}")
    return EVAL_MODELS[name]


@dataclass
class Scores:
    """``log_joint [N, C]`` float64 (softmax = the model's posterior); generative: ``token_scores``
    (per item ``[C, L_i]``, contributions to log p(x | y) from the same draws) and ``lengths``."""

    log_joint: torch.Tensor
    lengths: list[int]
    token_scores: list[torch.Tensor] | None = None

    @property
    def probs(self) -> torch.Tensor:
        return torch.softmax(self.log_joint, -1)

    def subset(self, idx) -> Scores:
        idx = [int(i) for i in idx]
        return Scores(self.log_joint[idx], [self.lengths[i] for i in idx],
                      [self.token_scores[i] for i in idx] if self.token_scores is not None else None)


class RunModels:
    """The loaded models of one run (``load_classifier_run``) and how to score text with them."""

    def __init__(self, clf, baselines: dict, tokenizer, max_length: int, batch_size: int = 32,
                 num_draws: int | None = None, seed: int = 0, infill: bool = True, only=None,
                 tfidf_window: bool = False, long_text: str = "truncate", window_overlap: int = 0):
        if long_text not in POLICIES:
            raise ValueError(f"data.long_text={long_text!r}: allowed values are {', '.join(POLICIES)}")
        self.clf, self.baselines, self.tokenizer = clf, baselines, tokenizer
        self.long_text, self.window_overlap = long_text, int(window_overlap)
        self.tfidf_window = tfidf_window and long_text == "truncate"  # windows runs fit TF-IDF on full text
        self.max_length, self.batch_size, self.seed = max_length, batch_size, seed
        k = num_draws or clf.hparams.num_draws
        if k == "auto":
            raise ValueError("this run chose classifier.num_draws on validation (results.json: num_draws_chosen); "
                             "set eval.num_draws=K")
        self.num_draws = int(k)
        self.collate = PadCollator(tokenizer.pad_token_id)
        self.filler = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else tokenizer.pad_token_id
        readouts = clf.layout.readouts(clf.autoregressive)

        def in_run(kind: EvalModel) -> bool:
            if kind.source != "generative":
                return kind.source in baselines
            return (infill or kind.readout != "infill") and has_readout(kind, readouts)

        available = [n for n, kind in EVAL_MODELS.items() if in_run(kind)]
        if only:
            unknown = sorted(set(only) - set(available))
            if unknown:
                raise ValueError(f"eval.models has {unknown}, not in this run; available: {', '.join(available)}")
            available = [n for n in available if n in only]
        self.names = available
        self.forward_passes: dict[str, float] = {n: 0.0 for n in self.names}

    @classmethod
    def for_run(cls, run_cfg, clf, baselines: dict, tokenizer, **kwargs) -> RunModels:
        """``RunModels`` that read text as ``run_cfg`` (the run's config) did: its ``data.max_length``,
        ``data.long_text`` and ``data.window_overlap``; TF-IDF on the token window unless the run set
        ``task.tfidf_full_text`` (runs from before that key read the full text)."""
        data = run_cfg.data
        kwargs.setdefault("tfidf_window", not run_cfg.task.get("tfidf_full_text", True))
        return cls(clf, baselines, tokenizer, int(data.max_length), long_text=data.get("long_text", "truncate"),
                   window_overlap=int(data.get("window_overlap", 0)), **kwargs)

    @property
    def num_classes(self) -> int:
        return self.clf.num_classes

    def encode(self, texts) -> list[list[int]]:
        """Token ids per text, as the run's data module tokenises (``encode_texts``); empty -> ``[<unk>]``."""
        ids = encode_texts(self.tokenizer, texts, self.max_length, self.long_text)
        return [list(x) if len(x) else [self.filler] for x in ids]

    def batch_dicts(self, ids: list[list[int]]):
        """Batches as the run's evaluation loaders make them (``TextDataModule.dataloader``): window rows
        of each item (one when truncating), whole items per batch, ``doc_ids`` = the item index,
        ``score_mask`` = the tokens each window scores."""
        rows = window_rows(ids, [NO_LABEL] * len(ids), self.max_length, self.window_overlap)
        for batch in document_batches([r["doc"] for r in rows], self.batch_size):
            yield self.collate([rows[i] for i in batch])

    def score(self, name: str, texts=None, ids=None, keep_token_scores: bool = False) -> Scores:
        """One model on ``texts`` (or already-encoded ``ids``; not for ``tfidf_lr``)."""
        kind = EVAL_MODELS.get(name)
        if kind is None or (kind.source != "generative" and kind.source not in self.baselines):
            raise KeyError(f"unknown model {name!r}; this run has {', '.join(self.names)}")
        if kind.readout is None:  # a text model (TF-IDF)
            if texts is None:
                raise ValueError(f"{name} scores texts, not token ids")
            if self.tfidf_window:  # what the neural models see, as text (as train_classifier fits it)
                texts = self.tokenizer.batch_decode(self.encode(texts), skip_special_tokens=True)
            log_probs, _ = self.baselines[kind.source].log_probs(list(texts))
            return Scores(torch.as_tensor(log_probs, dtype=torch.float64), [len(t.split()) for t in texts])
        ids = self.encode(texts) if ids is None else [list(x) if len(x) else [self.filler] for x in ids]
        model = self.clf if kind.source == "generative" else self.baselines[kind.source]
        kwargs = {"num_draws": self.num_draws} if kind.bayes_generative else {}
        preds = predict(model, self.batch_dicts(ids), seed=self.seed, readout=kind.readout,
                        keep_token_scores=keep_token_scores and kind.bayes_generative, **kwargs)
        self.forward_passes[name] += preds.forward_passes_per_example * len(ids)
        return Scores(preds.log_joint, [len(x) for x in ids], preds.token_scores)

    def score_all(self, texts, names=None, keep_token_scores: bool = False) -> dict[str, Scores]:
        ids = self.encode(texts)
        return {n: self.score(n, texts=texts, ids=None if EVAL_MODELS[n].readout is None else ids,
                              keep_token_scores=keep_token_scores and EVAL_MODELS[n].bayes_generative)
                for n in (names or self.names)}

    @torch.no_grad()
    def unconditional_log_px(self, texts) -> torch.Tensor | None:
        """The conditional diffusion model's own p(x): input ``[<nolabel>, x]`` with the "no label"
        condition (the last condition id), as trained on ``uncond_prob`` of the batches. ``None``
        where the layout has no unconditional model (per-class or autoregressive classifiers)."""
        clf = self.clf
        nolabel = clf.layout.unconditional_token(clf)
        if nolabel is None:
            return None
        backbone = clf.lms[0].backbone
        no_label = no_label_condition(backbone)

        def score(x, att, condition=None, positions=None):
            cond = None if no_label is None else torch.full((x.shape[0],), no_label, device=x.device)
            return backbone(x, att, condition=cond, positions=positions)

        gen, out = device_generator(self.seed, clf.device), []
        for batch in self.batch_dicts(self.encode(texts)):  # a document's bound: the sum of its windows'
            x, att = batch["input_ids"].to(clf.device), batch["attention_mask"].to(clf.device)
            x = torch.cat([torch.full_like(x[:, :1], nolabel), x], 1)
            att = torch.cat([torch.ones_like(att[:, :1]), att], 1)
            scored = torch.cat([torch.zeros_like(att[:, :1]), batch["score_mask"].to(att)], 1).bool()
            bound = elbo_log_likelihood(score, x, att, clf.mask_token_id, self.num_draws, prefix_keep=1,
                                        generator=gen, score_mask=scored).double()
            index, num_docs = documents(batch["doc_ids"], len(bound), bound.device)
            out.append(per_document(bound, index, num_docs).cpu())
        return torch.cat(out)

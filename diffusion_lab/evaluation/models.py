"""Every model of a classifier run behind one interface: texts (or token ids) -> log joint ``[N, C]``.

Scoring goes through ``classifiers.predict`` (the one path ``task=train_classifier`` uses too).
``generative``: Bayes' rule over the class-conditional bound, K draws x C classes per item, with a
device generator seeded afresh on every call (the same texts always get the same draws, and two calls on
perturbed versions of the same items share their random numbers as far as shapes allow).
``generative_infill``: the conditional model's one-pass label readout. ``discriminative``: the same
backbone with a head (logits). ``tfidf_lr``: TF-IDF + logistic regression (log probabilities).

Texts are tokenised like training (no special tokens, truncated to the run's ``data.max_length``);
a text with no tokens left (e.g. every word deleted) becomes the single ``<unk>`` token. TF-IDF reads
what it was trained on: the same token window decoded back to text (``tfidf_window``, the default of
runs with ``task.tfidf_full_text=false``) or the whole text.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffusion_lab.classifiers.predict import predict
from diffusion_lab.data.batching import PadCollator
from diffusion_lab.likelihood import device_generator, elbo_log_likelihood
from diffusion_lab.models.conditions import no_label_condition

MODEL_ORDER = ("generative", "generative_infill", "discriminative", "tfidf_lr")
READOUT = {"generative": "bayes", "generative_infill": "infill"}


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
                 tfidf_window: bool = False):
        self.clf, self.baselines, self.tokenizer = clf, baselines, tokenizer
        self.tfidf_window = tfidf_window
        self.max_length, self.batch_size, self.seed = max_length, batch_size, seed
        k = num_draws or clf.hparams.num_draws
        if k == "auto":
            raise ValueError("this run chose classifier.num_draws on validation (results.json: num_draws_chosen); "
                             "set eval.num_draws=K")
        self.num_draws = int(k)
        self.collate = PadCollator(tokenizer.pad_token_id)
        self.filler = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else tokenizer.pad_token_id
        available = ["generative"]
        if infill and clf.mode == "conditional" and not clf.autoregressive:
            available.append("generative_infill")
        available += [n for n in MODEL_ORDER[2:] if n in baselines]
        if only:
            unknown = sorted(set(only) - set(available))
            if unknown:
                raise ValueError(f"eval.models has {unknown}, not in this run; available: {', '.join(available)}")
            available = [n for n in available if n in only]
        self.names = available
        self.forward_passes: dict[str, float] = {n: 0.0 for n in self.names}

    @property
    def num_classes(self) -> int:
        return self.clf.num_classes

    def encode(self, texts) -> list[list[int]]:
        ids = self.tokenizer(list(texts), add_special_tokens=False, truncation=True,
                             max_length=self.max_length)["input_ids"]
        return [list(x) if len(x) else [self.filler] for x in ids]

    def batch_dicts(self, ids: list[list[int]]):
        """Batches in the evaluation contract of the data loaders: one window per text (truncated),
        ``doc_ids`` = the item index, every real token scored."""
        for start in range(0, len(ids), self.batch_size):
            batch = self.collate([{"input_ids": x} for x in ids[start:start + self.batch_size]])
            batch["doc_ids"] = torch.arange(start, start + len(batch["input_ids"]))
            batch["score_mask"] = batch["attention_mask"].bool()
            yield batch

    def batches(self, ids: list[list[int]]):
        """Padded ``(input_ids, attention_mask)`` batches in order."""
        for start in range(0, len(ids), self.batch_size):
            batch = self.collate([{"input_ids": x} for x in ids[start:start + self.batch_size]])
            yield batch["input_ids"].to(self.clf.device), batch["attention_mask"].to(self.clf.device)

    def score(self, name: str, texts=None, ids=None, keep_token_scores: bool = False) -> Scores:
        """One model on ``texts`` (or already-encoded ``ids``; not for ``tfidf_lr``)."""
        if name == "tfidf_lr":
            if texts is None:
                raise ValueError("tfidf_lr scores texts, not token ids")
            if self.tfidf_window:  # what the neural models see, as text (as train_classifier fits it)
                texts = self.tokenizer.batch_decode(self.encode(texts), skip_special_tokens=True)
            log_probs, _ = self.baselines["tfidf_lr"].log_probs(list(texts))
            return Scores(torch.as_tensor(log_probs, dtype=torch.float64), [len(t.split()) for t in texts])
        ids = self.encode(texts) if ids is None else [list(x) if len(x) else [self.filler] for x in ids]
        if name not in MODEL_ORDER[:3] or (name == "discriminative" and name not in self.baselines):
            raise KeyError(f"unknown model {name!r}; this run has {', '.join(self.names)}")
        model = self.baselines["discriminative"] if name == "discriminative" else self.clf
        kwargs = {"num_draws": self.num_draws} if name == "generative" else {}
        preds = predict(model, self.batch_dicts(ids), seed=self.seed, readout=READOUT.get(name, "bayes"),
                        keep_token_scores=keep_token_scores and name == "generative", **kwargs)
        self.forward_passes[name] += preds.forward_passes_per_example * len(ids)
        return Scores(preds.log_joint, [len(x) for x in ids], preds.token_scores)

    def score_all(self, texts, names=None, keep_token_scores: bool = False) -> dict[str, Scores]:
        ids = self.encode(texts)
        return {n: self.score(n, texts=texts, ids=None if n == "tfidf_lr" else ids,
                              keep_token_scores=keep_token_scores and n == "generative")
                for n in (names or self.names)}

    @torch.no_grad()
    def unconditional_log_px(self, texts) -> torch.Tensor | None:
        """The conditional diffusion model's own p(x): input ``[<nolabel>, x]`` with the "no label"
        condition (the last condition id), as trained on ``uncond_prob`` of the batches. ``None``
        for per-class or autoregressive classifiers (they have no unconditional model)."""
        clf = self.clf
        if clf.mode != "conditional" or clf.autoregressive or clf.nolabel_token_id is None:
            return None
        backbone = clf.lms[0].backbone
        no_label = no_label_condition(backbone)

        def score(x, att, condition=None, positions=None):
            cond = None if no_label is None else torch.full((x.shape[0],), no_label, device=x.device)
            return backbone(x, att, condition=cond, positions=positions)

        gen, out = device_generator(self.seed, clf.device), []
        for x, att in self.batches(self.encode(texts)):
            x = torch.cat([torch.full_like(x[:, :1], clf.nolabel_token_id), x], 1)
            att = torch.cat([torch.ones_like(att[:, :1]), att], 1)
            out.append(elbo_log_likelihood(score, x, att, clf.mask_token_id, self.num_draws, prefix_keep=1,
                                           generator=gen).double().cpu())
        return torch.cat(out)

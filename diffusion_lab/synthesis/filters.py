"""Which generated texts are kept: a fixed chain of filters, then a judge-score threshold.

Order (each text is dropped by the first filter it fails, and the table counts that filter):
``length`` (words outside ``[min_words, max_words]``), ``exact_duplicate`` (same words as a real
training text or an earlier synthetic one), ``contamination`` (shares a ``guard.ngram``-word n-gram
with the validation or test texts), ``judge_failure`` (the judge gave no answer: its request failed;
not a reading of the text), ``judge_agreement`` (the judge reads another label, or its answer was
not a valid verdict), ``fluency`` (bound per token below ``min_fluency``), ``near_duplicate`` (word
shingle Jaccard above ``max_jaccard`` with a text kept earlier). The threshold ``score >= tau`` comes
last because ``task=synthesize`` tries several ``tau`` and picks one on validation.
``contamination_hits`` counts every text that shares an n-gram, whichever filter dropped it.
``check_judge_failures``: a round in which most verdicts are judge failures stops the run (a
measurement of nothing must not be reported as a result).
"""

from __future__ import annotations

from collections import Counter

from diffusion_lab.judges.base import JudgeError
from diffusion_lab.synthesis.text_overlap import ContaminationGuard, NearDuplicates, words

FIXED = ("length", "exact_duplicate", "contamination", "judge_failure", "judge_agreement", "fluency",
         "near_duplicate")
ORDER = (*FIXED, "judge_score")


class SyntheticFilter:
    """Keeps state across rounds: texts seen (exact) and kept (near-duplicates)."""

    def __init__(self, guard: ContaminationGuard, real_texts, min_words: int = 1, max_words: int | None = None,
                 dedup_ngram: int = 3, max_jaccard: float = 0.8, require_agreement: bool = True,
                 min_fluency: float | None = None):
        self.guard, self.min_words, self.max_words = guard, min_words, max_words
        self.require_agreement, self.min_fluency = require_agreement, min_fluency
        self.seen = {" ".join(words(t)) for t in real_texts}
        self.near = NearDuplicates(dedup_ngram, max_jaccard)

    def screen(self, texts, intended, verdicts, round_index: int) -> list[dict]:
        """One record per text: the verdict, ``dropped_by`` (None: passed the fixed filters) and why."""
        records = []
        for text, label, verdict in zip(texts, intended, verdicts, strict=True):
            hits = self.guard.hits(text)
            dropped, reason = self._first_failure(text, label, verdict, hits)
            if dropped is None:
                self.near.add(text)
            self.seen.add(" ".join(words(text)))
            records.append({"text": text, "intended_label": label, "round": round_index, "dropped_by": dropped,
                            "reason": reason, "guard_hits": hits, "score": verdict.score,
                            "verdict": verdict.to_dict()})
        return records

    def _first_failure(self, text, label, verdict, hits) -> tuple[str | None, str]:
        n = len(words(text))
        if n < self.min_words or (self.max_words is not None and n > self.max_words):
            return "length", f"{n} words, outside [{self.min_words}, {self.max_words}]"
        if " ".join(words(text)) in self.seen:
            return "exact_duplicate", "same words as a real training text or an earlier synthetic one"
        if hits:
            return "contamination", f"shares {hits} {self.guard.n}-gram(s) with the validation/test texts"
        if verdict.failed:
            return "judge_failure", verdict.reason
        if self.require_agreement and not verdict.agrees(label):
            return "judge_agreement", f"judge: {verdict.reason}"
        if self.min_fluency is not None and (verdict.fluency is None or verdict.fluency < self.min_fluency):
            return "fluency", f"bound {verdict.fluency} nats/token < min_fluency={self.min_fluency}"
        similarity = self.near.closest(text)
        if similarity > self.near.max_jaccard:
            return "near_duplicate", f"Jaccard {similarity:.2f} > {self.near.max_jaccard} with a kept text"
        return None, f"passed: {verdict.reason}"


def check_judge_failures(verdicts, judge_cfg: dict, round_index: int, max_fraction: float = 0.5) -> None:
    """Stop the run (``JudgeError``) when more than ``max_fraction`` of a round's verdicts are judge failures."""

    failed = [v for v in verdicts if v.failed]
    if verdicts and len(failed) > max_fraction * len(verdicts):
        urls = judge_urls(judge_cfg)
        where = f" judge.base_url={', '.join(urls)}:" if urls else ""
        raise JudgeError(f"judge failures: {len(failed)} of {len(verdicts)} texts of round {round_index} got no "
                         f"verdict (last: {failed[-1].reason});{where} check that the judge is reachable and "
                         f"answers, then rerun (cached answers are not asked again)")


def judge_urls(judge_cfg) -> list[str]:
    """Every ``base_url`` in a (resolved, plain) judge config, ensemble members included."""
    found = set()

    def visit(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "base_url" and isinstance(v, str):
                    found.add(v)
                visit(v)
        elif isinstance(node, list):
            for v in node:
                visit(v)

    visit(judge_cfg)
    return sorted(found)


def kept(records: list[dict], threshold: float) -> list[dict]:
    """Records that pass the fixed filters and score at least ``threshold``."""
    return [r for r in records if r["dropped_by"] is None and r["score"] >= threshold]


def decision(record: dict, threshold: float) -> tuple[str | None, str]:
    """(dropped_by, reason) of one record at ``threshold``."""
    if record["dropped_by"] is None and record["score"] < threshold:
        return "judge_score", f"score {record['score']:.3f} < {threshold}"
    return record["dropped_by"], record["reason"]


def round_counts(records: list[dict], threshold: float, judge_name: str) -> dict:
    """The per-round table row: generated, kept, dropped by each filter, agreement and guard counts."""
    dropped = Counter(decision(r, threshold)[0] for r in records)
    agree = [r["verdict"]["valid"] and r["verdict"]["label"] == r["intended_label"] for r in records]
    row = {"generated": len(records), "kept": dropped.pop(None, 0), "threshold": threshold}
    row.update({f"dropped_{name}": dropped.get(name, 0) for name in ORDER})
    row["contamination_hits"] = sum(r["guard_hits"] > 0 for r in records)
    row[f"agreement_{judge_name}"] = sum(agree) / max(len(agree), 1)
    for member in {d["judge"] for r in records for d in r["verdict"].get("details", [])}:
        votes = [d["valid"] and d["label"] == r["intended_label"] for r in records
                 for d in r["verdict"]["details"] if d["judge"] == member]
        row[f"agreement_{member}"] = sum(votes) / max(len(votes), 1)
    return row

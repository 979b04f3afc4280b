"""``EnsembleJudge``: several judges vote on each text.

``rule=majority``: the label read by more than half of the judges (no majority -> no label); the
score is the mean score of the judges that read it. ``rule=all``: every judge must read the same
label; the score is the smallest of their scores. Invalid member verdicts vote for nothing; an
undecided text with a member that failed (no answer) is a judge failure, not a rejection.
"""

from __future__ import annotations

from collections import Counter

from diffusion_lab.judges.base import Verdict, check_lengths

RULES = ("majority", "all")


class EnsembleJudge:
    def __init__(self, judges, rule: str = "majority", name: str = "ensemble"):
        if rule not in RULES:
            raise ValueError(f"judge.rule={rule!r}: allowed values are {', '.join(RULES)}")
        members = list(judges.values()) if hasattr(judges, "values") else list(judges)
        if not members:
            raise ValueError("judge.judges is empty: an ensemble needs at least one judge")
        self.judges, self.rule, self.name = members, rule, name

    def judge(self, texts: list[str], intended_labels: list[str]) -> list[Verdict]:
        check_lengths(texts, intended_labels)
        per_judge = [j.judge(texts, intended_labels) for j in self.judges]
        return [self._combine([vs[i] for vs in per_judge]) for i in range(len(texts))]

    def _combine(self, members: list[Verdict]) -> Verdict:
        votes = Counter(v.label for v in members if v.valid and v.label is not None)
        label, count = votes.most_common(1)[0] if votes else (None, 0)
        if self.rule == "majority":
            decided = count * 2 > len(members)
            scores = [v.score for v in members if v.valid and v.label == label]
            score = sum(scores) / len(scores) if decided else 0.0
        else:
            decided = count == len(members)
            score = min(v.score for v in members) if decided else 0.0
        fluency = next((v.fluency for v in members if v.fluency is not None), None)
        reason = f"{self.rule}: {count}/{len(members)} read {label!r}; " + "; ".join(f"{v.judge}: {v.reason}" for v in members)
        return Verdict(judge=self.name, label=label if decided else None, score=score, reason=reason,
                       valid=decided, fluency=fluency, details=[v.to_dict() for v in members],
                       failed=not decided and any(v.failed for v in members))

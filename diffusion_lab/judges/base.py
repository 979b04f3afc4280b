"""The judge interface and its verdict.

A ``Verdict`` says which label the judge reads in a text (``label``; ``None`` when it could not
decide, e.g. a malformed LLM answer), how confident it is that the text is a good example of the
*intended* label (``score`` in [0, 1]: a classifier's posterior p(intended | x), an LLM's rubric
score), and why (``reason``). ``valid=False`` marks a verdict that must not count as agreement;
``failed=True`` marks one where the judge gave no answer at all (a request that failed after its
retries): a judge failure, counted apart from the texts the judge read and rejected.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol


@dataclass
class Verdict:
    judge: str
    label: str | None
    score: float
    reason: str
    valid: bool = True
    fluency: float | None = None  # the generating LM's bound, nats per token (higher = more fluent)
    details: list[dict] = field(default_factory=list)  # an ensemble's member verdicts
    failed: bool = False  # the judge could not be asked (no answer), not a reading of the text

    def agrees(self, intended: str) -> bool:
        return self.valid and self.label == intended

    def to_dict(self) -> dict:
        return asdict(self)


def rejected(judge: str, reason: str) -> Verdict:
    """A verdict that never passes a filter; ``reason`` says what went wrong."""
    return Verdict(judge=judge, label=None, score=0.0, reason=reason, valid=False)


def judge_failed(judge: str, reason: str) -> Verdict:
    """The verdict of a text the judge could not be asked about (e.g. its server failed to answer)."""
    return Verdict(judge=judge, label=None, score=0.0, reason=f"judge failure: {reason}", valid=False, failed=True)


class JudgeError(RuntimeError):
    """The judge cannot judge (unreachable, misconfigured): the run stops instead of recording rejections."""


class Judge(Protocol):
    name: str

    def judge(self, texts: list[str], intended_labels: list[str]) -> list[Verdict]: ...


def check_lengths(texts, intended_labels) -> None:
    if len(texts) != len(intended_labels):
        raise ValueError(f"judge: {len(texts)} texts but {len(intended_labels)} intended labels; give one label per text")

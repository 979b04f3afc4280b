"""Unmasking schedules: the fraction of generated positions still masked after step s of S.

With r = s / S in [0, 1], every schedule is 1 at r = 0, non-increasing, and exactly 0 at r = 1:

- ``linear``:      f(r) = 1 - r
- ``cosine``:      f(r) = cos(pi/2 * r)   (MaskGIT: few tokens revealed early, many late)
- ``exponential``: f(r) = (exp(-a r) - exp(-a)) / (1 - exp(-a)), a = ``EXPONENTIAL_RATE`` = 5
                   (many tokens revealed early, a long tail; shifted so that it reaches 0 at r = 1)

The masked count of a row with n generated positions is ``round_half_up(n * f(s/S))``: monotone in s,
n at s = 0 and 0 at s = S.
"""

from __future__ import annotations

import math

import torch

EXPONENTIAL_RATE = 5.0


def _linear(r: float) -> float:
    return 1.0 - r


def _cosine(r: float) -> float:
    return math.cos(math.pi / 2 * r)


def _exponential(r: float) -> float:
    a = EXPONENTIAL_RATE
    return (math.exp(-a * r) - math.exp(-a)) / (1.0 - math.exp(-a))


UNMASK_SCHEDULES = {"linear": _linear, "cosine": _cosine, "exponential": _exponential}


def check_schedule(schedule: str) -> str:
    if schedule not in UNMASK_SCHEDULES:
        raise ValueError(f"sampler.schedule must be one of {sorted(UNMASK_SCHEDULES)}, got {schedule!r}")
    return schedule


def masked_fraction(schedule: str, step: int, steps: int) -> float:
    """f(step / steps); exactly 1 at step 0 and exactly 0 at the last step (cos(pi/2) is not 0 in floats)."""
    if step <= 0:
        return 1.0
    if step >= steps:
        return 0.0
    return min(1.0, max(0.0, UNMASK_SCHEDULES[schedule](step / steps)))


def masked_counts(schedule: str, step: int, steps: int, num_generated: torch.Tensor) -> torch.Tensor:
    """Target number of masked positions per row after ``step``; ``num_generated`` is [B] (long)."""
    frac = masked_fraction(schedule, step, steps)
    return torch.floor(num_generated.double() * frac + 0.5).long()

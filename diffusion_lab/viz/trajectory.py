"""Turn a sampler trajectory into per-frame display data (pure data, no drawing).

A trajectory is the list of canvases a sampler produced (``SampleOutput.trajectory``): entry 0 is
the start (all mask ids after the prompt), then one ``[B, L]`` LongTensor per step. Every renderer
(GIF, PNG frames, comparison, HTML viewer) consumes the ``FrameState`` list built here, so the
rules "what counts as new / masked / revealed" live in exactly one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

STATUSES = ("prompt", "mask", "new", "old")


@dataclass(frozen=True)
class FrameState:
    """One frame: the text piece and status of every position, plus progress numbers.

    ``statuses[i]`` is ``"prompt"`` (given, never generated), ``"mask"`` (still a mask id; its
    piece is ``""``), ``"new"`` (revealed or changed at this step) or ``"old"`` (revealed
    earlier). Fractions are over the generated (non-prompt) positions and add up to 1.
    ``elapsed`` is the wall time in seconds since the start, or None when times are unknown.
    """

    pieces: tuple[str, ...]
    statuses: tuple[str, ...]
    step: int
    total_steps: int
    masked_fraction: float
    revealed_fraction: float
    elapsed: float | None = None

    @property
    def num_masked(self) -> int:
        return self.statuses.count("mask")

    @property
    def num_revealed(self) -> int:
        return self.statuses.count("new") + self.statuses.count("old")

    def caption(self) -> str:
        """The one-line progress summary shown under every rendering of this frame."""
        text = (
            f"masked {self.masked_fraction:.0%} / revealed {self.revealed_fraction:.0%}"
            f" · step {self.step}/{self.total_steps}"
        )
        if self.elapsed is not None:
            text += f" · {self.elapsed:.2f} s"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (used by the HTML viewer)."""
        return {
            "step": self.step,
            "total_steps": self.total_steps,
            "masked": self.masked_fraction,
            "revealed": self.revealed_fraction,
            "elapsed": self.elapsed,
            "caption": self.caption(),
            "tokens": [[p, s] for p, s in zip(self.pieces, self.statuses, strict=True)],
        }


def _row(canvas: Any, row: int) -> list[int]:
    """One row of a ``[B, L]`` canvas as ints; accepts tensors, arrays or nested lists."""
    values = canvas[row]
    return [int(v) for v in (values.tolist() if hasattr(values, "tolist") else values)]


class _PieceDecoder:
    """Decode one id at a time to display text, cached (a trajectory repeats ids ~steps times).

    Decoding a single id (rather than the tokenizer's raw token string) turns byte-level BPE
    markers such as GPT-2's ``Ġ`` into real spaces.
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.cache: dict[int, str] = {}

    def __call__(self, token_id: int) -> str:
        if token_id not in self.cache:
            tok = self.tokenizer
            try:
                text = tok.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)
            except TypeError:  # minimal tokenizers without the keyword arguments
                text = tok.decode([token_id])
            except AttributeError:
                text = tok.convert_tokens_to_string(tok.convert_ids_to_tokens([token_id]))
            self.cache[token_id] = text
        return self.cache[token_id]


def decode_pieces(tokenizer: Any, token_ids: Sequence[int]) -> list[str]:
    """Each id decoded on its own to display text (the pieces the renderers and the explainer draw)."""
    decode = _PieceDecoder(tokenizer)
    return [decode(int(i)) for i in token_ids]


def frames_from_trajectory(
    trajectory: Sequence[Any],
    row: int,
    tokenizer: Any,
    prompt_length: int,
    step_times: Sequence[float] | None = None,
    mask_token_id: int | None = None,
) -> list[FrameState]:
    """Build one ``FrameState`` per trajectory entry (``steps + 1`` frames) for batch row ``row``.

    ``mask_token_id`` defaults to ``tokenizer.mask_token_id`` (pass it for tokenizers such as
    GPT-2's that have no mask token of their own). ``step_times`` holds one wall time per step;
    frame ``k`` gets the sum of the first ``k``.
    """
    if len(trajectory) == 0:
        raise ValueError("empty trajectory: sample with return_trajectory=True")
    mask_id = tokenizer.mask_token_id if mask_token_id is None else mask_token_id
    if mask_id is None:
        raise ValueError("the tokenizer has no mask_token_id; pass mask_token_id=")
    total_steps = len(trajectory) - 1
    elapsed: list[float | None] = [None] * len(trajectory)
    if step_times is not None and len(step_times) > 0:
        if len(step_times) != total_steps:
            raise ValueError(f"{len(step_times)} step times for a trajectory of {total_steps} steps")
        elapsed = [0.0, *accumulate(float(t) for t in step_times)]

    decode = _PieceDecoder(tokenizer)
    frames: list[FrameState] = []
    previous: list[int] | None = None
    for step, canvas in enumerate(trajectory):
        ids = _row(canvas, row)
        pieces, statuses = [], []
        for pos, token_id in enumerate(ids):
            if pos < prompt_length:
                status = "prompt"
            elif token_id == mask_id:
                status = "mask"
            elif previous is not None and previous[pos] != token_id:
                status = "new"  # revealed this step, or replaced by a remasking sampler
            else:
                status = "old"
            pieces.append("" if status == "mask" else decode(token_id))
            statuses.append(status)
        generated = max(len(ids) - prompt_length, 0)
        masked = statuses.count("mask") / generated if generated else 0.0
        frames.append(
            FrameState(
                pieces=tuple(pieces),
                statuses=tuple(statuses),
                step=step,
                total_steps=total_steps,
                masked_fraction=masked,
                revealed_fraction=1.0 - masked,
                elapsed=elapsed[step],
            )
        )
        previous = ids
    return frames

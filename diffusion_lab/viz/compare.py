"""Side-by-side (stacked) animation: diffusion on top, autoregressive below, same prompt and length.

Both halves share one canvas size so the eye can compare how the text fills in: all over at once
(diffusion) versus left to right (autoregressive). When one run has fewer steps it holds its final
frame while the other finishes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from PIL import Image, ImageDraw

from diffusion_lab.viz.layout import BACKGROUND, BAR_EMPTY
from diffusion_lab.viz.render import frame_height, render_frame, write_gif, write_pngs
from diffusion_lab.viz.trajectory import FrameState

SEPARATOR = 4  # pixels of rule between the halves


def default_label(name: str, states: Sequence[FrameState]) -> str:
    """``"diffusion: 32 steps, 0.80 s"`` from the states (time left out when unknown)."""
    last = states[-1]
    label = f"{name}: {last.total_steps} steps"
    if last.elapsed is not None:
        label += f", {last.elapsed:.2f} s"
    return label


def _padded(states: Sequence[FrameState], count: int) -> list[FrameState]:
    """``states`` lengthened to ``count`` by holding its finished text.

    The held copies show no "new" highlight: nothing is being revealed while the other run catches up.
    """
    last = states[-1]
    settled = replace(last, statuses=tuple("old" if s == "new" else s for s in last.statuses))
    return list(states) + [settled] * (count - len(states))


def render_comparison_frames(
    top_states: Sequence[FrameState],
    bottom_states: Sequence[FrameState],
    labels: tuple[str, str] | None = None,
    width: int = 900,
    font_size: int = 18,
) -> list[Image.Image]:
    """One stacked image per frame of the longer trajectory; both halves have the same size."""
    if not top_states or not bottom_states:
        raise ValueError("both trajectories need at least one frame")
    if labels is None:
        labels = (default_label("diffusion", top_states), default_label("autoregressive", bottom_states))
    half = max(frame_height(s, width, font_size) for s in [*top_states, *bottom_states])
    count = max(len(top_states), len(bottom_states))
    frames = []
    for top, bottom in zip(_padded(top_states, count), _padded(bottom_states, count), strict=True):
        canvas = Image.new("RGB", (width, 2 * half + SEPARATOR), BACKGROUND)
        canvas.paste(render_frame(top, width, font_size, labels[0], half), (0, 0))
        canvas.paste(render_frame(bottom, width, font_size, labels[1], half), (0, half + SEPARATOR))
        ImageDraw.Draw(canvas).rectangle((0, half, width, half + SEPARATOR - 1), fill=BAR_EMPTY)
        frames.append(canvas)
    return frames


def render_comparison(
    top_states: Sequence[FrameState],
    bottom_states: Sequence[FrameState],
    path: str | Path,
    labels: tuple[str, str] | None = None,
    frame_ms: int = 800,
    width: int = 900,
    font_size: int = 18,
    frames_dir: str | Path | None = None,
    hold_last_ms: int | None = None,
) -> list[Image.Image]:
    """Write ``comparison.gif`` (and ``frames_dir/step_XX.png`` when given); returns the frames.

    ``labels`` name each half, e.g. ``("diffusion: 32 steps, 0.8 s", "autoregressive: 64 steps,
    1.1 s")``; by default they are built from each trajectory's step count and wall time.
    """
    frames = render_comparison_frames(top_states, bottom_states, labels, width, font_size)
    write_gif(frames, path, frame_ms, hold_last_ms)
    if frames_dir is not None:
        write_pngs(frames, frames_dir)
    return frames

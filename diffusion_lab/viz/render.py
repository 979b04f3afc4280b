"""Draw trajectory frames as images: one PNG per step and an animated ``denoising.gif``.

A frame, top to bottom: a title, the wrapped text (prompt tinted blue, tokens revealed at this
step highlighted, earlier tokens plain, masks as grey blocks), a progress bar filled to the
revealed fraction, the caption ``masked x% / revealed y% · step s/S`` and a colour legend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from diffusion_lab.viz.layout import (
    BACKGROUND,
    INK,
    draw_legend,
    draw_progress,
    draw_tokens,
    font,
    layout_tokens,
)
from diffusion_lab.viz.trajectory import FrameState

DEFAULT_TITLE = "Masked diffusion: text emerging from masks"


class _Geometry:
    """Sizes derived from the font size, so every frame of one animation lines up."""

    def __init__(self, width: int, font_size: int):
        self.width = width
        self.size = font_size
        self.margin = round(font_size * 1.3)
        self.title_size = round(font_size * 1.25)
        self.small = max(10, round(font_size * 0.8))
        self.text_top = self.margin + round(self.title_size * 1.8)
        self.text_width = width - 2 * self.margin
        # bar, caption and legend, measured from the bottom edge so they never move between frames
        self.bar_h = max(6, round(font_size * 0.55))
        self.footer = round(font_size * 0.9) + self.bar_h + round(self.small * 1.6) * 2 + self.margin

    def height_for(self, state: FrameState) -> int:
        _, text_height = layout_tokens(state.pieces, state.statuses, self.size, self.text_width)
        return int(self.text_top + text_height + self.footer)


def frame_height(state: FrameState, width: int = 900, font_size: int = 18) -> int:
    """The height ``render_frame`` needs for ``state`` (to size several frames alike)."""
    return _Geometry(width, font_size).height_for(state)


def render_frame(
    state: FrameState,
    width: int = 900,
    font_size: int = 18,
    title: str = DEFAULT_TITLE,
    height: int | None = None,
) -> Image.Image:
    """Render one frame as an RGB image ``width`` pixels wide.

    ``height`` defaults to what the text needs; pass a larger one to give several frames the same
    size (``render_frames`` does this). The footer stays anchored to the bottom edge.
    """
    g = _Geometry(width, font_size)
    height = max(height or 0, g.height_for(state))
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((g.margin, g.margin), title, font=font(g.title_size), fill=INK)

    placed, _ = layout_tokens(state.pieces, state.statuses, font_size, g.text_width)
    draw_tokens(draw, placed, font_size, g.margin, g.text_top)

    y = height - g.footer + round(font_size * 0.9)
    draw_progress(draw, (g.margin, y, width - g.margin, y + g.bar_h), state.revealed_fraction)
    y += g.bar_h + round(g.small * 0.5)
    draw.text((g.margin, y), state.caption(), font=font(g.small), fill=INK)
    draw_legend(draw, g.margin, y + round(g.small * 1.6), g.small)
    return image


def render_frames(
    states: Sequence[FrameState],
    width: int = 900,
    font_size: int = 18,
    title: str = DEFAULT_TITLE,
    height: int | None = None,
) -> list[Image.Image]:
    """Render every state at one common size (the tallest frame's, or ``height`` if larger)."""
    if not states:
        raise ValueError("no frames to render")
    g = _Geometry(width, font_size)
    common = max([height or 0, *(g.height_for(s) for s in states)])
    return [render_frame(s, width, font_size, title, common) for s in states]


def frame_names(count: int) -> list[str]:
    """``step_00.png`` ... zero-padded to the width of the last step index (at least 2 digits)."""
    digits = max(2, len(str(max(count - 1, 0))))
    return [f"step_{i:0{digits}d}.png" for i in range(count)]


def write_pngs(images: Sequence[Image.Image], directory: str | Path) -> list[Path]:
    """Write already-rendered frames as ``directory/step_XX.png``; returns the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / name for name in frame_names(len(images))]
    for image, path in zip(images, paths, strict=True):
        image.save(path, format="PNG")
    return paths


def write_gif(
    images: Sequence[Image.Image], path: str | Path, frame_ms: int = 800, hold_last_ms: int | None = None
) -> Path:
    """Write already-rendered, same-size frames as a looping GIF.

    ``hold_last_ms`` lets the finished text stay up longer before the loop restarts. GIF stores
    delays in hundredths of a second, so durations are truncated to a multiple of 10 ms.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    durations = [frame_ms] * len(images)
    durations[-1] = frame_ms if hold_last_ms is None else hold_last_ms
    first, *rest = [im.convert("RGB") for im in images]
    # Pillow merges a frame identical to the previous one; ours always differ (the step caption)
    first.save(path, format="GIF", save_all=True, append_images=rest, duration=durations, loop=0)
    return path


def render_gif(
    states: Sequence[FrameState],
    path: str | Path,
    frame_ms: int = 800,
    width: int = 900,
    font_size: int = 18,
    title: str = DEFAULT_TITLE,
    frames_dir: str | Path | None = None,
    hold_last_ms: int | None = None,
) -> list[Image.Image]:
    """Write ``denoising.gif`` (one frame per step); optionally the PNG frames too (one rendering).

    Returns the rendered frames so callers can embed or log them without drawing twice.
    """
    images = render_frames(states, width, font_size, title)
    write_gif(images, path, frame_ms, hold_last_ms)
    if frames_dir is not None:
        write_pngs(images, frames_dir)
    return images


def save_frames(
    states: Sequence[FrameState],
    directory: str | Path,
    width: int = 900,
    font_size: int = 18,
    title: str = DEFAULT_TITLE,
) -> list[Path]:
    """Write every frame as ``directory/step_00.png`` ...; returns the paths in step order."""
    return write_pngs(render_frames(states, width, font_size, title), directory)

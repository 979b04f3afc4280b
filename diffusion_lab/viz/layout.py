"""Shared drawing pieces: palette, fonts, and a wrapping token layout for Pillow images.

Fonts come only from installed packages, never a download: DejaVu Sans as shipped inside
matplotlib (a project dependency; it covers accented Latin, Greek, Cyrillic, curly quotes and the
newline mark), else Pillow's bundled default font (``ImageFont.load_default(size=...)``, Pillow >=
10.1), whose small subset shows e.g. ``é`` as a box.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
INK = (33, 37, 41)
MUTED = (108, 117, 125)
# status -> (text colour, background or None); "new" is the one that should catch the eye
STATUS_COLOURS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int] | None]] = {
    "prompt": ((23, 64, 140), (219, 234, 254)),
    "mask": ((150, 150, 150), (206, 208, 212)),
    "new": ((20, 20, 20), (253, 216, 100)),
    "old": (INK, None),
}
BAR_EMPTY = (226, 228, 232)
BAR_FILL = (64, 150, 110)
NEWLINE_MARK = "↵"  # a newline piece is drawn as this mark, then the line breaks


def _dejavu_path() -> Path | None:
    try:
        import matplotlib  # deferred: a heavy import, only when drawing
    except ImportError:
        return None
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return path if path.is_file() else None


@lru_cache(maxsize=16)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The text font at ``size`` pixels (cached: loading is not free); see the module docstring."""
    path = _dejavu_path()
    if path is not None:
        return ImageFont.truetype(str(path), size=size)
    return ImageFont.load_default(size=size)


@dataclass(frozen=True)
class Placed:
    """One token's box: ``x``, ``y`` of the word (after any leading gap), its width and text."""

    x: float
    y: float
    width: float
    text: str
    status: str


def layout_tokens(
    pieces: Sequence[str], statuses: Sequence[str], size: int, width: float, x0: float = 0.0
) -> tuple[list[Placed], float]:
    """Flow tokens left to right, wrapping at ``width``; returns boxes and the total height.

    A piece's leading whitespace becomes a gap (so a highlight covers only the word), a mask gets
    a fixed-width block with a one-space gap, and a newline inside a piece breaks the line.
    """
    f = font(size)
    space = f.getlength(" ")
    mask_width = f.getlength("mmm")
    line_height = round(size * 1.75)
    x, y = x0, 0.0
    placed: list[Placed] = []
    for piece, status in zip(pieces, statuses, strict=True):
        if status == "mask":
            gap, text, word_width = space + 2, "", mask_width  # +2: neighbouring blocks stay apart
        else:
            stripped = piece.lstrip(" \t")
            gap = f.getlength(piece[: len(piece) - len(stripped)].replace("\t", "    "))
            text = stripped.replace("\r", "").replace("\n", NEWLINE_MARK)
            word_width = f.getlength(text)
        if x > x0 and x + gap + word_width > x0 + width:
            x, y = x0, y + line_height
        if x <= x0:
            gap = 0.0  # no indent at the start of a line
        placed.append(Placed(x + gap, y, word_width, text, status))
        x += gap + word_width
        if "\n" in piece:
            x, y = x0, y + line_height
    height = y + line_height if placed else 0.0
    return placed, height


def draw_tokens(draw: ImageDraw.ImageDraw, placed: Sequence[Placed], size: int, left: float, top: float) -> None:
    """Draw laid-out tokens at offset (``left``, ``top``): boxes first, then text on top."""
    f = font(size)
    pad_x, pad_top, pad_bottom = 1, round(size * 0.05), round(size * 0.4)
    for p in placed:
        colour, background = STATUS_COLOURS.get(p.status, STATUS_COLOURS["old"])
        x, y = left + p.x, top + p.y
        if background is not None:
            box = (x - pad_x, y - pad_top, x + p.width + pad_x, y + size + pad_bottom)
            draw.rounded_rectangle(box, radius=max(2, size // 6), fill=background)
        if p.text:
            draw.text((x, y), p.text, font=f, fill=colour)


def draw_progress(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], fraction: float) -> None:
    """A rounded progress bar filled to ``fraction`` (clamped to [0, 1])."""
    x0, y0, x1, y1 = box
    radius = max(1, int((y1 - y0) // 2))
    draw.rounded_rectangle(box, radius=radius, fill=BAR_EMPTY)
    fill_to = x0 + (x1 - x0) * min(max(fraction, 0.0), 1.0)
    if fill_to - x0 >= 2 * radius:
        draw.rounded_rectangle((x0, y0, fill_to, y1), radius=radius, fill=BAR_FILL)


def draw_legend(draw: ImageDraw.ImageDraw, x: float, y: float, size: int) -> None:
    """Small swatches naming what each colour means."""
    f = font(size)
    for status, label in (("prompt", "prompt"), ("new", "new this step"), ("old", "earlier"), ("mask", "masked")):
        colour, background = STATUS_COLOURS[status]
        swatch = (x, y + 2, x + size, y + size + 2)
        if background is None:  # plain text has no fill: show an outlined text sample instead
            draw.rounded_rectangle(swatch, radius=3, outline=BAR_EMPTY)
            draw.text((x + 2, y + 2), "a", font=f, fill=colour)
        else:
            draw.rounded_rectangle(swatch, radius=3, fill=background)
        draw.text((x + size + 6, y), label, font=f, fill=MUTED)
        x += size + 6 + f.getlength(label) + size

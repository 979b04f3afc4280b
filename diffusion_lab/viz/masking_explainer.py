"""Show a newcomer what a masked-diffusion model is trained on: one sentence at several mask rates.

Each row masks ``round(rate * n)`` of the ``n`` tokens. The masks are nested (one seeded random
order, the first ``k`` positions masked), so going down the rows reads like the forward noising
process: a token masked at a low rate stays masked at every higher rate.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw
from rich.table import Table
from rich.text import Text

from diffusion_lab.viz.layout import BACKGROUND, BAR_EMPTY, INK, MUTED, draw_tokens, font, layout_tokens

MASK_TEXT = "[MASK]"
#: rows shown for a continuous schedule (one per tenth of its time range)
CONTINUOUS_ROWS = 10


def whitespace_pieces(text: str) -> list[str]:
    """``text`` split into words, each after the first keeping one leading space (no tokenizer needed)."""
    return [word if i == 0 else " " + word for i, word in enumerate(text.split())]


def schedule_rates(schedule: Any, count: int = CONTINUOUS_ROWS) -> list[float]:
    """The mask rates a ``diffusion_lab.masking`` schedule trains on, one explainer row each.

    A discrete schedule (one with ``levels``, e.g. seed_discrete's 0.1 ... 1.0 inside
    ``[min_rate, max_rate]``) gives its levels. A continuous one gives ``m(t)`` at ``count`` evenly
    spaced times ``t`` across its time range ``[t(min_rate), t(max_rate)]``, where training draws
    ``t`` uniformly: so cosine's rows crowd towards low rates just as its training batches do.
    """

    levels = getattr(schedule, "levels", None)
    if levels:
        return [float(level) for level in levels]
    lo, hi = schedule.inverse_rate(schedule.min_rate), schedule.inverse_rate(schedule.max_rate)
    times = torch.tensor([lo + (hi - lo) * k / count for k in range(1, count + 1)], dtype=torch.float64)
    return [round(float(m), 3) for m in schedule.rate(times)]


def masked_positions(num_tokens: int, rates: Sequence[float], seed: int) -> list[list[bool]]:
    """For each rate, which of ``num_tokens`` positions are masked (``round(rate * n)`` of them)."""
    for rate in rates:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"masking rates must lie in [0, 1], got {rate}")
    order = list(range(num_tokens))
    random.Random(seed).shuffle(order)
    rows = []
    for rate in rates:
        chosen = set(order[: round(rate * num_tokens)])
        rows.append([pos in chosen for pos in range(num_tokens)])
    return rows


def _terminal_text(tokens: Sequence[str], mask: Sequence[bool]) -> Text:
    # Text.append never parses markup, so a token such as "[bold]" prints as itself
    text = Text()
    for i, (token, masked) in enumerate(zip(tokens, mask, strict=True)):
        if masked:
            text.append(" " if i else "")  # always spaced, so neighbouring masks stay countable
            text.append(MASK_TEXT, style="reverse dim")
        else:
            text.append(token.replace("\n", "↵"))
    return text


def explainer_table(tokens: Sequence[str], rates: Sequence[float], masks: Sequence[Sequence[bool]]) -> Table:
    """The terminal version: one row per rate with the masked sentence."""
    table = Table(title="What the model is trained on: the same sentence at each masking rate")
    table.add_column("rate", justify="right")
    table.add_column("masked", justify="right")
    table.add_column("what the model sees")
    for rate, mask in zip(rates, masks, strict=True):
        table.add_row(f"{rate:.0%}", f"{sum(mask)}/{len(mask)}", _terminal_text(tokens, mask))
    return table


def explainer_image(
    tokens: Sequence[str],
    rates: Sequence[float],
    masks: Sequence[Sequence[bool]],
    width: int = 900,
    font_size: int = 18,
) -> Image.Image:
    """The picture version: a title, then one labelled, wrapped row per rate."""
    margin, label_width = round(font_size * 1.3), round(font_size * 7)
    text_left, text_width = margin + label_width, width - 2 * margin - label_width
    small = max(10, round(font_size * 0.8))
    rows = []
    for mask in masks:
        statuses = ["mask" if m else "old" for m in mask]
        placed, text_height = layout_tokens(tokens, statuses, font_size, text_width)
        rows.append((placed, max(text_height, font_size * 2.6)))  # room for the two-line label
    row_gap = font_size
    top = margin + round(font_size * 1.25 * 1.8) + round(small * 1.8)
    height = top + sum(h for _, h in rows) + row_gap * (len(rows) - 1) + margin

    image = Image.new("RGB", (width, int(height)), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((margin, margin), "What the model is trained on", font=font(round(font_size * 1.25)), fill=INK)
    subtitle = "The same sentence with a random share of its tokens masked; the model learns to fill them in."
    draw.text((margin, margin + round(font_size * 1.25 * 1.6)), subtitle, font=font(small), fill=MUTED)
    y = float(top)
    for i, (rate, mask, (placed, row_height)) in enumerate(zip(rates, masks, rows, strict=True)):
        if i:  # a rule between rows, not under the subtitle
            draw.line((margin, y - row_gap / 2, width - margin, y - row_gap / 2), fill=BAR_EMPTY, width=1)
        draw.text((margin, y), f"rate {rate:.0%}", font=font(font_size), fill=INK)
        draw.text((margin, y + font_size * 1.3), f"{sum(mask)}/{len(mask)} masked", font=font(small), fill=MUTED)
        draw_tokens(draw, placed, font_size, text_left, y)
        y += row_height + row_gap
    return image


def masking_explainer(
    text_tokens: Sequence[str],
    rates: Sequence[float],
    seed: int = 0,
    path: str | Path | None = None,
    width: int = 900,
    font_size: int = 18,
) -> tuple[Image.Image, Table]:
    """Render ``text_tokens`` (decoded pieces, e.g. one per token id) masked at each of ``rates``.

    Returns the image (also saved as PNG to ``path`` when given) and a rich ``Table`` to print
    with ``rich.console.Console().print(table)``.
    """
    masks = masked_positions(len(text_tokens), rates, seed)
    image = explainer_image(text_tokens, rates, masks, width, font_size)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        image.save(path, format="PNG")
    return image, explainer_table(text_tokens, rates, masks)

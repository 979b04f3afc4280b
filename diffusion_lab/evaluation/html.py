"""Self-contained HTML: token heatmaps and single-file reports (inline CSS, images as data URIs).

A report opens offline and can be mailed as one file: no scripts, fonts or links to fetch.
Every piece of text that comes from data (tokens, titles, headings, image names) is escaped.
"""

from __future__ import annotations

import base64
import html as _html
import mimetypes
from pathlib import Path

CSS = """
body { font-family: system-ui, sans-serif; max-width: 960px; margin: 2em auto; color: #222; }
h1, h2 { font-weight: 600; } section { margin-bottom: 2em; }
.heatmap { line-height: 2; } .heatmap span { padding: 1px 2px; border-radius: 3px; }
figure { margin: 1em 0; } figure img { max-width: 100%; } figcaption { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 2px 8px; }
"""

POSITIVE_RGB = (33, 102, 172)  # blue: evidence for the class
NEGATIVE_RGB = (178, 24, 43)  # red: evidence against it


def escape(text: str) -> str:
    """HTML-escape text, quotes included (safe inside attributes too)."""
    return _html.escape(str(text), quote=True)


def token_heatmap_html(tokens: list[str], scores: list[float]) -> str:
    """Tokens as spans coloured by score: blue for positive, red for negative, opacity
    |s| / max|s| (so the strongest token is fully coloured); the score is in the tooltip."""
    if len(tokens) != len(scores):
        raise ValueError(f"{len(tokens)} tokens but {len(scores)} scores")
    scale = max((abs(float(s)) for s in scores), default=0.0) or 1.0
    spans = []
    for tok, s in zip(tokens, scores, strict=True):
        s = float(s)
        r, g, b = POSITIVE_RGB if s >= 0 else NEGATIVE_RGB
        alpha = min(abs(s) / scale, 1.0)
        spans.append(
            f'<span style="background: rgba({r}, {g}, {b}, {alpha:.3f})" title="{s:+.4f}">{escape(tok)}</span>'
        )
    return '<div class="heatmap">' + " ".join(spans) + "</div>"


def data_uri(path) -> str:
    """A file's bytes as a base64 data URI (type guessed from the suffix, PNG by default)."""
    path = Path(path)
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def self_contained_report(title: str, sections: list[tuple[str, str]], images: dict | None = None) -> str:
    """One HTML document: escaped title, then each (heading, body_html) section, then each image
    {caption: path} embedded as a data URI. Section bodies are trusted HTML (e.g. from
    token_heatmap_html); pass any raw text through escape() before putting it in a body."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
    ]
    for heading, body in sections:
        parts.append(f"<section><h2>{escape(heading)}</h2>{body}</section>")
    for caption, path in (images or {}).items():
        parts.append(
            f'<figure><img src="{data_uri(path)}" alt="{escape(caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)

"""Write ``viewer.html``: one self-contained page to play, scrub and inspect a trajectory.

No network: CSS and JS are inline, a Content-Security-Policy forbids any fetch, and frames are
embedded (as JSON token data, optionally also as PNG data URIs). Element ids a test or a user
script can rely on:

- ``#play`` play/pause button (``data-playing="true"|"false"``), ``#replay`` replay button
- ``#slider`` range input over frame indices, ``#step-label`` text ``"step s / S"``
- ``#canvas`` the current frame: one ``span.tok.<status>`` per position (status in prompt, mask,
  new, old), attribute ``data-step`` = frame index; ``#stats`` its caption
- ``#frames`` the frame-by-frame grid (``hidden`` until toggled), one ``figure.cell`` per frame
- ``#toggle-frames`` grid toggle button; ``#trajectory-data`` the embedded JSON
- keys: R replay, F toggle the grid, left/right arrows step, Space play/pause
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from diffusion_lab.viz.trajectory import FrameState
from diffusion_lab.viz.viewer_page import PAGE


def _png_data_uri(frame: Image.Image | str | Path) -> str:
    """A PNG (an image or a file path) as a ``data:`` URI for embedding."""
    if isinstance(frame, Image.Image):
        buffer = io.BytesIO()
        frame.save(buffer, format="PNG", optimize=True)
        raw = buffer.getvalue()
    else:
        raw = Path(frame).read_bytes()
    return "data:image/png;base64," + base64.b64encode(raw).decode("ascii")


def script_safe_json(payload: Any) -> str:
    """JSON that can sit inside a ``<script>`` element: no ``<``, ``>`` or ``&`` survives literally.

    Without this, a generated ``</script><script>alert(1)`` would end the data block and run.
    The escapes are valid JSON string escapes, so ``JSON.parse`` restores the exact text.
    """
    text = json.dumps(payload, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def viewer_payload(
    states: Sequence[FrameState],
    title: str,
    frame_ms: int = 800,
    png_frames: Sequence[Image.Image | str | Path] | None = None,
    autoplay: bool = True,
) -> dict[str, Any]:
    """The data the page embeds (exposed so tests can compare it with the trajectory)."""
    if png_frames is not None and len(png_frames) != len(states):
        raise ValueError(f"{len(png_frames)} PNG frames for {len(states)} states")
    return {
        "title": title,
        "frame_ms": int(frame_ms),
        "autoplay": bool(autoplay),
        "frames": [s.to_dict() for s in states],
        "images": None if png_frames is None else [_png_data_uri(f) for f in png_frames],
    }


def write_viewer(
    states: Sequence[FrameState],
    path: str | Path,
    title: str = "Masked diffusion: text emerging from masks",
    frame_ms: int = 800,
    png_frames: Sequence[Image.Image | str | Path] | None = None,
    autoplay: bool = True,
) -> Path:
    """Write the viewer page to ``path`` and return it.

    ``png_frames`` (rendered images or PNG paths, one per state) are embedded for the grid view;
    without them the grid shows each frame's tokens as text. ``autoplay`` starts playing on load.
    """
    if not states:
        raise ValueError("no frames to show")
    payload = viewer_payload(states, title, frame_ms, png_frames, autoplay)
    values = {"TITLE": html.escape(title), "DATA": script_safe_json(payload)}
    # one pass, so a placeholder-like string inside the title or the data is never substituted
    page = re.sub(r"__(TITLE|DATA)__", lambda m: values[m.group(1)], PAGE)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def read_embedded_payload(page: str) -> dict[str, Any]:
    """Parse the JSON embedded in a written viewer page (the inverse of ``write_viewer``)."""
    start_tag = '<script type="application/json" id="trajectory-data">'
    start = page.index(start_tag) + len(start_tag)
    return json.loads(page[start : page.index("</script>", start)])

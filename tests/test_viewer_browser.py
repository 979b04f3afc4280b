"""viewer.html in a real headless browser (Debian's chromium driven by Playwright).

Install with ``bash .ci/install_browser.sh``; without chromium or playwright these tests skip.
Playwright launches the system chromium (``executable_path``); ``playwright install`` is never used.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from diffusion_lab.viz.render import render_frames
from diffusion_lab.viz.synthetic import reveal_trajectory
from diffusion_lab.viz.trajectory import frames_from_trajectory
from diffusion_lab.viz.viewer import write_viewer

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"


class PieceTokenizer:
    """Fake tokenizer: id ``i`` decodes to ``pieces[i]``; id 0 is the mask."""

    mask_token_id = 0

    def __init__(self, pieces: list[str]):
        self.pieces = ["<mask>", *pieces]

    def decode(self, ids: list[int], **_: object) -> str:
        return "".join(self.pieces[i] for i in ids)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file() and shutil.which("chromium") is None:
        pytest.skip("chromium not installed (run .ci/install_browser.sh)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (run .ci/install_browser.sh)")
    with sync_api.sync_playwright() as p:
        executable = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def write_page(tmp_path: Path, pieces: list[str], prompt: int, steps: int, png: bool = False) -> tuple[Path, list]:
    """A viewer over ``pieces`` (the first ``prompt`` are the prompt); slow frames so nothing moves on its own."""
    tok = PieceTokenizer(pieces)
    ids = list(range(1, len(pieces) + 1))
    trajectory = reveal_trajectory(ids[:prompt], ids[prompt:], steps, 0, seed=2)
    states = frames_from_trajectory(trajectory, 0, tok, prompt)
    images = render_frames(states, width=480) if png else None
    path = write_viewer(states, tmp_path / "viewer.html", title="Test viewer", frame_ms=60_000,
                        png_frames=images, autoplay=False)
    return path, states


def open_page(browser, path: Path):
    """Open ``path`` from a file URL, collecting console errors, page errors and dialogs."""
    page = browser.new_page(viewport={"width": 1000, "height": 700})
    events: dict[str, list[str]] = {"errors": [], "dialogs": []}
    page.on("console", lambda m: events["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: events["errors"].append(str(e)))

    def on_dialog(dialog):
        events["dialogs"].append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(path.resolve().as_uri())
    page.wait_for_selector("#canvas span.tok")
    return page, events


def canvas_statuses(page) -> list[str]:
    return page.eval_on_selector_all("#canvas span.tok", "els => els.map(e => e.className.split(' ')[1])")


def test_viewer_controls_change_what_is_shown(browser, tmp_path):
    words = ["The", " film", " opens", " on", " a", " quiet", " street", " where", " nothing", " happens", "."]
    path, states = write_page(tmp_path, words, prompt=3, steps=4, png=True)
    page, events = open_page(browser, path)
    last = len(states) - 1

    assert page.inner_text("#step-label") == "step 0 / 4"
    assert canvas_statuses(page) == list(states[0].statuses)
    assert page.get_attribute("#play", "data-playing") == "false"

    page.fill("#slider", "2")  # sets the value and fires input, as dragging would
    assert page.inner_text("#step-label") == "step 2 / 4"
    assert canvas_statuses(page) == list(states[2].statuses)

    page.keyboard.press("ArrowRight")
    assert page.get_attribute("#canvas", "data-step") == "3"
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert page.get_attribute("#canvas", "data-step") == "1"
    assert page.input_value("#slider") == "1"

    page.fill("#slider", str(last))
    assert page.inner_text("#canvas") == "".join(words)  # the finished text, no masks
    page.keyboard.press("r")  # replay: back to the all-masked start, playing
    assert page.inner_text("#step-label") == "step 0 / 4"
    assert page.get_attribute("#play", "data-playing") == "true"
    page.click("#play")
    assert page.get_attribute("#play", "data-playing") == "false"

    assert page.is_hidden("#frames") and page.is_visible("#canvas")
    page.keyboard.press("f")
    assert page.is_visible("#frames") and page.is_hidden("#canvas")
    assert page.locator("#frames figure.cell").count() == len(states)
    assert page.locator("#frames img").count() == len(states)  # the embedded PNG frames
    page.keyboard.press("F")
    assert page.is_hidden("#frames")

    shot = tmp_path / "viewer.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert events["errors"] == [] and events["dialogs"] == []
    page.close()


def test_model_text_renders_as_text_never_as_markup(browser, tmp_path):
    pieces = ["Say ", SCRIPT, " and", " ", IMG, " then", " stop", " " + SCRIPT, IMG]
    path, states = write_page(tmp_path, pieces, prompt=3, steps=3)
    page, events = open_page(browser, path)
    page.fill("#slider", str(len(states) - 1))
    page.keyboard.press("f")  # the grid shows every frame's text too
    page.keyboard.press("f")
    page.wait_for_timeout(300)  # give a (wrongly) injected onerror handler time to fire

    text = page.inner_text("#canvas")
    assert SCRIPT in text and IMG in text
    assert page.locator("#canvas img, #canvas script").count() == 0
    assert page.locator("#frames img, #frames script").count() == 0  # no PNGs embedded here
    assert page.locator("script").count() == 2  # the data block and the viewer's own script
    assert events["dialogs"] == [] and events["errors"] == []
    page.close()

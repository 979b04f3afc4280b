"""Rendering library (issue 6): trajectory frames, GIF/PNG frames, comparison, viewer, masking explainer.

Trajectories are hand-built (``viz.synthetic``) and the tokenizer is a tiny fake, so no model runs;
one test uses the real GPT-2 tokenizer from the shared data folder to check byte-level spaces.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from diffusion_lab.viz.compare import render_comparison
from diffusion_lab.viz.masking_explainer import MASK_TEXT, masked_positions, masking_explainer
from diffusion_lab.viz.render import frame_height, frame_names, render_frame, render_gif, save_frames
from diffusion_lab.viz.synthetic import reveal_trajectory
from diffusion_lab.viz.trajectory import frames_from_trajectory
from diffusion_lab.viz.viewer import read_embedded_payload, write_viewer

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("DIFFUSION_LAB_DATA_DIR", REPO.parent / "shared" / "data"))
MASK = 0


class WordTokenizer:
    """Fake tokenizer: id ``i`` decodes to ``" " + words[i]``; id 0 is the mask."""

    mask_token_id = MASK

    def __init__(self, words: list[str]):
        self.words = ["<mask>", *words]

    def encode(self, text: str) -> list[int]:
        return [self.words.index(w) for w in text.split()]

    def decode(self, ids: list[int], **_: object) -> str:
        return "".join(" " + self.words[i] for i in ids)


WORDS = "the film opens on a quiet street where nothing happens for an hour and then everything at once".split()
TOK = WordTokenizer(WORDS + ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>"])
PROMPT = TOK.encode("the film opens")
TARGET = TOK.encode("on a quiet street where nothing happens for an hour and then everything happens at once")


def diffusion_states(steps: int = 6, target: list[int] = TARGET):
    trajectory = reveal_trajectory(PROMPT, target, steps, MASK, seed=1, batch=2)
    return frames_from_trajectory(trajectory, 1, TOK, len(PROMPT), step_times=[0.05] * steps)


def ar_states():
    trajectory = reveal_trajectory(PROMPT, TARGET, len(TARGET), MASK, order="left_to_right")
    return frames_from_trajectory(trajectory, 0, TOK, len(PROMPT), step_times=[0.01] * len(TARGET))


# ---- trajectory -> frames -------------------------------------------------------------------


def test_frames_count_first_all_masked_last_none():
    states = diffusion_states(steps=6)
    assert len(states) == 6 + 1
    first, last = states[0], states[-1]
    assert first.statuses == ("prompt",) * len(PROMPT) + ("mask",) * len(TARGET)
    assert first.masked_fraction == 1.0 and first.revealed_fraction == 0.0 and first.elapsed == 0.0
    assert last.num_masked == 0 and last.revealed_fraction == 1.0
    assert "".join(last.pieces) == TOK.decode(PROMPT + TARGET)
    assert last.elapsed == pytest.approx(0.3)
    assert [s.step for s in states] == list(range(7)) and {s.total_steps for s in states} == {6}


def test_revealed_never_decreases_and_new_marks_this_step_only():
    states = diffusion_states(steps=5)
    revealed = [s.num_revealed for s in states]
    assert revealed == sorted(revealed) and revealed[-1] == len(TARGET)
    for before, after in zip(states, states[1:], strict=False):
        newly = [i for i, (a, b) in enumerate(zip(before.statuses, after.statuses, strict=True)) if a == "mask" != b]
        assert newly and all(after.statuses[i] == "new" for i in newly)
        assert after.statuses.count("new") == len(newly)  # everything else revealed is "old"
        assert after.revealed_fraction + after.masked_fraction == pytest.approx(1.0)


def test_frames_validate_inputs():
    trajectory = reveal_trajectory(PROMPT, TARGET, 3, MASK)
    with pytest.raises(ValueError, match="step times"):
        frames_from_trajectory(trajectory, 0, TOK, len(PROMPT), step_times=[0.1, 0.2])
    with pytest.raises(ValueError, match="empty trajectory"):
        frames_from_trajectory([], 0, TOK, len(PROMPT))
    no_mask = type("NoMask", (), {"mask_token_id": None, "decode": TOK.decode})()
    with pytest.raises(ValueError, match="mask_token_id"):
        frames_from_trajectory(trajectory, 0, no_mask, len(PROMPT))
    assert frames_from_trajectory(trajectory, 0, no_mask, len(PROMPT), mask_token_id=MASK)[-1].num_masked == 0


def test_gpt2_byte_level_pieces_decode_to_spaces():
    path = DATA_DIR / "gpt2_tokenizer"
    if not (path / "tokenizer.json").is_file():
        pytest.skip(f"GPT-2 tokenizer not found at {path} (set DIFFUSION_LAB_DATA_DIR)")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    prompt, target = tok.encode("Hello"), tok.encode(" world, café")
    mask = tok.eos_token_id  # GPT-2 has no mask token; the project passes its own id
    states = frames_from_trajectory(reveal_trajectory(prompt, target, 2, mask), 0, tok, len(prompt), mask_token_id=mask)
    assert "".join(states[-1].pieces) == "Hello world, café"
    assert not any("Ġ" in p for p in states[-1].pieces)


# ---- PNG frames and GIF ---------------------------------------------------------------------


def test_gif_and_frames_have_configured_size_count_and_duration(tmp_path):
    states = diffusion_states(steps=6)
    render_gif(states, tmp_path / "denoising.gif", frame_ms=120, width=640, frames_dir=tmp_path / "frames")
    with Image.open(tmp_path / "denoising.gif") as gif:
        assert gif.size[0] == 640 and gif.n_frames == len(states)
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
        assert durations == [120] * len(states)
        size = gif.size
    pngs = sorted((tmp_path / "frames").glob("*.png"))
    assert [p.name for p in pngs] == [f"step_{i:02d}.png" for i in range(7)]
    for png in pngs:
        with Image.open(png) as image:
            assert image.format == "PNG" and image.size == size


def test_save_frames_pads_names_to_step_count(tmp_path):
    assert frame_names(3) == ["step_00.png", "step_01.png", "step_02.png"]
    assert frame_names(101)[0] == "step_000.png" and frame_names(101)[-1] == "step_100.png"
    paths = save_frames(diffusion_states(steps=2), tmp_path / "frames", width=400)
    assert [p.name for p in paths] == frame_names(3) and all(p.is_file() for p in paths)


def test_long_text_wraps_onto_more_lines():
    short = diffusion_states(steps=2, target=TARGET[:3])[-1]
    long = diffusion_states(steps=2, target=TARGET * 6)[-1]
    assert frame_height(long, width=500) > frame_height(short, width=500)
    image = render_frame(long, width=500)
    assert image.size == (500, frame_height(long, width=500))


# ---- comparison -----------------------------------------------------------------------------


def test_comparison_halves_come_from_the_two_trajectories(tmp_path):
    top, bottom = diffusion_states(steps=4), ar_states()
    labels = ("diffusion: 4 steps, 0.2 s", "autoregressive: 15 steps, 0.15 s")
    frames = render_comparison(top, bottom, tmp_path / "comparison.gif", labels, frame_ms=90, width=600,
                               frames_dir=tmp_path / "frames")
    assert len(frames) == len(bottom) == len(TARGET) + 1  # the shorter (top) holds its last frame
    with Image.open(tmp_path / "comparison.gif") as gif:
        assert gif.n_frames == len(frames) and gif.size == frames[0].size and gif.size[0] == 600
    assert len(list((tmp_path / "frames").glob("step_*.png"))) == len(frames)

    half = frame_height(top[0], 600)
    width, height = frames[0].size
    assert height >= 2 * half
    for k in (0, 2, 4):
        expected_top = render_frame(top[k], 600, title=labels[0], height=(height - 4) // 2)
        expected_bottom = render_frame(bottom[k], 600, title=labels[1], height=(height - 4) // 2)
        got_top = frames[k].crop((0, 0, width, expected_top.height))
        got_bottom = frames[k].crop((0, height - expected_bottom.height, width, height))
        assert ImageChops.difference(got_top, expected_top).getbbox() is None
        assert ImageChops.difference(got_bottom, expected_bottom).getbbox() is None
        assert ImageChops.difference(got_top, got_bottom).getbbox() is not None
    # after the top run finished, its half no longer changes while the bottom one does
    top_crop = [f.crop((0, 0, width, height // 2)) for f in frames[5:]]
    assert all(ImageChops.difference(top_crop[0], c).getbbox() is None for c in top_crop)


# ---- viewer ---------------------------------------------------------------------------------


def test_viewer_embeds_the_trajectory_and_escapes_model_text(tmp_path):
    target = [TOK.words.index("<script>alert(1)</script>"), TOK.words.index("<img src=x onerror=alert(2)>")]
    states = diffusion_states(steps=3, target=target)
    images = render_gif(states, tmp_path / "d.gif", width=300)
    path = write_viewer(states, tmp_path / "viewer.html", title="</title><script>alert(3)</script>",
                        frame_ms=250, png_frames=images)
    page = path.read_text(encoding="utf-8")
    payload = read_embedded_payload(page)
    assert payload["frame_ms"] == 250 and len(payload["frames"]) == len(states)
    for frame, state in zip(payload["frames"], states, strict=True):
        assert frame["step"] == state.step
        assert [tuple(t) for t in frame["tokens"]] == list(zip(state.pieces, state.statuses, strict=True))
    assert payload["frames"][-1]["tokens"][len(PROMPT)][0] == " <script>alert(1)</script>"
    assert all(uri.startswith("data:image/png;base64,") for uri in payload["images"])
    # model and title text never appears as markup
    for raw in ("<script>alert", "<img src=x", "</title><script>"):
        assert raw not in page
    assert "&lt;/title&gt;" in page
    # self-contained: nothing is loaded from elsewhere
    assert "http://" not in page and "https://" not in page and "src=\"" not in page


# ---- masking explainer ----------------------------------------------------------------------


def test_masking_explainer_masks_the_right_fraction(tmp_path):
    tokens = [" w" + str(i) for i in range(20)]
    rates = [0.0, 0.1, 0.25, 0.5, 0.8, 1.0]
    masks = masked_positions(len(tokens), rates, seed=3)
    assert [sum(m) for m in masks] == [round(r * 20) for r in rates]
    for lower, higher in zip(masks, masks[1:], strict=False):  # nested: the forward process only adds masks
        assert all(h for lo, h in zip(lower, higher, strict=True) if lo)
    assert masked_positions(20, rates, seed=3) == masks != masked_positions(20, rates, seed=4)

    image, table = masking_explainer(tokens, rates, seed=3, path=tmp_path / "masking.png", width=700)
    assert image.width == 700 and (tmp_path / "masking.png").is_file()
    assert table.row_count == len(rates)
    seen = list(table.columns[2].cells)
    for text, rate in zip(seen, rates, strict=True):
        assert text.plain.count(MASK_TEXT) == round(rate * 20)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        masked_positions(5, [1.5], seed=0)


def test_explainer_inputs_whitespace_words_and_schedule_rates():
    from diffusion_lab.masking import CosineSchedule, LogLinearSchedule, SeedDiscreteSchedule
    from diffusion_lab.viz.masking_explainer import schedule_rates, whitespace_pieces
    from diffusion_lab.viz.trajectory import decode_pieces

    assert whitespace_pieces(" the  film\nopens ") == ["the", " film", " opens"]
    assert decode_pieces(TOK, PROMPT) == [" the", " film", " opens"]
    assert schedule_rates(SeedDiscreteSchedule(min_rate=0.3, max_rate=0.6)) == pytest.approx([0.3, 0.4, 0.5, 0.6])
    assert schedule_rates(LogLinearSchedule(min_rate=0.001)) == pytest.approx([k / 10 for k in range(1, 11)], abs=2e-3)
    cosine = schedule_rates(CosineSchedule(), count=4)  # m(t) at t = 1/4 .. 1 of its time range
    assert len(cosine) == 4 and cosine[-1] == 1.0 and cosine == sorted(cosine) and cosine[0] < 0.25

"""``task=visualize`` end to end on a tiny trained run: files, frame counts, viewer data, comparison,
masking explainer, W&B offline media, and the errors for a bad ``run_dir``.

One diffusion run is trained per module (seconds); each test then runs the task in-process through
``tiny_run`` (``app.run`` on the composed config, as the CLI does).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from transformers import AutoTokenizer

from diffusion_lab.errors import ConfigError
from diffusion_lab.viz.viewer import read_embedded_payload
from tests.conftest import DATA_DIR, TINY, TINY_TRAIN_LM, compose

PROMPT = "the movie"
STEPS, LENGTH = 5, 14
VISUALIZE = ["task=visualize", f"task.prompt={PROMPT}", f"sampler.steps={STEPS}", f"task.length={LENGTH}"]


DIFFUSION = [*TINY, *TINY_TRAIN_LM]


def _train(out: Path, overrides: list[str] = DIFFUSION) -> Path:
    """Train a tiny language model into ``out`` (what ``tiny_run`` does, at module scope too)."""
    from diffusion_lab.app import run

    run(compose(overrides, out))
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny masked-diffusion run, trained once for the whole module."""
    return _train(tmp_path_factory.mktemp("diffusion") / "run")


def _gif_frames(path: Path) -> list[Image.Image]:
    with Image.open(path) as gif:
        frames = []
        for index in range(gif.n_frames):
            gif.seek(index)
            frames.append(gif.convert("RGB"))
            frames[-1].info["duration"] = gif.info.get("duration")
        return frames


def _expected_statuses(token_ids: list[list[int]], prompt_length: int, mask_id: int) -> list[list[str]]:
    """The status rules, restated independently of ``viz.trajectory``."""
    rows, previous = [], None
    for ids in token_ids:
        rows.append(["prompt" if i < prompt_length else "mask" if t == mask_id
                     else "new" if previous is not None and previous[i] != t else "old"
                     for i, t in enumerate(ids)])
        previous = ids
    return rows


def test_denoise_writes_gif_frames_viewer_and_trajectory(tiny_run, trained, capsys):
    result, out = tiny_run([*VISUALIZE, f"run_dir={trained}", "task.frame_ms=300", "task.width=640"])
    for name in ("denoising.gif", "viewer.html", "trajectory.json", "samples.txt", "frames/step_00.png"):
        assert (out / name).exists(), name
    assert not (out / "wandb").exists()  # logger=csv: no W&B
    record = json.loads((out / "trajectory.json").read_text())
    main = record["runs"]["main"]
    assert main["steps"] == result["steps"] == STEPS and record["length"] == LENGTH
    assert len(main["token_ids"]) == STEPS + 1 and all(len(ids) == LENGTH for ids in main["token_ids"])

    frames = _gif_frames(out / "denoising.gif")
    assert len(frames) == STEPS + 1  # one frame per step plus the all-masked start
    assert all(f.width == 640 and f.info["duration"] == 300 for f in frames)
    pngs = sorted((out / "frames").glob("step_*.png"))
    assert len(pngs) == STEPS + 1 and Image.open(pngs[0]).size == frames[0].size

    payload = read_embedded_payload((out / "viewer.html").read_text(encoding="utf-8"))
    assert payload["frame_ms"] == 300 and len(payload["images"]) == STEPS + 1
    tokenizer = AutoTokenizer.from_pretrained(str(trained / "tokenizer"))
    statuses = _expected_statuses(main["token_ids"], main["prompt_length"], main["mask_token_id"])
    for frame, ids, expected in zip(payload["frames"], main["token_ids"], statuses, strict=True):
        assert [s for _, s in frame["tokens"]] == expected
        shown = [p for (p, s) in frame["tokens"] if s != "mask"]
        assert shown == [tokenizer.decode([t]) for t, s in zip(ids, expected, strict=True) if s != "mask"]
    assert "mask" not in statuses[-1] and statuses[0][main["prompt_length"]:] == ["mask"] * (LENGTH - main["prompt_length"])

    assert main["text"] == result["text"] and main["text"].startswith(PROMPT)
    assert (out / "samples.txt").read_text(encoding="utf-8") == f"main\t{main['text']}\n"
    assert main["text"] in capsys.readouterr().out  # the final text is printed


def test_comparison_structure_with_two_diffusion_runs(tiny_run, trained, tmp_path):
    """The comparison path with a second (diffusion) run: halves are the two runs' own frames."""
    other = _train(tmp_path / "other", [*DIFFUSION, "seed=1"])
    result, out = tiny_run([*VISUALIZE, f"run_dir={trained}", f"task.compare_run_dir={other}"])
    record = json.loads((out / "trajectory.json").read_text())
    assert record["runs"]["compare"]["run_dir"] == str(other)
    frames = _gif_frames(out / "comparison.gif")
    assert len(frames) == STEPS + 1 == len(list((out / "comparison_frames").glob("step_*.png")))
    # the top half of each stacked frame is this run's trajectory, the bottom the other run's:
    # compare the lossless PNGs with each run rendered alone under the comparison's labels
    from diffusion_lab.viz.compare import SEPARATOR
    from diffusion_lab.viz.render import render_frame
    from diffusion_lab.viz.trajectory import frames_from_trajectory

    stacked = Image.open(out / "comparison_frames" / f"step_{STEPS:02d}.png").convert("RGB")
    half = (stacked.height - SEPARATOR) // 2
    for name, top in (("main", 0), ("compare", half + SEPARATOR)):
        run = record["runs"][name]
        tok = AutoTokenizer.from_pretrained(str(Path(run["run_dir"]) / "tokenizer"))
        states = frames_from_trajectory([[ids] for ids in run["token_ids"]], 0, tok, run["prompt_length"],
                                        run["step_times"])
        label = f"diffusion · {run['sampler']}: {run['steps']} steps, {states[-1].elapsed:.2f} s"
        alone = render_frame(states[-1], 900, 18, label, half)
        assert stacked.crop((0, top, 900, top + half)).tobytes() == alone.tobytes(), name


def _ar_overrides() -> list[str]:
    """A tiny GPT-2 autoregressive run (``TINY`` minus the RoBERTa sizes and BPE size)."""
    base = [o for o in TINY if not o.startswith(("model.backbone.", "tokenizer."))]
    return [*base, *TINY_TRAIN_LM, "sampler=autoregressive", "model=gpt2_tiny", "model.objective=autoregressive", "tokenizer=gpt2",
            "model.backbone.n_embd=32", "model.backbone.n_layer=1", "model.backbone.n_head=2"]


def test_comparison_against_an_autoregressive_run(tiny_run, trained, tmp_path):
    try:
        import diffusion_lab.models.ar_lm  # noqa: F401
    except ImportError:
        pytest.skip("AutoregressiveLM (diffusion_lab/models/ar_lm.py) has not landed; "
                    "test_comparison_structure_with_two_diffusion_runs covers the comparison path")
    if not (DATA_DIR / "gpt2_tokenizer" / "tokenizer.json").is_file():
        pytest.skip(f"GPT-2 tokenizer not found in {DATA_DIR / 'gpt2_tokenizer'}")
    ar_run = _train(tmp_path / "ar", _ar_overrides())
    _, out = tiny_run([*VISUALIZE, f"run_dir={trained}", f"task.compare_run_dir={ar_run}"])
    ar = json.loads((out / "trajectory.json").read_text())["runs"]["compare"]
    assert ar["objective"] == "autoregressive" and ar["steps"] == LENGTH - ar["prompt_length"]
    for step, ids in enumerate(ar["token_ids"]):  # left to right: exactly the first `step` generated
        filled = [t != ar["mask_token_id"] for t in ids[ar["prompt_length"]:]]
        assert filled == [i < step for i in range(len(filled))]
    assert len(_gif_frames(out / "comparison.gif")) == max(STEPS, ar["steps"]) + 1


@pytest.mark.parametrize("masking", ["seed_discrete", "cosine"])
def test_masking_mode_writes_png_and_masks_the_right_fraction(tiny_run, trained, capsys, masking):
    text = "the movie was a quiet delight from start to finish"
    use_run = masking == "cosine"  # one case with the run's tokenizer, one with whitespace words
    extra = [f"run_dir={trained}"] if use_run else []
    result, out = tiny_run(["task=visualize", "task.mode=masking", f"masking={masking}", f"task.text={text}", *extra])
    with Image.open(out / "masking.png") as image:
        assert image.format == "PNG" and image.width == 900
    record = json.loads((out / "masking.json").read_text())
    n = len(record["tokens"])
    if use_run:
        ids = AutoTokenizer.from_pretrained(str(trained / "tokenizer"))(text, add_special_tokens=False)["input_ids"]
        assert n == len(ids) and "".join(record["tokens"]) == text
        assert len(record["rates"]) == 10 and record["rates"] == sorted(record["rates"]) and record["rates"][-1] == 1.0
        assert record["rates"][0] < 0.05  # cosine crowds its rows towards low rates
    else:
        assert record["tokens"][:2] == ["the", " movie"] and n == len(text.split())
        assert record["rates"] == pytest.approx([k / 10 for k in range(1, 11)])  # seed_discrete's levels
    assert record["masked"] == result["masked"] == [round(r * n) for r in record["rates"]]
    printed = capsys.readouterr().out
    assert all(f"{k}/{n}" in printed for k in record["masked"])  # the rich table in the terminal


def test_masking_mode_takes_explicit_rates(tiny_run):
    result, _ = tiny_run(["task=visualize", "task.mode=masking", "task.rates=[0.0,0.5,1.0]", "task.text=a b c d"])
    assert result["rates"] == [0.0, 0.5, 1.0] and result["masked"] == [0, 2, 4]


def test_wandb_offline_run_logs_media(tiny_run, trained, monkeypatch):
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    _, out = tiny_run([*VISUALIZE, f"run_dir={trained}", "logger=wandb", "sampler.steps=2"])
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    media = runs[0] / "files" / "media"
    assert list(media.glob("videos/**/*.gif")) and list(media.glob("html/**/*.html"))
    html = next(media.glob("html/**/*.html")).read_text(encoding="utf-8")
    assert "trajectory-data" in html and "wandb" not in html.lower().split("<body")[0]  # not injected
    assert wandb.run is None  # always finished


def test_clear_errors_for_a_missing_or_wrong_run_dir(tiny_run, trained, tmp_path):
    with pytest.raises(ConfigError, match="needs run_dir="):
        tiny_run(["task=visualize"])
    with pytest.raises(ConfigError, match="no such directory"):
        tiny_run(["task=visualize", f"run_dir={tmp_path / 'nope'}"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a trained diffusion_lab run"):
        tiny_run(["task=visualize", f"run_dir={tmp_path / 'empty'}"])
    # a bad second run fails before the first one generates anything
    with pytest.raises(ConfigError, match="task.compare_run_dir=.*not a trained"):
        tiny_run(["task=visualize", f"run_dir={trained}", f"task.compare_run_dir={tmp_path / 'empty'}"], "cmp")
    assert not (tmp_path / "cmp" / "denoising.gif").exists()
    with pytest.raises(ConfigError, match="task.mode="):
        tiny_run(["task=visualize", "task.mode=explode"])


"""Class-conditional generation from classifier runs (task=generate task.label=...), and its clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import DATA_DIR, TINY, compose

CLF = ["task=train_classifier", "task.val_draws=1", "classifier.num_draws=2", "eval.max_test=16",
       "task.baselines=[]"]
GEN = ["task=generate", "task.num_samples=2", "sampler.steps=3", "task.length=10"]


def _run(out, overrides):
    from diffusion_lab.app import run

    return run(compose([*TINY, *overrides], out))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen_clf")
    _run(root / "conditional", [*CLF, "classifier=conditional"])
    _run(root / "per_class", [*CLF, "classifier=per_class"])
    return root


@pytest.mark.parametrize("sampler", ["confidence", "random_remask", "ddpm_cache"])
def test_conditional_run_generates_each_label_with_every_sampler(runs, sampler):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(runs / "conditional" / "tokenizer"))
    for label in ("negative", "positive"):
        res = _run(runs / f"gen_{sampler}_{label}", [*GEN, f"sampler={sampler}", f"run_dir={runs / 'conditional'}",
                                                     f"task.label={label}"])["main"]
        traj = torch.load(runs / f"gen_{sampler}_{label}" / "trajectory.pt")["main"]["trajectory"]
        label_id = tok.convert_tokens_to_ids(f"<label_{['negative', 'positive'].index(label)}>")
        assert traj.shape[-1] == 11  # the label token in front of task.length=10 text tokens
        assert (traj[:, :, 0] == label_id).all()  # the condition token is kept through every step
        assert not (traj[-1] == tok.mask_token_id).any()
        assert res["label"] == label and len(res["texts"]) == 2
        assert all("<label_" not in t for t in res["texts"])


def test_per_class_run_uses_the_class_model(runs):
    res = _run(runs / "gen_pc", [*GEN, f"run_dir={runs / 'per_class'}", "task.label=positive", "task.prompt=the movie"])
    assert res["main"]["classifier"] == "per_class"
    assert all(t.startswith("the movie") for t in res["main"]["texts"])


def test_default_length_is_the_run_window(runs):
    res = _run(runs / "gen_default", ["task=generate", "task.num_samples=1", "sampler.steps=2",
                                      f"run_dir={runs / 'conditional'}", "task.label=negative"])
    traj = torch.load(runs / "gen_default" / "trajectory.pt")["main"]["trajectory"]
    assert traj.shape[-1] == 16 + 1 and res["main"]["steps"] == 2  # data.max_length=16 of the run, + label


def test_unknown_label_is_a_clear_error_listing_the_labels(runs):
    with pytest.raises(ValueError, match=r"task.label='great' is not a class.*negative, positive"):
        _run(runs / "gen_bad", [*GEN, f"run_dir={runs / 'conditional'}", "task.label=great"])
    with pytest.raises(ValueError, match=r"task.label=<name>.*negative, positive"):
        _run(runs / "gen_none", [*GEN, f"run_dir={runs / 'conditional'}"])


def test_wrong_run_kinds_are_clear_errors(runs, tmp_path):
    gen_dir = runs / "gen_pc"  # a task=generate run directory is not something to generate from
    if not gen_dir.exists():
        _run(gen_dir, [*GEN, f"run_dir={runs / 'per_class'}", "task.label=positive"])
    with pytest.raises(ValueError, match=r"is a (task=|')generate'? run"):
        _run(tmp_path / "g", [*GEN, f"run_dir={gen_dir}"])
    lm = tmp_path / "lm"
    _run(lm, ["trainer.max_steps=1", "task.eval_draws=1", "task.num_samples=1", "task.sample_length=8"])
    with pytest.raises(ValueError, match="needs a classifier run"):
        _run(tmp_path / "g2", [*GEN, f"run_dir={lm}", "task.label=positive"])
    _run(tmp_path / "g3", ["task=generate", "task.num_samples=1", "sampler.steps=2", f"run_dir={lm}"])
    assert torch.load(tmp_path / "g3" / "trajectory.pt")["main"]["trajectory"].shape[-1] == 16  # default length


@pytest.mark.skipif(not (DATA_DIR / "gpt2_tokenizer" / "tokenizer.json").is_file(), reason="no GPT-2 tokenizer")
def test_autoregressive_conditional_run_generates_a_label(tmp_path):
    from diffusion_lab.app import run
    from tests.test_ar_lm import GPT2_TINY

    run(compose([*GPT2_TINY, *CLF, "model.objective=autoregressive", "sampler=autoregressive"], tmp_path / "ar"))
    res = run(compose([*GPT2_TINY, *GEN, "sampler=autoregressive", f"run_dir={tmp_path / 'ar'}",
                       "task.label=positive", "task.prompt=the movie"], tmp_path / "g"))["main"]
    assert res["objective"] == "autoregressive" and res["steps"] == 11 - res["prompt_length"]
    assert all(t.startswith("the movie") for t in res["texts"])
    assert json.loads((tmp_path / "g" / "generation.json").read_text())["main"]["label"] == "positive"

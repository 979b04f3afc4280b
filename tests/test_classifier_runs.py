"""Classifier runs: resume, the device after fit, unsup text deduplicated against validation/test."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.conftest import needs_gpt2_tokenizer

CLF = ["task=train_classifier", "task.baselines=[]", "classifier.num_draws=2", "task.val_draws=1"]


def test_resume_continues_an_interrupted_classifier_run(tiny_run, tmp_path):
    full, _ = tiny_run([*CLF, "trainer.max_epochs=3"], "full")
    interrupt = ["+callbacks.interrupt._target_=tests.test_train_lm.Interrupt", "+callbacks.interrupt.at_epoch=2"]
    with pytest.raises(RuntimeError, match="simulated interruption"):
        tiny_run([*CLF, "trainer.max_epochs=3", *interrupt], "part")
    part = tmp_path / "part"
    resumed, _ = tiny_run([*CLF, "trainer.max_epochs=3", "resume=true", f"run_dir={part}"], "resumed")
    assert resumed["optimizer_steps"] == full["optimizer_steps"]  # continued, not restarted (or skipped)
    assert resumed["models"]["generative"]["nll"] == pytest.approx(full["models"]["generative"]["nll"], abs=1e-5)
    assert json.loads((part / "results.json").read_text())["status"] == "finished"


@pytest.mark.gpu  # Lightning moves the module to the CPU after fit; only a GPU shows the scoring device
def test_test_split_is_scored_on_the_training_device(tiny_run, monkeypatch):
    from diffusion_lab.classifiers import predict as predict_module

    devices = []
    real = predict_module.predict

    def spy(model, *args, **kwargs):
        devices.append(next(model.parameters()).device.type)
        return real(model, *args, **kwargs)

    monkeypatch.setattr("diffusion_lab.tasks.train_classifier.predict", spy)
    tiny_run([*CLF, "trainer=gpu", "trainer.precision=32", "trainer.max_steps=2"])
    assert devices and set(devices) == {"cuda"}


def _jsonl_gz(path, rows):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def test_unsup_texts_that_copy_validation_or_test_are_removed_and_counted(tmp_path):
    from diffusion_lab.data.imdb import ImdbSource

    train = [{"text": f"train review number {i} {'good' if i % 2 else 'bad'}", "label": i % 2} for i in range(40)]
    test = [{"text": f"test review {i}", "label": i % 2} for i in range(10)]
    unsup = [{"text": "test review 3"}, {"text": "test review 4"}, {"text": "an unlabelled review"}]
    for name, rows in (("train", train), ("test", test), ("unsup", unsup)):
        _jsonl_gz(tmp_path / f"{name}.jsonl.gz", rows)
    splits = ImdbSource(tmp_path, val_size=8, use_unsup=True, hub_id=None).load(seed=0)
    unsup.append({"text": splits.validation["text"][0]})  # a validation text too
    _jsonl_gz(tmp_path / "unsup.jsonl.gz", unsup)
    splits = ImdbSource(tmp_path, val_size=8, use_unsup=True, hub_id=None).load(seed=0)
    assert splits.unsup["text"] == ["an unlabelled review"]
    assert splits.stats["duplicates_removed"]["unsup_in_validation_or_test"] == 3


@needs_gpt2_tokenizer  # the GPT-2 run of tests/test_ar_lm.py
def test_gpt2_attention_annealing_advances_inside_train_classifier(tmp_path, monkeypatch):
    from diffusion_lab.classifiers.generative import GenerativeClassifier
    from tests.test_ar_lm import _gpt2_run

    seen = []
    real = GenerativeClassifier.training_step

    def spy(self, batch, batch_idx):
        out = real(self, batch, batch_idx)
        seen.append(self.lms[0].backbone.anneal_progress)
        return out

    monkeypatch.setattr(GenerativeClassifier, "training_step", spy)
    _gpt2_run(tmp_path / "run", ["task=train_classifier", "model.backbone.attention_anneal_steps=4", "task.val_draws=1",
                                 "classifier.num_draws=1", "task.baselines=[]", "trainer.max_epochs=2"])
    assert seen[0] == 0.0 and seen[-1] == 1.0 and sorted(seen) == seen  # causal -> full over the steps


@pytest.mark.parametrize("value, ok", [("auto", True), ("3", True), ("0", False), ("many", False)])
def test_num_draws_is_a_positive_integer_or_auto(value, ok):
    from diffusion_lab.config_schema import validate
    from diffusion_lab.errors import ConfigError
    from tests.conftest import compose

    cfg = compose([f"classifier.num_draws={value}"])
    if ok:
        validate(cfg)
    else:
        with pytest.raises(ConfigError, match="classifier.num_draws"):
            validate(cfg)


@pytest.mark.parametrize("key, value, ok", [("stop_z", "auto", True), ("stop_z", "2.5", True), ("stop_z", "2", True),
                                            ("stop_z", "0", False), ("stop_z", "fast", False),
                                            ("infill_text", "visible", True), ("infill_text", "hidden", False),
                                            ("score_precision", "bf16", True), ("score_precision", "16", False)])
def test_stop_z_and_infill_text_are_checked_at_start_up(key, value, ok):
    from diffusion_lab.config_schema import validate
    from diffusion_lab.errors import ConfigError
    from tests.conftest import compose

    cfg = compose([f"classifier.{key}={value}"])
    if ok:
        validate(cfg)
    else:
        with pytest.raises(ConfigError, match=f"classifier.{key}"):
            validate(cfg)

"""Issue 14: bad inputs are one clear error naming the problem and the fix (defects 3, 4, 6, 8-11, 14, 15)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from diffusion_lab.config_schema import validate
from diffusion_lab.errors import ConfigError
from tests.conftest import CONF, REPO, compose


def _csv(path, rows, header="text,label"):
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


# --- 3: mixed label spellings ------------------------------------------------------------------------


def test_3_mixed_label_spellings_are_refused_not_four_classes(tmp_path):
    from diffusion_lab.data.text_files import TextFilesSource

    rows = [f"review {i},{y}" for i, y in enumerate(["pos", "neg", "0", "1"] * 5)]
    train = _csv(tmp_path / "train.csv", rows)
    with pytest.raises(ValueError, match=r"mixes class ids \['0', '1'\] with label names \['neg', 'pos'\]") as err:
        TextFilesSource(train, train).load(0)
    assert str(train) in str(err.value) and "dataset.label_names" in str(err.value)


# --- 8: non-UTF-8 files, long CSV fields -------------------------------------------------------------


def test_8_non_utf8_file_is_named(tmp_path):
    from diffusion_lab.data.text_files import TextFilesSource

    train = tmp_path / "latin1.csv"
    train.write_bytes("text,label\ncaf\xe9 cr\xe8me,0\nplain,1\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.csv is not UTF-8 text") as err:
        TextFilesSource(train, train).load(0)
    assert "iconv" in str(err.value)


def test_8_csv_field_over_128_kib_reads_like_jsonl(tmp_path):
    from diffusion_lab.data.text_files import read_records

    long_text = "word " * 40_000  # 200 KB in one field
    path = _csv(tmp_path / "long.csv", [f'"{long_text}",1', "short,0"])
    records = read_records(path)
    assert len(records) == 2 and len(records[0]["text"]) == len(long_text)


# --- 4, 10: start-up checks ---------------------------------------------------------------------------


def test_4_sample_length_beyond_the_window_fails_at_start_up_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"task.sample_length=64 exceeds the model's window data.max_length=32"):
        validate(compose(["data.max_length=32", "task.sample_length=64"], tmp_path))
    validate(compose(["data.max_length=32", "task.sample_length=64", "task.num_samples=0"], tmp_path))


def test_10_ddp_without_a_gpu_names_ddp_cpu_before_any_work(tmp_path, monkeypatch):
    from diffusion_lab.app import run
    from diffusion_lab.config_schema import check_accelerator

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"needs a GPU.*trainer=ddp_cpu"):
        run(compose(["trainer=ddp", "logger=none"], tmp_path / "run"))
    assert not (tmp_path / "run" / "tokenizer").exists()  # stopped before the data
    with pytest.raises(ConfigError, match=r"trainer=cpu"):
        check_accelerator(compose(["trainer=gpu"], tmp_path))
    check_accelerator(compose(["trainer=ddp_cpu"], tmp_path))


# --- 9: hub without a network -------------------------------------------------------------------------


def test_9_offline_flags_follow_huggingface_hub_truthiness(monkeypatch):
    from huggingface_hub import constants

    from diffusion_lab.hub import hub_offline

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    for value, expected in (("1", True), ("true", True), ("YES", True), ("0", False), ("", False), ("no", False)):
        monkeypatch.setenv("HF_HUB_OFFLINE", value)
        assert hub_offline() is expected, value
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    assert hub_offline("HF_DATASETS_OFFLINE") and not hub_offline()


def test_9_no_network_without_offline_flag_fails_in_seconds_naming_hf_hub_offline(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: like a machine without network
    import huggingface_hub

    def no_hub_call(*args, **kwargs):  # the 69 s were hub download retries: none may start
        raise AssertionError("a hub download was attempted")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_hub_call)
    monkeypatch.setattr(huggingface_hub.file_download, "hf_hub_download", no_hub_call)
    with pytest.raises(ConfigError) as err:
        validate(compose(["+experiment=imdb_gen_clf"], tmp_path))
    assert "HF_HUB_OFFLINE=1" in str(err.value) and "+experiment=imdb_gen_clf_cpu" in str(err.value)


# --- 6, 11: visualize -------------------------------------------------------------------------------


def _fake_run(path, task_name):
    (path / "tokenizer").mkdir(parents=True)
    (path / "checkpoints").mkdir()
    (path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (path / "config_resolved.yaml").write_text(f"task:\n  name: {task_name}\n")
    return path


def test_6_visualize_refuses_a_run_that_holds_no_language_model(tmp_path):
    from diffusion_lab.tasks.visualize import check_run_dir

    run = _fake_run(tmp_path / "ev", "evaluate")
    with pytest.raises(ConfigError, match=r"is a task=evaluate run; task=visualize \(run_dir\) needs .*task=train_lm"):
        check_run_dir(run)


def test_11_visualize_with_more_steps_than_tokens_stops_at_once(tmp_path):
    from diffusion_lab.tasks.visualize import check_steps

    cfg = compose(["task=visualize", "sampler.steps=10000", "task.length=16"], tmp_path)
    with pytest.raises(ConfigError, match=r"sampler.steps=10000 exceeds task.length=16.*sampler.steps<=16"):
        check_steps(cfg, 16)
    check_steps(compose(["task=visualize", "sampler=autoregressive", "sampler.steps=10000"], tmp_path), 16)


# --- 14: datasets from the user's config directory ------------------------------------------------------


@pytest.mark.slow
def test_14_eval_dataset_is_found_in_a_user_config_dir(tmp_path):
    user = tmp_path / "my_conf" / "dataset"
    user.mkdir(parents=True)
    user.joinpath("my_reviews.yaml").write_text(
        (CONF / "dataset" / "synthetic_sentiment.yaml").read_text().replace("name: synthetic_sentiment",
                                                                            "name: my_reviews"))
    script = tmp_path / "probe.py"
    script.write_text(
        "import hydra\n"
        "from diffusion_lab.app import conf_dir\n"
        "from diffusion_lab.evaluation.data import dataset_config\n"
        "@hydra.main(version_base='1.3', config_path=conf_dir(), config_name='config')\n"
        "def main(cfg):\n"
        "    print('FOUND', dataset_config('my_reviews', cfg).name)\n"
        "    try:\n"
        "        dataset_config('nope', cfg)\n"
        "    except ValueError as err:\n"
        "        print('MISSING', err)\n"
        "main()\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    proc = subprocess.run([sys.executable, str(script), "--config-dir", str(tmp_path / "my_conf"),
                           f"hydra.run.dir={tmp_path / 'out'}"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert "FOUND my_reviews" in proc.stdout, proc.stderr
    assert "MISSING dataset 'nope'" in proc.stdout and "my_reviews" in proc.stdout.split("MISSING")[1]


# --- 15: OOD statistics need a minimum n ----------------------------------------------------------------


def test_15_length_matched_ood_on_too_few_items_is_unavailable_with_the_reason():
    from diffusion_lab.evaluation.models import Scores
    from diffusion_lab.evaluation.suite import ood_section

    g = torch.Generator().manual_seed(0)
    joint_in, joint_out = torch.randn(40, 2, generator=g, dtype=torch.float64), torch.randn(40, 2, generator=g,
                                                                                              dtype=torch.float64)
    len_in, len_out = [64] * 39 + [19], [19] * 40  # short OOD texts against full review windows: one match
    sec = ood_section({"generative": Scores(joint_in, len_in)}, {"generative": Scores(joint_out, len_out)},
                      None, None, len_in, len_out, "short", seed=0, bins=10)
    matched = sec["generative"]["log_px"]["length_matched"]
    assert "auroc" not in matched and matched["n_in"] == 1
    assert "fewer than eval.ood_min_n=20" in matched["skipped"]
    assert "auroc" in sec["generative"]["log_px"]["all"]


def test_unlabelled_text_in_a_classifier_run_fails_at_start_up_naming_the_key(tmp_path):
    # before: the run built the data and the model, then stopped at its first batch on label -1
    with pytest.raises(ConfigError, match=r"data.lm_use_unsup=true adds unlabelled text .* data.lm_use_unsup=false"):
        validate(compose(["task=train_classifier", "data.lm_use_unsup=true"], tmp_path))
    validate(compose(["task=train_lm", "data.lm_use_unsup=true"], tmp_path))  # the LM may read it

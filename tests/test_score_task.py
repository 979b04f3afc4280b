"""task=score: rescoring a trained classifier run reproduces train_classifier's numbers; start-up checks;
the init row; sweeps through the real CLI, tabulated by task=report."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from diffusion_lab.errors import ConfigError
from tests.conftest import DATA_DIR, REPO, TINY, compose

#: per-model metrics that depend on the machine's speed, not on the items and draws
TIMINGS = ("examples_per_s",)
SCORE_TINY = ["logger=csv", "print_config=false"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny conditional classifier (infill and hybrid readouts) with both baselines."""
    from diffusion_lab.app import run

    out = tmp_path_factory.mktemp("score") / "trained"
    run(compose([*TINY, "task=train_classifier", "task.val_draws=1", "classifier.num_draws=2"], out))
    return out


def _score(run_dir, out, *overrides):
    from diffusion_lab.app import run

    return run(compose([*SCORE_TINY, "task=score", f"run_dir={run_dir}", *overrides], out))


def _without_timings(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in TIMINGS}


def test_score_reproduces_train_classifier_on_its_test_items(trained, tmp_path):
    """The acceptance test: the same items, draws (eval_seed + 1 on test, eval_seed on validation for the
    temperature) and options give the numbers train_classifier wrote, for every model."""
    written = json.loads((trained / "results.json").read_text())
    scored = _score(trained, tmp_path / "score", "score.split=test")
    assert set(scored["models"]) == set(written["models"]) == {
        "generative", "generative_infill", "generative_hybrid", "discriminative", "tfidf_lr"}
    for name, metrics in written["models"].items():
        assert _without_timings(scored["models"][name]) == _without_timings(metrics), name
    assert scored["mcnemar_p"] == written["mcnemar_p"]
    assert scored["mcnemar_discordant"] == written["mcnemar_discordant"]
    assert scored["n"] == written["n_test"] and scored["n_val"] == written["n_val"]
    assert (scored["seed"], scored["eval_seed"], scored["draw_seed"]) == (0, 0, 1)
    on_disk = json.loads((tmp_path / "score" / "results.json").read_text())
    assert on_disk["run_dir"] == str(trained) and on_disk["split"] == "test" and on_disk["status"] == "finished"
    assert on_disk["dataset"] == "synthetic_sentiment" and len(on_disk["models"]["generative"]["accuracy_ci95"]) == 2
    assert (tmp_path / "score" / "predictions.csv").is_file()


def test_score_reproduces_a_windowed_sequential_run_with_choices_made_on_validation(tmp_path):
    """Whole documents as windows, sequential draws with stop_z=auto: the run's validation choice
    (results.json stop_z_chosen) is rescored as it was scored."""
    from diffusion_lab.app import run

    out = tmp_path / "windows"
    run(compose([*TINY, "task=train_classifier", "task.val_draws=1", "classifier.num_draws=2", "data.long_text=windows",
                 "classifier.sequential=true", "classifier.stop_z=auto", "classifier.infill_text=visible"], out))
    written = json.loads((out / "results.json").read_text())
    scored = _score(out, tmp_path / "score", "score.split=test")
    assert scored["stop_z_chosen"] == written["stop_z_chosen"] and scored["windows"]["test"] == written["windows"]["test"]
    for name, metrics in written["models"].items():
        assert _without_timings(scored["models"][name]) == _without_timings(metrics), name


def test_options_override_the_runs_saved_ones(trained, tmp_path):
    scored = _score(trained, tmp_path / "k1", "score.readouts=[bayes]", "score.num_draws=1")
    assert list(scored["models"]) == ["generative"] and scored["split"] == "validation"
    assert scored["num_draws_chosen"] == 1 and scored["classifier"]["num_draws"] == 1
    assert "in-sample" in scored["temperature_fitted_on"]
    assert scored["models"]["generative"]["forward_passes_per_example"] <= 2  # K=1 draw x 2 classes
    other = _score(trained, tmp_path / "seed7", "score.readouts=[bayes]", "score.split=test", "score.eval_seed=7")
    written = json.loads((trained / "results.json").read_text())["models"]["generative"]
    assert other["draw_seed"] == 8 and other["models"]["generative"]["nll"] != written["nll"]  # other draws


def test_a_readout_the_run_lacks_fails_at_start_up_naming_the_available_ones(trained, tmp_path):
    lacking = tmp_path / "no_disc"
    shutil.copytree(trained, lacking)
    shutil.rmtree(lacking / "discriminative")  # the run as if trained with baselines=[tfidf_lr]
    with pytest.raises(ConfigError, match=r"discriminative.*bayes, infill, hybrid, tfidf_lr, init"):
        _score(lacking, tmp_path / "s1", "score.readouts=[bayes,discriminative]")
    with pytest.raises(ConfigError, match="score.split='train'"):
        _score(trained, tmp_path / "s2", "score.split=train")
    with pytest.raises(ConfigError, match="score.num_draws"):
        _score(trained, tmp_path / "s3", "score.num_draws=0")
    assert not (tmp_path / "s1" / "predictions.csv").exists()
    from diffusion_lab.app import run

    with pytest.raises(ConfigError, match=r"task=score needs run_dir=.*task=train_classifier"):
        run(compose([*SCORE_TINY, "task=score"], tmp_path / "s4"))


def test_init_row_is_the_untrained_model_on_the_same_items(trained, tmp_path):
    scored = _score(trained, tmp_path / "init", "score.readouts=[bayes,init]")
    assert list(scored["models"]) == ["generative", "generative_init"]
    init, gen = scored["models"]["generative_init"], scored["models"]["generative"]
    assert init["n"] == gen["n"] and "generative_init" in scored["mcnemar_p"]
    assert init["nll"] != gen["nll"]  # no checkpoint was loaded into it


def test_init_model_is_the_model_training_started_from(tmp_path, monkeypatch):
    """Bit for bit: the weights train_classifier handed to fit (after the unigram start) and initial_model's."""
    import torch

    import diffusion_lab.tasks.train_classifier as train_classifier
    from diffusion_lab.app import run
    from diffusion_lab.classifiers.saved_run import initial_model, run_data
    from diffusion_lab.runs import load_run_config

    start, fit = {}, train_classifier._fit_best

    def spy(cfg, module, *args, **kwargs):
        start.setdefault("state", {k: v.clone() for k, v in module.state_dict().items()})
        return fit(cfg, module, *args, **kwargs)

    monkeypatch.setattr(train_classifier, "_fit_best", spy)
    out = tmp_path / "pc"
    run(compose([*TINY, "task=train_classifier", "classifier=per_class", "task.val_draws=1", "task.baselines=[]"], out))
    run_cfg = load_run_config(out)
    init = initial_model(run_cfg, run_data(run_cfg, out), torch.device("cpu")).state_dict()
    assert set(init) == set(start["state"])
    assert [k for k, v in start["state"].items() if not torch.equal(v, init[k])] == []


def test_another_dataset_needs_the_same_labels(trained, tmp_path):
    with pytest.raises(ConfigError, match="same labels"):
        _score(trained, tmp_path / "shift", "score.dataset=synthetic_sentiment_3class", "score.readouts=[bayes]")


@pytest.mark.skipif(not (DATA_DIR / "rt_polarity").is_dir(), reason="rt_polarity not in the shared data folder")
def test_shift_dataset_is_scored_with_the_runs_own_temperature(trained, tmp_path):
    scored = _score(trained, tmp_path / "rt", "score.dataset=rt_polarity", "score.split=test",
                    "score.readouts=[bayes,tfidf_lr]")
    assert scored["dataset"] == "rt_polarity" and scored["n"] > scored["n_val"] == 16
    assert scored["temperature_fitted_on"] == "validation of synthetic_sentiment"
    assert set(scored["models"]) == {"generative", "tfidf_lr"}


@pytest.mark.slow
def test_sweep_through_the_cli_is_tabulated_by_report(trained, tmp_path):
    sweep = tmp_path / "sweep"
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    args = ["-m", "task=score", f"run_dir={trained}", "score.readouts=[bayes,tfidf_lr]", "score.num_draws=1,2",
            *SCORE_TINY, f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run([sys.executable, "-m", "diffusion_lab", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.name.isdigit())
    assert [json.loads((j / "results.json").read_text())["num_draws_chosen"] for j in jobs] == [1, 2]
    from diffusion_lab.app import run

    report = run(compose(["task=report", f"run_dir={sweep}", "logger=csv", "task.plots=false"], tmp_path / "report"))
    assert report["num_jobs"] == 2 and report["swept_keys"] == ["score.num_draws"]
    header = (sweep / "report.csv").read_text().splitlines()[0]
    assert "generative/accuracy" in header and "tfidf_lr/accuracy" in header


def test_drop_class_bias_scores_without_the_naive_bayes_term(trained, tmp_path):
    """The ablation changes what the Bayes readout reads (the conditional model's condition_bias is zeroed)
    and says so; the infill readout reads the label token, so it is scored too but is not the point."""
    kept = _score(trained, tmp_path / "kept", "score.readouts=[bayes]", "score.num_draws=1")
    dropped = _score(trained, tmp_path / "dropped", "score.readouts=[bayes]", "score.num_draws=1",
                     "score.drop_class_bias=true")
    assert dropped["class_bias_dropped"] and not kept["class_bias_dropped"]
    assert dropped["models"]["generative"]["nll"] != kept["models"]["generative"]["nll"]


def test_per_class_drop_class_bias_keeps_the_shared_part():
    import types

    import torch

    from diffusion_lab.classifiers.per_class_layout import PerClassLayout

    biases = [torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0])), torch.nn.Parameter(torch.tensor([3.0, 0.0, 3.0]))]
    clf = types.SimpleNamespace(lms=[types.SimpleNamespace(backbone=types.SimpleNamespace(output_bias=b)) for b in biases])
    PerClassLayout().drop_class_bias(clf)
    for b in biases:
        assert torch.equal(b.detach(), torch.tensor([2.0, 1.0, 3.0]))

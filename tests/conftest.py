"""Shared test set-up: offline everything, one CPU thread, configs composed from the real conf/."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# the test-access ledger of every run the tests start (in-process and CLI subprocesses) goes to a scratch file
os.environ.setdefault("DIFFUSION_LAB_TEST_LEDGER", str(Path(tempfile.mkdtemp(prefix="dl-ledger-")) / "test_ledger.jsonl"))
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"
DATA_DIR = Path(os.environ.get("DIFFUSION_LAB_DATA_DIR", REPO.parent / "shared" / "data"))
GPT2_TOKENIZER = DATA_DIR / "gpt2_tokenizer"
# GPT-2 runs need the tokenizer of the shared data folder (no download at test time)
needs_gpt2_tokenizer = pytest.mark.skipif(not (GPT2_TOKENIZER / "tokenizer.json").is_file(),
                                          reason=f"GPT-2 tokenizer not found at {GPT2_TOKENIZER} (set DIFFUSION_LAB_DATA_DIR)")

#: overrides that make any language-model run tiny (seconds on one CPU core)
TINY = [
    "dataset.num_train=96", "dataset.num_val=16", "dataset.num_test=16",
    "data.max_length=16", "data.batch_size=16", "data.max_val=16",
    "tokenizer.vocab_size=300",
    "model.backbone.hidden_size=32", "model.backbone.num_hidden_layers=1",
    "model.backbone.num_attention_heads=2", "model.backbone.intermediate_size=64",
    "trainer.max_epochs=1", "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false",
    "sampler.steps=4", "logger=csv", "callbacks=none", "print_config=false",
]
#: added for the default task (train_lm) only
TINY_TRAIN_LM = ["task.eval_draws=2", "task.num_samples=2", "task.sample_length=8"]


def compose(overrides: list[str], output_dir: Path | None = None):
    """Compose ``conf/config.yaml`` with ``overrides`` (and ``output_dir``) like the CLI would."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import diffusion_lab.resolvers  # noqa: F401

    extra = [f"output_dir={output_dir}"] if output_dir is not None else []
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=[*overrides, *extra])


@pytest.fixture
def tiny_run(tmp_path):
    """Run a tiny task in-process: ``tiny_run(["task=..."], subdir)`` -> (results, run dir)."""
    from diffusion_lab.app import run

    def _run(overrides: list[str], name: str = "run"):
        out = tmp_path / name
        task_given = any(o.startswith("task=") for o in overrides)
        dataset_given = any(o.startswith("dataset=") and "synthetic" not in o for o in overrides)
        tiny = [o for o in TINY if not (dataset_given and o.startswith("dataset."))]
        cfg = compose([*tiny, *([] if task_given else TINY_TRAIN_LM), *overrides], out)
        return run(cfg), out

    return _run


class TableBackbone(torch.nn.Module):
    """Context-free model: the same distribution ``logp`` at every position, whatever it sees, so
    ``log p(x_i | ..., y) = logp[x_i]`` exactly (classifier and explanation maths are checkable by hand)."""

    causal = False
    condition_embedding = None

    def __init__(self, logp: torch.Tensor):
        super().__init__()
        self.logp = logp

    def forward(self, x, att=None, condition=None):
        return self.logp.expand(x.shape[0], x.shape[1], self.logp.shape[-1]).clone()


# ---- GPU-gated tests ---------------------------------------------------------------------------------
# ``@pytest.mark.gpu`` (registered in pyproject.toml): the test needs CUDA and is skipped without it, as
# lightning-hydra-template's ``RunIf(min_gpus=1)`` does; ``pytest -m gpu`` selects exactly these (the GPU
# check, experiments/gpu/check.sh, runs them on the lent GPU machine).
def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False): experiments/gpu/check.sh")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)

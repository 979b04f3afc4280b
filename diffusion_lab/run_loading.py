"""Rebuilding a language-model run (tokenizer, module, weights) from its directory: above ``builders``
(which it calls) and ``runs`` (the directory I/O it reads through). Classifier runs:
``classifiers.build.load_classifier_run``, which passes its own ``build``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig
from transformers import AutoTokenizer

from diffusion_lab.builders import build_lm
from diffusion_lab.logging_utils import get_logger
from diffusion_lab.runs import find_checkpoint, load_checkpoint, load_run_config

log = get_logger(__name__)


@dataclass
class LoadedRun:
    cfg: DictConfig
    tokenizer: object
    module: object
    run_dir: Path
    checkpoint: Path


def load_run(run_dir: str | Path, which: str = "best", build=None) -> LoadedRun:
    """Rebuild tokenizer and module from a run directory and load its weights.

    ``build(cfg, tokenizer) -> module`` defaults to the language-model builder; the classifier
    task passes its own.
    """
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    tok_dir = run_dir / "tokenizer"
    if not tok_dir.exists():
        raise FileNotFoundError(f"{tok_dir} is missing: the run's tokenizer is needed to rebuild the model")
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    module = (build or (lambda c, t: build_lm(c, t)))(cfg, tokenizer)
    ckpt_path = find_checkpoint(run_dir, which)
    state = load_checkpoint(ckpt_path)
    module.load_state_dict(state["state_dict"])
    if hasattr(module, "on_load_checkpoint"):
        module.on_load_checkpoint(state)
    module.eval()
    log.info("loaded %s", ckpt_path)
    return LoadedRun(cfg=cfg, tokenizer=tokenizer, module=module, run_dir=run_dir, checkpoint=ckpt_path)

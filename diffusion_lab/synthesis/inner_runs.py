"""Classifier trainings inside ``task=synthesize``: each is ``task=train_classifier`` on a composed
sub-config in its own directory under the synthesize run.

The sub-config is the synthesize run's own recipe (model, classifier, masking, trainer, optimizer,
tokenizer, data) with ``task`` = ``conf/task/train_classifier.yaml`` merged with ``task.train``,
``task.score_test=false`` (validation only, the readout ``task.score_model``), and ``dataset=text_files`` pointing at the round's
files: train = real (+ synthetic), val = the real validation file, test = a one-row placeholder
(the real test split never reaches an inner run). ``max_steps`` fixes the optimizer steps so that
every configuration trains exactly as long as the real-only one.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf, open_dict

CONF = Path(__file__).resolve().parent.parent / "conf"


def inner_config(cfg: DictConfig, out_dir: Path, train_path: Path, real, max_steps: int | None = None) -> DictConfig:
    sub = copy.deepcopy(cfg)
    task = OmegaConf.merge(OmegaConf.load(CONF / "task" / "train_classifier.yaml"), cfg.task.get("train") or {})
    with open_dict(sub):
        sub.task = task
        sub.task.score_test = False
        sub.task.validation_models = [cfg.task.get("score_model", "generative")]  # the readout chosen on
        sub.dataset = {"_target_": "diffusion_lab.data.text_files.TextFilesSource", "name": "synthesize_round",
                       "train_path": str(train_path), "val_path": str(real.val_path),
                       "test_path": str(real.placeholder_path), "text_column": "text", "label_column": "label",
                       "label_names": list(real.label_names)}
        sub.output_dir = str(out_dir)
        sub.run_dir, sub.resume = None, False
        sub.data.max_val = None  # the validation file is already the stratified subset
        sub.eval.after_training = False
        sub.logger = {}  # metrics.csv only: the synthesize run is the one W&B run
        callbacks = dict(sub.get("callbacks") or {})
        if "model_checkpoint" not in callbacks:  # the final scoring reloads best.ckpt
            callbacks["model_checkpoint"] = OmegaConf.load(CONF / "callbacks" / "default.yaml").model_checkpoint
        sub.callbacks = callbacks
        if max_steps is not None:
            sub.trainer.max_steps, sub.trainer.max_epochs, sub.trainer.max_time = int(max_steps), -1, None
        sub.pop("judge", None)
    return sub


def train_inner(cfg: DictConfig, out_dir: Path, train_path: Path, real, max_steps: int | None = None) -> dict:
    """Train one classifier; returns its validation-only results (``optimizer_steps``, ``validation``)."""
    sub = inner_config(cfg, out_dir, train_path, real, max_steps)
    out_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(sub, out_dir / "config_resolved.yaml", resolve=True)
    result = get_method(sub.task.run)(sub)  # the task the sub-config names (train_classifier): no import upward
    saved = out_dir / "results.json"
    return json.loads(saved.read_text()) if saved.exists() else result

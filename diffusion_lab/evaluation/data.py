"""The texts an evaluation reads: the run's own validation/test items and other datasets by name.

The run's items are re-derived exactly as ``TextDataModule`` chose them (the dataset source loaded
with the run seed, then the stratified ``data.max_val`` / ``data.max_test`` subsets), then capped
again with a stratified, seeded subset of ``eval.max_val`` / ``eval.max_examples``. Nothing is
ever "the first N rows".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import MissingConfigException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from diffusion_lab.data.cleaning import stratified_indices
from diffusion_lab.resolvers import conf_dir


@dataclass
class Items:
    texts: list[str]
    labels: list[int]

    def subset(self, n: int | None, seed: int) -> Items:
        """A stratified random subset of ``n`` items (all of them, in their order, when n is None or larger)."""
        if n is None or n >= len(self.texts):
            return self
        idx = stratified_indices(self.labels, int(n), seed)
        return Items([self.texts[i] for i in idx], [self.labels[i] for i in idx])


def _select(ds, n: int | None, seed: int) -> Items:
    texts, labels = list(ds["text"]), [int(y) for y in ds["label"]]
    if n is not None and n < len(texts):
        idx = np.sort(stratified_indices(labels, int(n), seed))  # the datamodule's own choice
        texts, labels = [texts[i] for i in idx], [labels[i] for i in idx]
    return Items(texts, labels)


def run_splits(run_cfg: DictConfig):
    """``(splits, validation Items, test Items)`` of a classifier run, as its training saw them."""
    splits = instantiate(run_cfg.dataset).load(int(run_cfg.seed))
    data = run_cfg.data
    return (splits, _select(splits.validation, data.get("max_val"), int(run_cfg.seed)),
            _select(splits.test, data.get("max_test"), int(run_cfg.seed)))


def dataset_config(name_or_cfg, cfg: DictConfig) -> DictConfig:
    """``dataset=<name>`` composed as on the command line (``${data_dir}`` of ``cfg``), found through
    Hydra's config search path: the package's ``conf/`` plus a user ``--config-dir`` or
    ``hydra.searchpath=[...]`` when running under Hydra. A mapping with ``_target_`` is used as given."""
    if not isinstance(name_or_cfg, str):
        return name_or_cfg

    overrides = [f"dataset={name_or_cfg}", f"data_dir={cfg.data_dir}"]
    searchpath = list(HydraConfig.get().searchpath) if HydraConfig.initialized() else []
    if searchpath:
        overrides.append(f"hydra.searchpath=[{','.join(searchpath)}]")
    if GlobalHydra.instance().is_initialized():  # the running app's search path, --config-dir included
        composed = _compose_dataset(compose, name_or_cfg, overrides)
    else:
        with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
            composed = _compose_dataset(compose, name_or_cfg, overrides)
    return OmegaConf.create(OmegaConf.to_container(composed.dataset, resolve=True))


def _compose_dataset(compose, name: str, overrides: list[str]):
    try:
        return compose(config_name="config", overrides=overrides)
    except MissingConfigException:
        known = GlobalHydra.instance().config_loader().get_group_options("dataset")
        raise ValueError(f"dataset {name!r} is not a dataset config on the config search path (conf/dataset, "
                         f"--config-dir, hydra.searchpath); choose from {', '.join(sorted(known))}") from None


def load_shift_items(name_or_cfg, cfg: DictConfig, label_names: list[str], n: int | None, seed: int):
    """``(dataset name, test Items)`` of another labelled dataset with the SAME label names in the same
    order as the classifier's; a clear error otherwise (a shift test needs the same label space)."""
    ds_cfg = dataset_config(name_or_cfg, cfg)
    splits = instantiate(ds_cfg).load(seed)
    if list(splits.label_names) != list(label_names):
        raise ValueError(
            f"eval.shift_dataset={ds_cfg.get('name')!r} has labels {list(splits.label_names)} but the classifier "
            f"was trained on {list(label_names)}: a domain-shift test needs the same labels in the same order "
            "(pick another dataset, or eval.shift_dataset=null to skip it)")
    return str(ds_cfg.get("name")), _select(splits.test, None, seed).subset(n, seed)


def load_ood_texts(name_or_cfg, cfg: DictConfig, n: int | None, seed: int) -> tuple[str, list[str]]:
    """``(dataset name, texts)``: a seeded random subset of another dataset's test split (labels ignored)."""
    ds_cfg = dataset_config(name_or_cfg, cfg)
    texts = list(instantiate(ds_cfg).load(seed).test["text"])
    if n is not None and n < len(texts):
        texts = [texts[i] for i in np.random.default_rng(seed).choice(len(texts), int(n), replace=False)]
    return str(ds_cfg.get("name")), texts

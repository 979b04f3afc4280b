"""Names that choose an object, and the ``_target_`` each one builds: the ``targets:`` table of conf/config.yaml.

``model.objective``, ``classifier.mode``, ``classifier.prior`` and ``classifier.estimator`` stay plain names on the command line
(``model.objective=autoregressive``), in saved runs and in the code that reads them; the object behind a
name comes from its entry in ``targets.<table>`` through ``hydra.utils.instantiate``, never from an
if/elif over the name. The allowed values of a key are its table's names; a new option is one entry
(``+targets.classifier_prior.mine._target_=my.pkg.my_prior classifier.prior=mine``, or a ``--config-dir``
copy of config.yaml), another class for a name one override
(``targets.objective.diffusion._target_=my.pkg.MyLM``), no code change. Each entry is instantiated with ``_partial_=True`` and then called with the run's objects
(backbone, tokenizer, labels), so no tensor or module passes through an OmegaConf merge.

``classifier.estimator`` is chosen when a batch is scored, not when the run is built: the classifier keeps
the name (its checkpoint hyperparameter, also overridable per call, e.g. ``predict(..., estimator=...)``) and
the run's table (``table``), and ``named_target`` turns the name into the scoring function.

Run directories saved before the table (or one of its tables) existed lack it; ``with_targets`` gives their
config the package's missing tables (``runs.load_run_config`` calls it), so they load and resume as before.
It also points entries at objects that moved (``MOVED``): runs saved when ``classifier.mode`` built its
language models with a function name that function, now a layout class builds them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from diffusion_lab.errors import ConfigError

#: config key holding the name -> the table under ``targets`` that lists its options
TABLES = {"model.objective": "objective", "classifier.mode": "classifier_mode", "classifier.prior": "classifier_prior",
          "classifier.estimator": "classifier_estimator"}
CONFIG_YAML = Path(__file__).resolve().parent / "conf" / "config.yaml"
#: ``_target_`` saved by older runs -> where that object lives now (``with_targets`` rewrites them on load)
MOVED = {
    "diffusion_lab.classifiers.build.conditional_lms": "diffusion_lab.classifiers.conditional_layout.ConditionalLayout",
    "diffusion_lab.classifiers.build.per_class_lms": "diffusion_lab.classifiers.per_class_layout.PerClassLayout",
}


@lru_cache(maxsize=1)
def _package_targets() -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONFIG_YAML).targets, resolve=False)


def package_targets() -> DictConfig:
    """The ``targets`` table shipped in the package's conf/config.yaml (a fresh copy)."""
    return OmegaConf.create(_package_targets())


def table(cfg: DictConfig | None, key: str) -> DictConfig:
    """The table of ``key``'s options: ``cfg``'s ``targets.<table>``, or the package's where ``cfg`` has none
    (an older run, a hand-built test config, no config at all)."""
    table_name = TABLES[key]
    found = None if cfg is None else OmegaConf.select(cfg, f"targets.{table_name}", default=None)
    return package_targets()[table_name] if found is None else found


def _entry(key: str, name, options) -> DictConfig:
    """The ``_target_`` node of ``name`` in ``options`` (``key``'s table); a ``ConfigError`` naming the key
    and the allowed values when ``name`` is not one of them."""
    table_name = TABLES[key]
    if name is None or str(name) not in options:
        raise ConfigError(f"{key}={name!r}: allowed values are {', '.join(map(str, options))} "
                          f"(targets.{table_name} in conf/config.yaml: a new option is an entry there)")
    node = options[str(name)]
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError(f"targets.{table_name}.{name} needs a _target_ (the object {key}={name} builds)")
    return node


def target_node(cfg: DictConfig, key: str) -> DictConfig:
    """The ``_target_`` node that the value of ``key`` (e.g. ``model.objective``) names.

    A config without ``targets`` (an older run, a hand-built test config) reads the package's table.
    An unknown name is a ``ConfigError`` naming the key and the allowed values."""
    return _entry(key, OmegaConf.select(cfg, key, default=None), table(cfg, key))


def named_target(key: str, name: str, options=None):
    """The object (``_partial_``) that ``name`` builds as a value of ``key``, from ``options`` (a run's
    table as saved with a model, a dict or ``DictConfig``) or, with ``None``, the package's table.
    For choices made after the config is gone (``classifier.estimator`` at scoring time)."""
    options = OmegaConf.create(_package_targets()[TABLES[key]] if options is None else options)
    return instantiate(_entry(key, name, options), _partial_=True)


def build_target(cfg: DictConfig, key: str, *args, **kwargs):
    """Instantiate the entry that ``key``'s value names (``_partial_``) and call it with ``args``/``kwargs``."""
    return instantiate(target_node(cfg, key), _partial_=True)(*args, **kwargs)


def check_names(cfg: DictConfig) -> None:
    """Start-up check (``config_schema.validate``): every key of ``TABLES`` present in ``cfg`` names an entry."""
    for key in TABLES:
        section = key.split(".", 1)[0]
        if cfg.get(section) is not None and OmegaConf.select(cfg, key, default=None) is not None:
            target_node(cfg, key)


def with_targets(cfg: DictConfig) -> DictConfig:
    """``cfg`` with the package's ``targets`` tables where it has none (run directories saved before the
    ``targets`` table, or before one of its tables, e.g. ``classifier_estimator``), and its entries that name
    a moved object (``MOVED``) pointed at the object's new home."""
    if isinstance(cfg, DictConfig):
        with open_dict(cfg):
            if cfg.get("targets") is None:
                cfg.targets = package_targets()
            else:
                for name, options in package_targets().items():
                    if cfg.targets.get(name) is None:
                        cfg.targets[name] = options
            for options in cfg.targets.values():
                for node in (options or {}).values():
                    if isinstance(node, DictConfig) and node.get("_target_") in MOVED:
                        node["_target_"] = MOVED[node["_target_"]]
    return cfg

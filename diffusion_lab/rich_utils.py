"""Rich terminal output: the composed config as a tree, result tables."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf
from rich import print as rprint
from rich.syntax import Syntax
from rich.table import Table
from rich.tree import Tree

FIRST = ("task", "dataset", "tokenizer", "model", "masking", "sampler", "classifier", "trainer", "data")


def print_config_tree(cfg: DictConfig) -> None:
    """Print the resolved config, one branch per top-level key (groups first)."""
    tree = Tree("config", guide_style="dim")
    keys = [k for k in FIRST if k in cfg] + [k for k in cfg if k not in FIRST]
    for key in keys:
        node = cfg[key]
        text = OmegaConf.to_yaml(node, resolve=True) if isinstance(node, DictConfig) else str(node)
        tree.add(f"[bold]{key}[/bold]").add(Syntax(text, "yaml", theme="ansi_dark", word_wrap=True))
    rprint(tree)


def metrics_table(title: str, rows: dict[str, dict], columns: list[str]) -> Table:
    """A rich table: one row per model / run, the given metric columns (floats to 4 digits)."""
    table = Table(title=title)
    table.add_column("name")
    for c in columns:
        table.add_column(c, justify="right")
    for name, metrics in rows.items():
        cells = []
        for c in columns:
            v = metrics.get(c)
            cells.append(f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v)))
        table.add_row(name, *cells)
    return table

"""Training throughput of the four rows, measured INTERLEAVED on the same batch.

The training runs of ``run.py`` execute one after another on a shared 2-core machine, so other jobs
change their tokens/s by tens of percent. Here every model does one optimizer step in turn
(round robin, ``--rounds`` times) on the same IMDB batch: whatever load the machine carries
falls on all of them alike. A step is the module's own ``training_step`` (the LightningModule
built by ``builders.build_lm`` from the same overrides as ``run.py``), ``backward`` and an AdamW
step; tokens/s = real tokens of the batch / median step time.

    python experiments/gpt2_vs_roberta/throughput.py   # adds "tokens_per_s_interleaved" to results.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from run import ROWS, SIZE  # noqa: E402

from diffusion_lab.builders import build_datamodule, build_lm  # noqa: E402


def compose(overrides: list[str]):
    """The config ``python -m diffusion_lab <overrides>`` would run (torch keeps its default threads)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import diffusion_lab.resolvers  # noqa: F401

    with initialize_config_dir(config_dir=str(HERE.parents[1] / "conf"), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=[*overrides, "output_dir=/tmp/unused"])


def build(name: str, args):
    model, _, _, overrides = ROWS[name]
    cfg = compose([*overrides, *SIZE[model], "dataset=imdb", f"dataset.max_train={args.max_train}",
                   "tokenizer=gpt2", f"data.max_length={args.seq_len}", f"data.batch_size={args.batch_size}",
                   "data.max_val=16", "data.max_test=16", "logger=csv", f"seed={args.seed}"])
    dm = build_datamodule(cfg, cache_dir=None)
    torch.manual_seed(args.seed)
    module = build_lm(cfg, dm.tokenizer)
    return module, dm


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--max-train", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results", default=str(HERE / "results.json"))
    args = p.parse_args()
    warnings.filterwarnings("ignore", message=".*self.log.*")  # no Trainer here: logging is a no-op
    modules, batch = {}, None
    for name in ROWS:
        module, dm = build(name, args)
        modules[name] = (module.train(), torch.optim.AdamW(module.parameters(), lr=1e-4))
        if batch is None:
            batch = next(iter(dm.train_dataloader()))
    tokens = int(batch["attention_mask"].sum())
    times = {name: [] for name in ROWS}
    for r in range(args.rounds + 1):
        for name, (module, opt) in modules.items():
            start = time.perf_counter()
            loss = module.training_step(batch, 0)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if r > 0:  # round 0 warms up allocators and kernels
                times[name].append(time.perf_counter() - start)
    speed = {name: tokens / statistics.median(t) for name, t in times.items()}
    path = Path(args.results)
    if path.exists():
        results = json.loads(path.read_text())
        for row in results["rows"]:
            row["tokens_per_s_interleaved"] = speed.get(row["name"])
        settings = {k: v for k, v in vars(args).items() if k != "results"}
        results["throughput_settings"] = {**settings, "tokens_per_batch": tokens}
        path.write_text(json.dumps(results, indent=2))
    for name, s in speed.items():
        print(f"{name:>22}: {s:7.0f} tokens/s  (median of {args.rounds} steps, {tokens} tokens per step)")


if __name__ == "__main__":
    main()

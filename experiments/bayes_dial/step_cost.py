"""Seconds per training step of the imdb_gen_clf_cpu classifier at bayes_weight 0 and 1, in one process.

The dial's Bayes term scores every class on one shared draw per window (classifiers/bayes_term.py): one
more batched pass over B x C rows. This measures what that costs on the real recipe (pretrained MiniLM,
128-token windows of whole reviews, batch 16, 2 classes), so the study's rows can be sized to 45 minutes.
The two settings alternate step by step on the same batches (the same model: the term is added to the loss,
so the forward work of each step does not depend on the weights); medians after warm-up.

    python experiments/bayes_dial/step_cost.py --steps 8 --out experiments/bayes_dial/step_cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

import diffusion_lab.resolvers  # noqa: F401
from diffusion_lab.app import conf_dir
from diffusion_lab.builders import build_datamodule
from diffusion_lab.classifiers.build import build_generative, log_prior


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="timed steps per setting (after 2 warm-up steps)")
    parser.add_argument("--out", type=Path, default=Path("experiments/bayes_dial/step_cost.json"))
    parser.add_argument("overrides", nargs="*", help="extra config overrides")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        cfg = compose("config", overrides=["+experiment=imdb_gen_clf_cpu", "dataset.max_train=400", "logger=none",
                                           "output_dir=/tmp/bayes_dial_cost", *args.overrides])
    torch.manual_seed(cfg.seed)
    dm = build_datamodule(cfg, cache_dir=tempfile.mkdtemp(prefix="bayes_dial_cost_"))
    dm.setup()
    clf = build_generative(cfg, dm.tokenizer, dm.num_classes, log_prior(cfg, dm.splits.train["label"], dm.num_classes))
    clf.train()
    opt = torch.optim.AdamW(clf.parameters(), lr=1e-5)
    batches = [b for _, b in zip(range(args.steps + 2), dm.train_dataloader(), strict=False)]
    times: dict[str, list[float]] = {"0": [], "1": []}
    for i, batch in enumerate(batches):
        for weight in ("0", "1"):
            clf.hparams.bayes_weight = float(weight)
            start = time.perf_counter()
            loss = clf.training_step(batch, i)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i >= 2:
                times[weight].append(time.perf_counter() - start)
    result = {"steps": args.steps, "batch_rows": int(batches[0]["input_ids"].shape[0]),
              "window": int(batches[0]["input_ids"].shape[1]), "threads": torch.get_num_threads(),
              "median_s": {k: statistics.median(v) for k, v in times.items()}, "all_s": times,
              "load_before": load_before, "load_after": os.getloadavg()}
    result["ratio"] = result["median_s"]["1"] / result["median_s"]["0"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("median_s", "ratio", "load_before", "load_after")}))


if __name__ == "__main__":
    main()

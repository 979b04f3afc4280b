"""The unigram reference of a run's tokenization: cross-entropy of validation tokens under smoothed
training unigram frequencies (nats/token). A model at this level has learned no context.

    python experiments/imdb_lm/unigram_reference.py experiments/imdb_lm/runs/loglinear
"""

import sys
from pathlib import Path

import numpy as np
from hydra.utils import instantiate

from diffusion_lab.models.unigram import unigram_log_probs
from diffusion_lab.runs import load_run_config

run = Path(sys.argv[1])
cfg = load_run_config(run)
cfg.datamodule.cache_dir = str(run)  # reuses the run's saved tokenizer
dm = instantiate(cfg.datamodule)
dm.setup()
train, val = dm.datasets["train"], dm.datasets["validation"]
log_p, _ = unigram_log_probs(train["input_ids"], [0] * len(train), len(dm.tokenizer))
val_ids = np.concatenate([np.asarray(x) for x in val["input_ids"]])
print(f"unigram cross-entropy on validation: {-log_p.numpy()[val_ids].mean():.4f} nats/token "
      f"(n={len(val)} sequences, {len(val_ids)} tokens, vocab {len(dm.tokenizer)})")

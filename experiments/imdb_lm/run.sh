#!/usr/bin/env bash
# The committed IMDB LM measurement (2 CPU cores, shared): loglinear vs seed_discrete, same model,
# data, tokenizer settings, steps and seed. Both runs go concurrently, one torch thread each.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-experiments/imdb_lm/runs}
COMMON=(+experiment=imdb_lm trainer=cpu model=roberta_tiny dataset.use_unsup=false data.lm_use_unsup=false
        tokenizer.vocab_size=4096 data.max_length=64 data.batch_size=32 data.max_val=500 trainer.max_steps=400
        trainer.max_time=00:00:50:00 trainer.val_check_interval=100 optimizer.lr=2e-3
        scheduler.warmup_fraction=0.1 task.eval_draws=4 task.num_samples=3 task.sample_length=48
        logger=csv print_config=false seed=0)
for masking in loglinear seed_discrete; do
  OMP_NUM_THREADS=1 python -m diffusion_lab "${COMMON[@]}" masking=$masking \
      hydra.run.dir="$OUT/$masking" > "$OUT.$masking.log" 2>&1 &
done
wait

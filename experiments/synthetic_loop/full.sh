#!/usr/bin/env bash
# Synthetic data with a judge in the loop on IMDB (issue 12) at the issue's size: 1,000 stratified labelled
# reviews, the CPU preset as it is now (imdb_gen_clf_cpu: pretrained MiniLM, conditional, infill term on clean
# text, WHOLE reviews in 128-token windows), 200 steps of batch 16 for every training, TWO rounds of 150
# generated reviews per class (64 tokens, ddpm_cache 32 steps, each round from the real-only run), the
# classifier judge reading with the one-pass infill readout, judge-score thresholds 0.6 and 0.9, the choice
# and the test comparison on the infill readout (task.score_model), 2,000 stratified test reviews scored once.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-outputs/synthetic_loop/imdb_1000_r2}
python -m diffusion_lab +experiment=imdb_gen_clf_cpu task=synthesize \
  task.real_train_size=1000 task.rounds=2 task.per_class=150 task.length=64 task.score_thresholds='[0.6,0.9]' \
  task.filters.min_words=5 task.guard.ngram=8 task.train.baselines='[]' task.train.val_draws=1 \
  task.score_model=generative_infill judge=classifier judge.model=generative_infill \
  sampler=ddpm_cache sampler.steps=32 \
  trainer.max_steps=200 trainer.val_check_interval=200 eval.max_test=2000 data.max_val=300 \
  seed=0 logger=csv hydra.run.dir="$OUT" "$@"
python experiments/synthetic_loop/summarize.py "$OUT"

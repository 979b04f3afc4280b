#!/usr/bin/env bash
# Issue 11, stage 2: the class-conditional classifier (task=train_classifier via experiment=scratch_pretrained)
# started from a finished LM row of run.sh, trained with that row's recipe for the same 3,500 steps, then scored
# on 2,000 test reviews (64 tokens) with the discriminative model of the same steps and TF-IDF + LR; then the
# same classifier at its initialisation (the LM's weights, class biases at the training unigram statistics:
# the naive-Bayes start) on the same items, McNemar against the trained one, also after each model's own
# validation-fitted temperature and class offset (init_only.py --refit-offset). Run on an IDLE machine.
#   LM=experiments/scratch_recipe/runs/best RECIPE="..." bash experiments/scratch_recipe/classifier.sh
#   RECIPE="" (set but empty) trains with the plain scratch_lm recipe; MODEL=modernbert_tiny for its LM rows;
#   SEED=1 for a second seed (weights of the new rows, data order, masks, validation and test draws).
set -euo pipefail
cd "$(dirname "$0")/../.."
LM=${LM:-experiments/scratch_recipe/runs/best}
MODEL=${MODEL:-roberta_tiny}   # the LM row's model
RECIPE=${RECIPE-optimizer=cramming trainer.gradient_clip_val=0.5 masking.train_min_rate=0.1 masking.train_max_rate=0.9}
OUT=${OUT:-experiments/scratch_recipe/runs/classifier}
EXTRA=${EXTRA:-}
SEED=${SEED:-0}
mkdir -p "$(dirname "$OUT")"
load() { uptime | sed 's/.*load average: //'; }
echo "start $(date +%T) load $(load)"
# shellcheck disable=SC2086
python -m diffusion_lab +experiment=scratch_pretrained model="$MODEL" model.init_from="$LM" $RECIPE seed="$SEED" \
  logger=csv $EXTRA hydra.run.dir="$OUT" > "$OUT.log" 2>&1
echo "trained $(date +%T) load $(load)"
python experiments/imdb_gen_clf/init_only.py "$OUT" --n "${N_INIT:-2000}" --refit-offset --out "$OUT/init_only.json"
echo "end $(date +%T) load $(load)"

#!/usr/bin/env bash
# Learning curves (issue 37), row by row: one +experiment=learning_curve job per (dataset, n per class, seed),
# each its own run (not -m, so that an interrupted study continues: a row whose rows/<dataset>_n<n>_s<seed>.json
# is committed is skipped). Every row trains the generative classifier, the discriminative twin and TF-IDF + LR
# on the same n examples per class and scores the same test items of its seed.
#   bash experiments/learning_curve/run.sh                                   # RT polarity, n 8 32 128 512, seed 0
#   DATASET=trec NS="8 32 128" SEEDS="0 1 2" bash experiments/learning_curve/run.sh
#   python experiments/learning_curve/summarize.py                          # README table + curve PNG
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
DATASET=${DATASET:-rt_polarity}
NS=${NS:-8 32 128 512}
SEEDS=${SEEDS:-0}
EXTRA=${EXTRA:-}              # more overrides for every row, e.g. "classifier.bayes_weight=0.3" (then set TAG)
TAG=${TAG:-}
ROWS_DIR=${ROWS_DIR:-experiments/learning_curve/rows}
RUNS=${RUNS:-experiments/learning_curve/runs}

source experiments/run_row.sh
for seed in $SEEDS; do
  for n in $NS; do
    name="${DATASET}${TAG:+_$TAG}_n${n}_s${seed}"
    # shellcheck disable=SC2086
    run_row "$ROWS_DIR/$name.json" "$RUNS/$name-$(date +%Y%m%d-%H%M%S)" +experiment=learning_curve \
        "dataset=$DATASET" "dataset.max_train_per_class=$n" "seed=$seed" logger=csv $EXTRA
  done
done

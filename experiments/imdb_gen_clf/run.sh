#!/usr/bin/env bash
# The committed IMDB generative-classifier measurement on 2 shared CPU cores: conditional (with the
# discriminative and TF-IDF baselines) and per_class (TF-IDF only, same test items), concurrently.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-experiments/imdb_gen_clf/runs}
mkdir -p "$OUT"
COMMON=(+experiment=imdb_gen_clf_cpu logger=csv print_config=false seed=0)
OMP_NUM_THREADS=1 python -m diffusion_lab "${COMMON[@]}" classifier=conditional \
    hydra.run.dir="$OUT/conditional" > "$OUT/conditional.log" 2>&1 &
OMP_NUM_THREADS=1 python -m diffusion_lab "${COMMON[@]}" classifier=per_class task.baselines=[tfidf_lr] \
    hydra.run.dir="$OUT/per_class" > "$OUT/per_class.log" 2>&1 &
wait

#!/usr/bin/env bash
# The committed IMDB generative-classifier measurement on 2 CPU cores (run it alone on the machine):
# the pretrained-MiniLM preset (conditional generative classifier + discriminative MiniLM with the same
# optimizer steps + TF-IDF on full text), whole reviews, 2,000 stratified test reviews; then, on the first
# items of the same test set, the window policy (first 128 tokens vs whole review) and the initial model.
# The first run is results_conditional.json, made before the preset's infill change (so it states
# infill_text=noised infill_weight=0.1); the last is results_infill_visible.json, the preset as it is now
# (TF-IDF only: the discriminative baseline does not depend on the generative model's infill settings).
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-experiments/imdb_gen_clf/runs}
mkdir -p "$OUT"
log() { echo "$(date -u +%FT%TZ) $1 | $(uptime)" | tee -a "$OUT/timeline.txt"; }
log "start conditional"
python -m diffusion_lab +experiment=imdb_gen_clf_cpu classifier=conditional seed=0 logger=csv \
    classifier.infill_text=noised classifier.infill_weight=0.1 \
    hydra.run.dir="$OUT/conditional" "$@" > "$OUT/conditional.log" 2>&1
log "end conditional"
python experiments/imdb_gen_clf/window_policy.py "$OUT/conditional" --n 500 \
    --out experiments/imdb_gen_clf/window_policy.json > "$OUT/window_policy.log" 2>&1
log "end window_policy"
python experiments/imdb_gen_clf/init_only.py "$OUT/conditional" --n 300 \
    --out experiments/imdb_gen_clf/init_only.json > "$OUT/init_only.log" 2>&1
log "end init_only"
python -m diffusion_lab +experiment=imdb_gen_clf_cpu classifier=conditional seed=0 logger=csv 'task.baselines=[tfidf_lr]' \
    hydra.run.dir="$OUT/infill_visible_w05" "$@" > "$OUT/infill_visible_w05.log" 2>&1
log "end infill_visible_w05"
log "start per_class"
python -m diffusion_lab +experiment=imdb_gen_clf_cpu classifier=per_class seed=0 logger=csv 'task.baselines=[tfidf_lr]' \
    hydra.run.dir="$OUT/per_class" "$@" > "$OUT/per_class.log" 2>&1
log "end per_class"

#!/usr/bin/env bash
# The generative-discriminative dial (issue 40): imdb_gen_clf_cpu (pretrained MiniLM, whole reviews) at several
# classifier.bayes_weight values, every row on the same stratified test reviews and validation reviews.
# One row per name in ONLY; a row whose rows/<name>.json is committed is skipped, so an interrupted study
# continues where it stopped. Each row: task=train_classifier, then its results.json copied to
# $ROWS_DIR/<name>.json with the command, the wall time and `uptime` before and after.
#   ONLY="lam0 lam1" bash experiments/bayes_dial/run.sh
#   STEPS=100 TEST=500 ROWS_DIR=experiments/bayes_dial/pilot ONLY="lam0 lam1" bash experiments/bayes_dial/run.sh
#   STEPS=100 TEST=300 VAL=200 ROWS_DIR=experiments/bayes_dial/pilot ONLY="lam1_k2" bash experiments/bayes_dial/run.sh
# Sizing (step_cost.json, MiniLM, 16 windows of 128 tokens, 2 cores): 2.0 s a step at lambda 0, 7.3 s at 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
STEPS=${STEPS:-150}          # optimizer steps of every row (the same budget for every lambda)
TEST=${TEST:-1000}           # stratified test reviews (the same items in every row: eval seed and run seed 0)
VAL=${VAL:-300}              # validation reviews: checkpoint choice, temperatures, sequential-draw choices
SEED=${SEED:-0}
ROWS_DIR=${ROWS_DIR:-experiments/bayes_dial/rows}
RUNS=${RUNS:-experiments/bayes_dial/runs}
ONLY=${ONLY:-lam0 lam0.1 lam0.3 lam1}

source experiments/run_row.sh
row() {  # row NAME OVERRIDES...
    local name=$1; shift
    local suffix=""; [ "$SEED" != 0 ] && suffix="_seed$SEED"
    # a fresh run directory every time: the run guard refuses a used one
    run_row "$ROWS_DIR/$name$suffix.json" "$RUNS/$name$suffix-$(date +%Y%m%d-%H%M%S)" +experiment=imdb_gen_clf_cpu \
        "trainer.max_steps=$STEPS" "trainer.val_check_interval=$STEPS" "eval.max_test=$TEST" "data.max_val=$VAL" \
        "seed=$SEED" logger=csv "$@"
}

for name in $ONLY; do
    case $name in
        lam0) row lam0 classifier.bayes_weight=0 "task.baselines=[discriminative,tfidf_lr]" ;;
        lam0.1|lam0.3|lam1) row "$name" "classifier.bayes_weight=${name#lam}" "task.baselines=[]" ;;
        lam*_k*) w=${name#lam}; row "$name" "classifier.bayes_weight=${w%_k*}" "classifier.bayes_draws=${name##*_k}" \
                     "task.baselines=[]" ;;  # K draws for the term: its rows per step grow K-fold
        per_class_lam*) row "$name" classifier=per_class "classifier.bayes_weight=${name#per_class_lam}" \
                            classifier.num_draws=4 classifier.sequential=true classifier.stage_draws=2 "task.baselines=[]" ;;
        *) echo "unknown row $name (lam0, lam0.1, lam0.3, lam1, lam<weight>_k<draws>, per_class_lam<weight>)" >&2; exit 2 ;;
    esac
done

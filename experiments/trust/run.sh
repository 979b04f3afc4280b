#!/usr/bin/env bash
# The committed trust measurement (issue 7), on 2 shared CPU cores, in two parts:
# 1. a SMALL STAND-IN IMDB classifier (no benchmark run existed when this started): a conditional
#    generative classifier (roberta_tiny, 64 tokens, 2,000 training reviews, 300 steps) and its baselines,
#    then task=evaluate on the 300 test reviews its training report used -> experiments/trust/standin/
#    (skip with STANDIN=0);
# 2. the benchmark classifier of experiments/imdb_gen_clf when its run exists -> experiments/trust/imdb_gen_clf/
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-outputs/trust}
RUN="$OUT/imdb_standin"
mkdir -p "$OUT"
if [ "${STANDIN:-1}" = 1 ]; then
python -m diffusion_lab task=train_classifier dataset=imdb dataset.max_train=2000 tokenizer.vocab_size=4096 \
    data.max_length=64 data.max_val=300 eval.max_test=300 trainer.max_steps=300 trainer.max_epochs=-1 \
    classifier=conditional classifier.num_draws=8 task.val_draws=2 logger=csv print_config=false seed=0 \
    hydra.run.dir="$RUN" > "$OUT.train.log" 2>&1
python -m diffusion_lab task=evaluate run_dir="$RUN" eval.max_examples=300 eval.max_val=200 \
    eval.robustness_examples=100 eval.strengths=[0.1,0.2,0.4] eval.deletion_examples=24 \
    eval.deletion_ks=[1,2,4,8] eval.explain_examples=4 eval.shift_dataset=rt_polarity eval.ood_dataset=wikitext2 \
    logger=csv print_config=false hydra.run.dir="$OUT/evaluation" > "$OUT.evaluate.log" 2>&1
mkdir -p experiments/trust/standin
cp "$OUT"/evaluation/{evaluation.json,report.html,calibration.png,calibration_after_ts.png,robustness.png,ood.png,deletion.png} \
    experiments/trust/standin/
cp "$RUN/results.json" experiments/trust/standin/training_results.json
python experiments/trust/tables.py experiments/trust/standin/evaluation.json > experiments/trust/standin/tables.md
fi

# The benchmark classifier of experiments/imdb_gen_clf (its run.sh trains it; 600 steps, 64 tokens,
# TF-IDF on the same window): the same suite and settings, results in experiments/trust/imdb_gen_clf/.
BENCH=experiments/imdb_gen_clf/runs/conditional
if [ -f "$BENCH/results.json" ]; then
  python -m diffusion_lab task=evaluate run_dir="$BENCH" eval.max_examples=300 eval.max_val=200 \
      eval.robustness_examples=100 eval.strengths=[0.1,0.2,0.4] eval.deletion_examples=24 \
      eval.deletion_ks=[1,2,4,8] eval.explain_examples=4 eval.shift_dataset=rt_polarity eval.ood_dataset=wikitext2 \
      logger=csv print_config=false hydra.run.dir="$OUT/imdb_gen_clf_evaluation" > "$OUT.imdb_gen_clf.log" 2>&1
  mkdir -p experiments/trust/imdb_gen_clf
  cp "$OUT"/imdb_gen_clf_evaluation/{evaluation.json,report.html,calibration.png,calibration_after_ts.png,robustness.png,ood.png,deletion.png} \
      experiments/trust/imdb_gen_clf/
  python experiments/trust/tables.py experiments/trust/imdb_gen_clf/evaluation.json > experiments/trust/imdb_gen_clf/tables.md
fi

#!/usr/bin/env bash
# The committed trust measurement (issue 7) on a SMALL STAND-IN IMDB classifier (2 shared CPU cores):
# no IMDB run of the classifier benchmark existed when this was measured, so a conditional generative
# classifier (roberta_tiny, 64 tokens, 2,000 training reviews, 300 steps) and its baselines are trained
# here, then task=evaluate runs on the same 300 test reviews the training report used.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-outputs/trust}
RUN="$OUT/imdb_standin"
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

#!/usr/bin/env bash
# Issue 11 ablation: one lever at a time from today's recipe (experiment=scratch_lm: IMDB, 64 tokens, BPE 4,096)
# at a fixed wall-clock budget, then summarize.py prints steps, tokens/s, validation bound per token and its
# distance below the unigram cross-entropy. Run on an IDLE machine (2 cores); each row records `uptime`'s load
# at its start and end in rows/NAME.json (committed), and rows already there are skipped (FORCE=1 reruns).
#   bash experiments/scratch_recipe/run.sh                                   # 30 minutes per row
#   ONLY="baseline ema" BUDGET=00:00:00:10 EXTRA="dataset=synthetic_sentiment ~dataset.use_unsup data.lm_use_unsup=false data.max_length=16 tokenizer.vocab_size=300 \
#     data.max_val=16 trainer.val_check_interval=4 task.sample_length=16" bash experiments/scratch_recipe/run.sh   # seconds-long check
set -euo pipefail
cd "$(dirname "$0")/../.."
BUDGET=${BUDGET:-00:00:30:00}
EXTRA=${EXTRA:-}
SEED=${SEED:-0}
if [ -n "$EXTRA" ]; then TRIANGLE_TIME=${TRIANGLE_TIME:-$BUDGET}; fi   # the seconds-long check stays seconds long
OUT=${OUT:-experiments/scratch_recipe/runs}
mkdir -p "$OUT"
# The baseline's own budget is trainer.max_steps=3500 (the cosine's horizon): at today's ~11,300 tokens/s it
# ends after 683 s of training (its Timer), well inside max_time. budget_triangle decays over max_time, so
# that row runs without max_steps for the baseline's 683 s (TRIANGLE_TIME): the same wall clock, not 30 min.
# The baseline already has dropout 0.0 (conf/model/roberta_tiny.yaml), so the dropout lever is dropout=0.1.
declare -A ROWS=(
  [baseline]=""
  [modernbert]="model=modernbert_tiny model.backbone.initializer_range=0.02"   # what rows*/modernbert.json measured
  [modernbert_init]="model=modernbert_tiny"   # its default since: initializer_range 0.06 (modernbert_probe.sh)
  # the two largest single-lever gains (backbone, rate window) together
  [modernbert_window]="model=modernbert_tiny masking.train_min_rate=0.1 masking.train_max_rate=0.9"
  [dropout]="model.backbone.dropout=0.1"
  [cramming_adamw]="optimizer=cramming trainer.gradient_clip_val=0.5"
  [budget_triangle]="scheduler=budget_triangle trainer.max_steps=-1 trainer.max_time=${TRIANGLE_TIME:-00:00:11:23}"
  [ema]="callbacks=[default,ema] callbacks.ema.decay=0.999"
  [rate_window]="masking.train_min_rate=0.1 masking.train_max_rate=0.9"
  [subs]="+model.subs=true"
  # the levers that lowered the bound in the one-lever rows (rows/*.json), together; stage 2 starts from it
  [best]="masking.train_min_rate=0.1 masking.train_max_rate=0.9 optimizer=cramming trainer.gradient_clip_val=0.5"
)
ORDER=(${ONLY:-baseline modernbert modernbert_init dropout cramming_adamw budget_triangle ema rate_window subs best modernbert_window})
# Finished rows are committed as rows/NAME.json (the ablation spans sessions; run dirs are not kept) and are
# not rerun; seconds-long checks (EXTRA set) write theirs under $OUT/rows instead.
if [ -z "$EXTRA" ]; then ROWS_DIR=${ROWS_DIR:-experiments/scratch_recipe/rows}; else ROWS_DIR=${ROWS_DIR:-$OUT/rows}; fi
load() { uptime | sed 's/.*load average: //'; }
for name in "${ORDER[@]}"; do
  if [ -z "${FORCE:-}" ] && [ -f "$ROWS_DIR/$name.json" ]; then
    echo "row $name: $ROWS_DIR/$name.json exists (FORCE=1 reruns it)"; continue
  fi
  start=$(load)
  # shellcheck disable=SC2086
  python -m diffusion_lab +experiment=scratch_lm trainer.max_time="$BUDGET" seed="$SEED" logger=csv \
    ${ROWS[$name]} $EXTRA hydra.run.dir="$OUT/$name" > "$OUT/$name.log" 2>&1 || echo "row $name failed: $OUT/$name.log"
  python experiments/scratch_recipe/summarize.py --rows "$ROWS_DIR" row "$OUT" "$name" --load-start "$start" --load-end "$(load)"
done
python experiments/scratch_recipe/summarize.py --rows "$ROWS_DIR" table "${ORDER[@]}"

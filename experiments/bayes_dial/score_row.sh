#!/usr/bin/env bash
# One task=score row on a finished dial run (the columns a row adds after training, e.g. the Bayes readout with
# the per-class output biases dropped), recorded like the training rows: $ROWS_DIR/<name>.json with the command,
# the wall time and `uptime`; a committed row is skipped.
#   bash experiments/bayes_dial/score_row.sh <name> <run dir> [overrides...]
#   ROWS_DIR=experiments/bayes_dial/pilot bash experiments/bayes_dial/score_row.sh lam0_no_class_bias \
#       experiments/bayes_dial/runs/lam0-<time> score.drop_class_bias=true "score.readouts=[bayes]"
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
ROWS_DIR=${ROWS_DIR:-experiments/bayes_dial/rows}
RUNS=${RUNS:-experiments/bayes_dial/runs}
source experiments/run_row.sh
name=$1; run=$2; shift 2
run_row "$ROWS_DIR/$name.json" "$RUNS/$name-$(date +%Y%m%d-%H%M%S)" task=score "run_dir=$run" score.split=test "$@"

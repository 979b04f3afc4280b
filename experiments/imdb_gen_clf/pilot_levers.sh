#!/usr/bin/env bash
# Levers for the class signal (README "What the measurements point to"), each a change of one value from
# the measured run (runs/conditional: same seed, data order, masks and schedule over 350 steps), stopped
# after its first validation (step 175: K = 1, the same 300 validation reviews). The reference is the
# measured run's own step-175 validation (metrics.csv). Validation only: the test split is not read.
#   bash experiments/imdb_gen_clf/pilot_levers.sh            # about 12 min per lever on 2 idle cores
set -euo pipefail
cd "$(dirname "$0")/../.."
out=experiments/imdb_gen_clf
mkdir -p "$out/runs"
declare -A levers=(
  [lr_scale_condition_100]="+optimizer.lr_scale={condition_embedding:100}"
  [condition_init_token_type]="model.backbone.condition_init=token_type"
  [infill_visible_w05]="classifier.infill_text=visible classifier.infill_weight=0.5"
)
for name in ${PILOTS:-lr_scale_condition_100 condition_init_token_type}; do
  dir=$out/runs/pilot_$name
  rm -rf "$dir"
  echo "$(date -u +%FT%TZ) $name: ${levers[$name]} | $(uptime)"
  python -m diffusion_lab +experiment=imdb_gen_clf_cpu classifier=conditional seed=0 logger=csv \
    classifier.infill_text=noised classifier.infill_weight=0.1 \
    task.baselines=[] ${levers[$name]} hydra.run.dir="$dir" > "$dir.log" 2>&1 &
  pid=$!
  # the CSV logger flushes every 100 steps: the step-175 validation row is on disk by step 200
  until python3 - "$dir/metrics.csv" <<'PY'
import csv, sys
try:
    rows = [r for r in csv.DictReader(open(sys.argv[1])) if r.get("val/accuracy")]
except FileNotFoundError:
    sys.exit(1)
if not rows:
    sys.exit(1)
print(f"step {rows[0]['step']}: val/accuracy {float(rows[0]['val/accuracy']):.4f} val/clf_nll {float(rows[0]['val/clf_nll']):.4f}")
PY
  do
    kill -0 $pid 2>/dev/null || { echo "$name exited early; see $dir.log"; break; }
    sleep 20
  done
  kill $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  echo "$(date -u +%FT%TZ) $name done | $(uptime)"
done

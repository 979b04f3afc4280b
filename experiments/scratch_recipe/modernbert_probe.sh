#!/usr/bin/env bash
# Why did model=modernbert_tiny stay on the unigram plateau (rows/modernbert.json: 6.795 at step 500, 6.750 at
# 3,500 against roberta_tiny's 6.703 and 5.780)? The first PROBE_TIME of the scratch_lm recipe (the cosine still
# sized for 3,500 steps, so the schedule is the row's) under one change each; metrics.csv has val/nll_per_token
# at steps 500, 1000, ... Run alone (2 cores); prints one line per variant.
#   bash experiments/scratch_recipe/modernbert_probe.sh
#   ONLY="init_x3" bash experiments/scratch_recipe/modernbert_probe.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PROBE_TIME=${PROBE_TIME:-00:00:02:40}
SEED=${SEED:-0}
OUT=${OUT:-experiments/scratch_recipe/runs/modernbert_probe}
mkdir -p "$OUT"
# Before this probe modernbert_tiny had transformers' initializer_range 0.02; it now defaults to 0.06 (the fix).
declare -A VARIANTS=(
  [roberta]="model=roberta_tiny"
  [modernbert]="model=modernbert_tiny model.backbone.initializer_range=0.02"
  [init_x3]="model=modernbert_tiny model.backbone.initializer_range=0.06"   # Wo/head at RoBERTa's 0.02
  [lr_x3]="model=modernbert_tiny model.backbone.initializer_range=0.02 optimizer.lr=3e-3"
  [lr_div3]="model=modernbert_tiny model.backbone.initializer_range=0.02 optimizer.lr=3.3e-4"
)
ORDER=(${ONLY:-modernbert init_x3 lr_x3})
for name in "${ORDER[@]}"; do
  start=$(uptime | sed 's/.*load average: //')
  # shellcheck disable=SC2086
  python -m diffusion_lab +experiment=scratch_lm trainer.max_time="$PROBE_TIME" seed="$SEED" logger=csv \
    ${VARIANTS[$name]} hydra.run.dir="$OUT/$name" > "$OUT/$name.log" 2>&1 || echo "variant $name failed: $OUT/$name.log"
  python - "$OUT/$name" "$name" "$start" "$(uptime | sed 's/.*load average: //')" <<'PY'
import csv, glob, sys
run, name, start, end = sys.argv[1:]
rows = [r for f in glob.glob(f"{run}/**/metrics.csv", recursive=True) for r in csv.DictReader(open(f))]
val = [(int(r["step"]), float(r["val/nll_per_token"])) for r in rows if r.get("val/nll_per_token")]
print(name, " ".join(f"step {s}: {v:.3f}" for s, v in sorted(set(val))), f"| load {start} -> {end}")
PY
done

# Sourced by the study drivers (bayes_dial, causal_lm, learning_curve): one benchmark row.
#   run_row <record .json> <run dir> <overrides...>
# Skips a row whose record exists (committed rows survive an interrupted study); else runs
# `python -m diffusion_lab <overrides> hydra.run.dir=<run dir>` and records its results.json with the command,
# the wall time and `uptime` before and after (experiments/record_row.py).
run_row() {
    local record=$1 out=$2; shift 2
    if [ -f "$record" ]; then echo "skip: $record exists"; return 0; fi
    local args=("$@" "hydra.run.dir=$out")
    local before; before=$(uptime); local started; started=$(date +%s)
    python -m diffusion_lab "${args[@]}"
    mkdir -p "$(dirname "$record")"
    python experiments/record_row.py "$out/results.json" "$record" "$before" "$(uptime)" \
        "$(( $(date +%s) - started ))" "${args[*]}"
}

#!/usr/bin/env bash
# Runs every bad-input / fault case of issue 14 on tiny settings (seconds each) and regenerates the
# table in README.md (case, command, expected, observed). Usage: experiments/reliability/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} WANDB_MODE=offline TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
exec python experiments/reliability/cases.py "$@"

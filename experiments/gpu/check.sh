#!/usr/bin/env bash
# The GPU check in one command (experiments/gpu/README.md):
#   bash experiments/gpu/check.sh             # on the lent GPU machine: at most 8 minutes on one H100
#   bash experiments/gpu/check.sh --dry-run   # the same steps on the CPU with tiny sizes (tests/test_gpu_check.py)
# Writes gpu_check.json, gpu_check.log (and the headline run's results.json) into $OUT if set, else
# experiments/gpu/out/. Exit status 0 only when every step is ok; a failed step never stops the next.
# On the GPU it needs experiments/gpu/wheels/ and experiments/gpu/data/ (made by prepare.sh, carried).
set -u
cd "$(dirname "$0")/../.."

if [ -n "${PYTHON:-}" ]; then
    py="$PYTHON"
elif [ -x .venv/bin/python ]; then
    py=.venv/bin/python          # a checkout with its environment (here, CI)
else
    py=python3                   # the GPU image's interpreter (it holds torch)
fi
exec "$py" experiments/gpu/check.py --python "$py" "$@"

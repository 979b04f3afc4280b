#!/usr/bin/env bash
# Makes what the GPU check carries to the lent machine (both folders are git-ignored; name them in `carry`):
#   experiments/gpu/wheels/  the packages the GPU image lacks, as wheels for its Python 3.12 (x86-64)
#   experiments/gpu/data/    4,500 IMDB train + 500 test reviews (stratified, seed 0) and the GPT-2 tokenizer
# Needs PyPI (pip download) and $DIFFUSION_LAB_DATA_DIR (else ../shared/data). Prints the payload's size:
# the working tree plus both folders must stay under the device tool's 64 MiB.
#   bash experiments/gpu/prepare.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${PYTHON:-.venv/bin/python}
[ -x "$py" ] || py=python3
wheels=experiments/gpu/wheels
data=experiments/gpu/data

# The image has torch, lightning, transformers, torchmetrics, tokenizers, rich, pyarrow, pandas, fsspec,
# huggingface-hub, scikit-learn, matplotlib, scipy, pytest (/work/.library/device/KINDS.md); diffusion_lab
# also imports hydra + omegaconf (+ antlr4) everywhere and `datasets` (+ dill, multiprocess) at the top of
# diffusion_lab/data. wandb is not needed: the check runs with logger=csv. Versions: those tested here.
rm -rf "$wheels" && mkdir -p "$wheels"
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d "$wheels" hydra-core==1.3.8 omegaconf==2.3.1 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
# antlr4-python3-runtime 4.9.3 (hydra-core pins 4.9.*) is on PyPI as a source archive only: build its
# pure-Python wheel here
src=$(mktemp -d)
"$py" -m pip download -q --no-deps --no-binary=:all: -d "$src" antlr4-python3-runtime==4.9.3
"$py" -m pip wheel -q --no-deps --no-build-isolation -w "$wheels" "$src"/antlr4*.tar.gz \
    || "$py" -m pip wheel -q --no-deps -w "$wheels" "$src"/antlr4*.tar.gz
rm -rf "$src"

rm -rf "$data"
"$py" experiments/gpu/make_data.py "$data" --train 4500 --test 500

tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r du -cb 2>/dev/null | awk 'END {print $1}')
carried=$(du -cb "$wheels" "$data" | awk 'END {print $1}')
ls -l "$wheels"
awk -v t="$tree" -v c="$carried" 'BEGIN {
    printf "payload: working tree %.1f MiB + carried %.1f MiB (wheels + data) = %.1f MiB of 64 MiB\n", t/2^20, c/2^20, (t+c)/2^20
    exit (t + c < 64 * 2^20) ? 0 : 1 }'

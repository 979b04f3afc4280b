"""A small data folder for the GPU check: a stratified, seeded IMDB subset and the GPT-2 tokenizer.

Reads ``$DIFFUSION_LAB_DATA_DIR`` (``imdb/train.jsonl.gz``, ``imdb/test.jsonl.gz``, ``gpt2_tokenizer/``)
and writes the same layout under ``OUT``, so a run points ``DIFFUSION_LAB_DATA_DIR`` (or ``data_dir=``) at
it and reads IMDB through the framework's own ``ImdbSource`` (no hub, no ``datasets`` download):

    python experiments/gpu/make_data.py experiments/gpu/data --train 4500 --test 1000   # prepare.sh
    python experiments/gpu/make_data.py /tmp/x --train 72 --test 8 --max-words 40      # check.sh --dry-run

The GPT-2 byte-level BPE is RoBERTa's vocabulary (50,257 tokens, RoBERTa has 50,265 with its specials),
so a random-init DistilRoBERTa shape over it has the original's embedding size, without the hub.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
from pathlib import Path


def read_rows(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def stratified(rows: list[dict], n: int, seed: int) -> list[dict]:
    """``n`` rows, half of each label (the files are sorted by label), in a seeded random order."""
    rng = random.Random(seed)
    by_label: dict[int, list[dict]] = {}
    for row in rows:
        by_label.setdefault(int(row["label"]), []).append(row)
    labels = sorted(by_label)
    picked = []
    for i, label in enumerate(labels):
        k = n // len(labels) + (1 if i < n % len(labels) else 0)
        picked += rng.sample(by_label[label], min(k, len(by_label[label])))
    rng.shuffle(picked)
    return picked


def write_rows(path: Path, rows: list[dict], max_words: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as f:
        for r in rows:
            text = r["text"] if max_words is None else " ".join(r["text"].split()[:max_words])
            f.write(json.dumps({"text": text, "label": int(r["label"])}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=4500, help="train reviews (validation is carved from them)")
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-words", type=int, default=None, help="cut each review to its first N words (dry run)")
    parser.add_argument("--source", type=Path, default=None, help="default: $DIFFUSION_LAB_DATA_DIR")
    args = parser.parse_args()
    source = args.source or Path(os.environ.get("DIFFUSION_LAB_DATA_DIR", Path(__file__).resolve().parents[3] / "shared" / "data"))
    for split, n in (("train", args.train), ("test", args.test)):
        write_rows(args.out / "imdb" / f"{split}.jsonl.gz", stratified(read_rows(source / "imdb" / f"{split}.jsonl.gz"), n, args.seed),
                   args.max_words)
    tok = args.out / "gpt2_tokenizer"
    tok.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
        if (source / "gpt2_tokenizer" / name).is_file():
            shutil.copyfile(source / "gpt2_tokenizer" / name, tok / name)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{args.out}: IMDB {args.train} train + {args.test} test reviews, GPT-2 tokenizer; {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()

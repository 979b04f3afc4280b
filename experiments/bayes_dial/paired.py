"""Exact McNemar tests between two rows' readouts on the same test items (their predictions.csv files).

    python experiments/bayes_dial/paired.py <lam0 run>/predictions.csv <lam1 run>/predictions.csv > paired.txt

Prints, for each (first file's readout, second file's readout), how many items only one got right and
scipy's exact binomial p-value on those discordant pairs. Refuses files with different items.
"""

from __future__ import annotations

import csv
import sys

from scipy.stats import binomtest

PAIRS = [("generative", "generative"), ("generative_infill", "generative_infill"), ("discriminative", "generative")]


def main(first: str, second: str) -> None:
    a, b = list(csv.DictReader(open(first))), list(csv.DictReader(open(second)))
    if [r["text"] for r in a] != [r["text"] for r in b]:
        sys.exit("the two files hold different test items: a paired test needs the same ones")
    for left, right in PAIRS:
        if f"{left}_pred" not in a[0] or f"{right}_pred" not in b[0]:
            continue
        x = [r[f"{left}_pred"] == r["label"] for r in a]
        y = [r[f"{right}_pred"] == r["label"] for r in b]
        only_first = sum(p and not q for p, q in zip(x, y, strict=True))
        only_second = sum(q and not p for p, q in zip(x, y, strict=True))
        p = binomtest(only_second, only_first + only_second).pvalue if only_first + only_second else 1.0
        print(f"{left} (first) vs {right} (second): n={len(x)}, accuracy {sum(x) / len(x):.3f} vs {sum(y) / len(y):.3f}, "
              f"only first right {only_first}, only second right {only_second}, exact McNemar p={p:.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])

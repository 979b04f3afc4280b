"""Print a task=synthesize run's per-round table, choice, guard counts and test comparison (run.sh, full.sh)."""

import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
r = json.loads((out / "results.json").read_text())
print((out / "rounds.md").read_text())
print("chosen:", r["chosen"], "| real_same_size:", r["real_same_size"], "| guard:", r["guard"])
print("test readout:", r["test"].get("score_model", "generative"), "| n_test:", r["test"]["n_test"])
for name, m in r["test"]["models"].items():
    print(f"{name:20s} acc {m['accuracy']:.4f} [{m['accuracy_ci95'][0]:.4f}, {m['accuracy_ci95'][1]:.4f}]"
          f" nll {m['nll']:.4f} ece {m['ece']:.4f} -> {m['ece_after_ts']:.4f} (n={m['n']})")
print("McNemar p vs real_only:", r["test"]["mcnemar_p_vs_real_only"])
print("wall_s:", round(r["wall_s"]))

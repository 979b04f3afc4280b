"""One benchmark row: a run's results.json copied to the study's rows/ with the command, the wall time and
`uptime` before and after (the drivers' shared last step: bayes_dial/run.sh, learning_curve/run.sh).

    python experiments/record_row.py <run>/results.json <rows>/<name>.json "<uptime before>" "<uptime after>" \
        <wall seconds> "<overrides>"

The ledger's path in ``test_access`` is this machine's and is left out; ``test_configurations`` stays.
"""

from __future__ import annotations

import json
import sys


def main(src: str, dst: str, before: str, after: str, wall: str, command: str) -> None:
    with open(src, encoding="utf-8") as f:
        row = json.load(f)
    row.pop("test_access", None)
    row["study"] = {"command": "python -m diffusion_lab " + command, "wall_s": int(wall),
                    "uptime_before": before.strip(), "uptime_after": after.strip()}
    with open(dst, "w", encoding="utf-8") as f:
        f.write(json.dumps(row, indent=2))
    print(f"{dst}: " + ", ".join(f"{m} {v['accuracy']:.4f}" for m, v in row["models"].items()))


if __name__ == "__main__":
    main(*sys.argv[1:7])

"""Milliseconds per window row of one pass (run.py's profile_pass, twice) for the code in the current directory.

    python experiments/scoring_speed/pass_ms.py <classifier run dir>

Run it from two checkouts back to back (before/after a change) to compare their pass cost: bias_ab.txt.
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import load_items, profile_pass  # noqa: E402

from diffusion_lab.classifiers.build import load_classifier_run  # noqa: E402

run = Path(sys.argv[1]).resolve()
cfg, _, clf, baselines = load_classifier_run(run)
batch = load_items(run, cfg, 30)[0]
out = [profile_pass(clf, baselines.get("discriminative"), batch, reps=5) for _ in range(2)]
print(json.dumps({"code": os.getcwd(), "profiles": out, "load": os.getloadavg()}))

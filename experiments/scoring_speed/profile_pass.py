"""Where one generative scoring pass spends its time: torch.profiler over one batch of windows.

    python experiments/scoring_speed/profile_pass.py <classifier run dir> [--rows 32] [--draws 1]

Scores the first test batch (the run's window policy) with ``draws`` stratified draws per class through
the production path (``classifiers.predict.predict``), once to warm up and once under the profiler, and
prints the operators by self CPU time plus ``uptime``. Run it alone: shares are of this process's time.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import load_items  # noqa: E402  (the benchmark's own item loader)

from diffusion_lab.classifiers.build import load_classifier_run  # noqa: E402
from diffusion_lab.classifiers.predict import predict  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--draws", type=int, default=1)
    parser.add_argument("--top", type=int, default=18)
    args = parser.parse_args()
    cfg, _, clf, _ = load_classifier_run(args.run_dir)
    batch = load_items(args.run_dir, cfg, 20)[:1]
    kwargs = {"num_draws": args.draws, "adaptive": False, "sequential": False}
    predict(clf, batch, **kwargs)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        p = predict(clf, batch, **kwargs)
    rows = int(batch[0]["input_ids"].shape[0])
    print(f"one batch: {rows} windows x {clf.num_classes} classes x {args.draws} draw(s), "
          f"{p.forward_passes_per_example:.2f} passes per item; load {os.getloadavg()}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))


if __name__ == "__main__":
    main()

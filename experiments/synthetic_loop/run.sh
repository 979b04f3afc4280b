#!/usr/bin/env bash
# Synthetic data with a judge in the loop on IMDB (issue 12): 1,000 stratified labelled reviews, the CPU
# classifier recipe (imdb_gen_clf_cpu), two rounds, the classifier judge (the real-only run judges and
# generates), 2,000 stratified test reviews scored once at the end. Writes results.json, rounds.md,
# synthetic.jsonl and examples.jsonl into the run directory. Expect several hours on 2 CPU cores:
# 2 rounds x 2 thresholds + real-only + same-size real = up to 6 trainings of the recipe's steps.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-outputs/synthetic_loop/imdb_1000}
python -m diffusion_lab +experiment=imdb_gen_clf_cpu task=synthesize \
  task.real_train_size=1000 task.rounds=2 task.per_class=250 task.score_thresholds='[0.6,0.9]' \
  task.filters.min_words=5 task.guard.ngram=8 task.train.baselines='[]' \
  judge=classifier judge.model=generative sampler=ddpm_cache sampler.steps=64 \
  eval.max_test=2000 seed=0 logger=csv hydra.run.dir="$OUT" "$@"
python - "$OUT" <<'PY'
import json, sys
r = json.load(open(f"{sys.argv[1]}/results.json"))
print(open(f"{sys.argv[1]}/rounds.md").read())
print("chosen:", r["chosen"], "| real_same_size:", r["real_same_size"], "| guard:", r["guard"])
for name, m in r["test"]["models"].items():
    print(f"{name:20s} acc {m['accuracy']:.4f} [{m['accuracy_ci95'][0]:.4f}, {m['accuracy_ci95'][1]:.4f}]"
          f" nll {m['nll']:.4f} ece {m['ece']:.4f} -> {m['ece_after_ts']:.4f} (n={m['n']})")
print("McNemar p vs real_only:", r["test"]["mcnemar_p_vs_real_only"])
PY

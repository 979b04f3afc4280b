#!/usr/bin/env bash
# Masking-schedule sweep on the embedded synthetic_sentiment data (offline, CPU):
#   {seed_discrete, loglinear} x max_rate {0.5, 1.0} x epochs {1, 3} x seed {0, 1} = 16 jobs,
# then task=report writes report.md / report.csv / report_seeds.csv / plots into this folder.
# A deliberately small model (2 layers x 64) so that the 16 jobs fit ~15-20 minutes on 2 busy CPU cores.
# Run from the repository root: bash experiments/sweep_masking/run.sh
set -euo pipefail
HERE=experiments/sweep_masking
SWEEP=multirun/sweep_masking/$(date +%Y-%m-%d_%H-%M-%S)
export WANDB_MODE=${WANDB_MODE:-offline} HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

python -m diffusion_lab -m +experiment=quickstart \
  masking=seed_discrete,loglinear masking.max_rate=0.5,1.0 trainer.max_epochs=1,3 seed=0,1 \
  dataset.num_train=640 dataset.num_val=100 dataset.num_test=16 data.max_val=100 \
  data.max_length=32 data.batch_size=32 tokenizer.vocab_size=2000 \
  model.backbone.hidden_size=64 model.backbone.num_hidden_layers=2 model.backbone.num_attention_heads=2 \
  model.backbone.intermediate_size=256 \
  task.eval_draws=4 task.num_samples=1 task.sample_length=16 sampler.steps=8 \
  trainer.enable_progress_bar=false callbacks.progress_bar=null print_config=false logger=csv \
  hydra.sweep.dir="$SWEEP"

python -m diffusion_lab task=report run_dir="$SWEEP" task.out_dir="$HERE" \
  hydra.run.dir="$SWEEP/report" print_config=false
echo "sweep: $SWEEP  report: $HERE/report.md"

"""Training and scoring rates of the GPU check's model, each against its baseline in THE SAME process.

Training (the ratios of experiments/throughput/run.py): tokens/s of
  (a) a bare transformers loop on the backbone's own ``AutoModelForMaskedLM`` (masked tokens as labels,
      AdamW, clip), and
  (b) the framework's loop: ``GenerativeClassifier.training_step`` (label token, condition, sparse head),
both under the run's precision (bf16 autocast for ``bf16-mixed``). MFU = tokens/s x FLOPs/token over the
matmul peak measured in this process (bf16 8192^3 on a GPU), and over the card's nominal dense bf16 peak
when it is known. ``--compile`` times (a) and (b) eager and under ``torch.compile(dynamic=True)`` instead
(batches are padded to their longest row and the head runs on the masked positions only, so shapes vary from
step to step; the config has no compile option: this is the measurement that would justify one).

Scoring (the ratios of experiments/scoring_speed): forward passes/s of the Bayes readout (K =
``classifier.num_draws``), the one-pass infill readout and the discriminative baseline on the same test
reviews, at ``score_precision`` 32 (as shipped) and bf16.

Weights are random (the DistilRoBERTa shape of check.sh): rates, not accuracies. Prints one JSON object:

    python experiments/gpu/bench.py --steps 30 -- +experiment=imdb_gen_clf model.pretrained=null ...
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time

import torch
from hydra import compose, initialize_config_dir

import diffusion_lab.resolvers  # noqa: F401
from diffusion_lab.app import conf_dir
from diffusion_lab.builders import build_datamodule
from diffusion_lab.classifiers.build import build_discriminative, build_generative, log_prior
from diffusion_lab.classifiers.predict import predict
from diffusion_lab.metrics.flops import flops_per_token
from diffusion_lab.metrics.flops import matmul_peak as measured_peak

#: dense bf16 tensor-core peak (no sparsity), NVIDIA's data sheets; the SXM parts
NOMINAL_BF16 = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}


def matmul_peak(device: torch.device) -> float:
    """bf16 tensor-core products of 8192 on a GPU; float32 products of 512 on the dry run's CPU."""
    n, reps, dtype = (8192, 10, torch.bfloat16) if device.type == "cuda" else (512, 5, torch.float32)
    return measured_peak(device, n, reps, dtype)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def on(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def train_batches(dm, n: int, device):
    out = []
    while len(out) < n:
        for batch in dm.train_dataloader():
            out.append(on(batch, device))
            if len(out) == n:
                break
    return out


def timed(step, batches, warmup: int, device) -> dict:
    """tokens/s over the batches after ``warmup``; the first step's seconds (compilation, if any)."""
    sync(device)
    start = time.perf_counter()
    step(batches[0], 0)
    sync(device)
    first = time.perf_counter() - start
    for i, batch in enumerate(batches[1:warmup]):
        step(batch, i + 1)
    sync(device)
    start, tokens = time.perf_counter(), 0
    for i, batch in enumerate(batches[warmup:]):
        step(batch, i + warmup)
        tokens += int(batch["attention_mask"].sum())
    sync(device)
    elapsed = time.perf_counter() - start
    return {"tokens_per_s": tokens / max(elapsed, 1e-9), "first_step_s": first, "timed_steps": len(batches) - warmup}


def autocast(cfg, device):
    if str(cfg.trainer.precision).startswith("bf16"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def bare_step(model, mask_id: int, cfg, device, clip: float):
    fwd = model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator(device=device).manual_seed(0)

    def step(batch, i):
        ids, att = batch["input_ids"], batch["attention_mask"]
        masked = (torch.rand(ids.shape, generator=gen, device=device) < 0.5) & att.bool()
        with autocast(cfg, device):
            loss = fwd(input_ids=ids.masked_fill(masked, mask_id), attention_mask=att,
                       labels=ids.masked_fill(~masked, -100)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()

    return step


def framework_step(clf, cfg, device, clip: float):
    opt = torch.optim.AdamW(clf.parameters(), lr=1e-4)

    def step(batch, i):
        with autocast(cfg, device):
            loss = clf.training_step(batch, i)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(clf.parameters(), clip)
        opt.step()

    return step


def scoring(clf, disc, loader, num_draws: int) -> dict:
    batches = list(loader)
    predict(clf, batches[:2], num_draws=num_draws)  # warm-up: kernels, allocator, score_tokens sizing
    predict(disc, batches[:2])
    out = {}
    for precision in ("32", "bf16"):
        clf.hparams["score_precision"] = disc.hparams["score_precision"] = precision
        rows = {"bayes": predict(clf, batches, num_draws=num_draws), "infill": predict(clf, batches, readout="infill"),
                "discriminative": predict(disc, batches)}
        rates = {k: p.examples_per_s * p.forward_passes_per_example for k, p in rows.items()}
        out[precision] = {
            **{f"{k}_passes_per_s": v for k, v in rates.items()},
            **{f"{k}_passes_per_item": p.forward_passes_per_example for k, p in rows.items()},
            "bayes_vs_discriminative_pass_rate": rates["bayes"] / max(rates["discriminative"], 1e-9),
            "infill_vs_discriminative_pass_rate": rates["infill"] / max(rates["discriminative"], 1e-9),
            "items": len(rows["bayes"].labels),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per loop")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--score-items", type=int, default=200, help="test reviews scored per readout")
    parser.add_argument("--compile", action="store_true", help="time (a) and (b) eager and under torch.compile")
    parser.add_argument("--compile-backend", default="inductor")
    parser.add_argument("--compile-dynamic", choices=["true", "auto"], default="true",
                        help="true: one symbolic-shape compile per model; auto: torch's default (static first, "
                             "dynamic on the first recompile; the dry run's aot_eager traces it faster)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        cfg = compose("config", overrides=[*args.overrides, f"eval.max_test={args.score_items}", "output_dir=/tmp/bench"])
    if str(cfg.trainer.accelerator) in ("gpu", "cuda"):
        assert device.type == "cuda", "the config trains on a GPU, but torch sees none"
    torch.manual_seed(cfg.seed)
    dm = build_datamodule(cfg, cache_dir=tempfile.mkdtemp(prefix="gpu_bench_"))
    dm.setup()
    prior = log_prior(cfg, dm.splits.train["label"], dm.num_classes)
    clf = build_generative(cfg, dm.tokenizer, dm.num_classes, prior).to(device).train()
    model = clf.lms[0].backbone.model
    clip = float(cfg.trainer.gradient_clip_val or 1e9)
    batches = train_batches(dm, args.steps + args.warmup, device)
    peak = matmul_peak(device)
    per_token = flops_per_token(model, cfg.data.max_length)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    nominal = next((v for k, v in NOMINAL_BF16.items() if k in name), None)
    result = {"device": name, "precision": str(cfg.trainer.precision), "batch": cfg.data.batch_size,
              "max_length": cfg.data.max_length, "params": sum(p.numel() for p in model.parameters()),
              "flops_per_token": per_token, "matmul_peak_flops": peak, "nominal_peak_flops": nominal,
              "torch": torch.__version__}

    def mfu(tps):
        return {"mfu_measured_peak": tps * per_token / peak,
                **({"mfu_nominal_peak": tps * per_token / nominal} if nominal else {})}

    def bare_loop(m):
        return bare_step(m, dm.tokenizer.mask_token_id, cfg, device, clip)

    if not args.compile:
        bare = timed(bare_loop(model), batches, args.warmup, device)
        fw = timed(framework_step(clf, cfg, device, clip), batches, args.warmup, device)
        result["train"] = {"bare": {**bare, **mfu(bare["tokens_per_s"])}, "framework": {**fw, **mfu(fw["tokens_per_s"])},
                           "framework_vs_bare": fw["tokens_per_s"] / max(bare["tokens_per_s"], 1e-9)}
        disc = build_discriminative(cfg, dm.tokenizer, dm.num_classes).to(device)
        result["scoring"] = scoring(clf, disc, dm.dataloader("test"), int(cfg.classifier.num_draws))
    else:
        import torch._dynamo as dynamo

        dynamo.config.cache_size_limit = 64
        dynamic = True if args.compile_dynamic == "true" else None  # padding lengths vary per batch (dynamic shapes)
        rows = {}
        rows["bare_eager"] = timed(bare_loop(model), batches, args.warmup, device)
        compiled = torch.compile(model, backend=args.compile_backend, dynamic=dynamic)
        rows["bare_compiled"] = timed(bare_loop(compiled), batches, args.warmup, device)
        rows["framework_eager"] = timed(framework_step(clf, cfg, device, clip), batches, args.warmup, device)
        backbone = clf.lms[0].backbone
        backbone.model = torch.compile(backbone.model, backend=args.compile_backend, dynamic=dynamic)
        rows["framework_compiled"] = timed(framework_step(clf, cfg, device, clip), batches, args.warmup, device)
        for row in rows.values():
            row.update(mfu(row["tokens_per_s"]))
        result["compile"] = {"backend": args.compile_backend, "dynamic": args.compile_dynamic, **rows,
                             "bare_compiled_vs_eager": rows["bare_compiled"]["tokens_per_s"] / rows["bare_eager"]["tokens_per_s"],
                             "framework_compiled_vs_eager":
                                 rows["framework_compiled"]["tokens_per_s"] / rows["framework_eager"]["tokens_per_s"]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()

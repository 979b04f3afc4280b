"""The GPU check's steps, each a subprocess with a time limit; one ``gpu_check.json`` and one log.

Started by ``check.sh`` (which picks the interpreter); standard library only, so it runs before the carried
wheels are installed. Every step is recorded (ok / failed / timeout / skipped, seconds, numbers, error) and
``gpu_check.json`` is rewritten after each one, so a run killed at its limit still leaves what it did. A
failed step never stops the next. The whole run keeps to ``--budget`` seconds (8 minutes on a GPU): each
step's limit is the smaller of its own cap and what is left.

Modes: on a GPU (default) the steps use the DistilRoBERTa shape at random init on the carried IMDB subset;
``--dry-run`` runs the same steps on the CPU with a tiny model, a few steps and items (README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

#: +experiment=imdb_gen_clf as shipped, but the backbone at random init in DistilRoBERTa's shape (6 x 768,
#: 12 heads, FFN 3072, RoBERTa positions) over the GPT-2 BPE (RoBERTa's vocabulary) from the data folder:
#: model.pretrained=null is the random-init switch of EncoderDenoiser (conf/model/roberta_*.yaml use it),
#: and unigram_init=true is what those from-scratch configs do with their new output biases.
RANDOM_DISTILROBERTA = [
    "+experiment=imdb_gen_clf", "model.pretrained=null", "model.name=distilroberta_random", "tokenizer=gpt2",
    "+model.unigram_init=true", "+model.backbone.position_pad_id=1", "+model.backbone.position_offset=3",
    "+model.backbone.type_vocab_size=1", "+model.backbone.layer_norm_eps=1e-5",
]
SHAPE = {"hidden_size": 768, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 3072}
TINY_SHAPE = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
#: what every run of the check adds: no W&B (not installed there), no live progress bar in the log, and the
#: Hydra callback that records where the scoring ran (gpu_hooks.py)
QUIET = ["logger=csv", "trainer.enable_progress_bar=false", "~callbacks.progress_bar",
         "+hydra.callbacks.devices._target_=gpu_hooks.DeviceSpy"]
#: the smoke runs (ddp, fsdp): a few steps and items of the same model
SMOKE = ["trainer.max_epochs=-1", "trainer.max_steps=10", "trainer.val_check_interval=10",
         "trainer.check_val_every_n_epoch=null", "eval.max_test=32", "data.max_val=32", "classifier.num_draws=2",
         "task.baselines=[discriminative]"]
#: a second try of a failed smoke run without the windowed evaluation loaders Lightning cannot shard (README.md)
WORKAROUND = ["data.long_text=truncate"]


def sizes(dry: bool) -> dict:
    if dry:
        return {
            "data": ["--train", "72", "--test", "8", "--max-words", "40"],
            "shape": TINY_SHAPE,
            "run": ["dataset.val_size=8", "data.max_length=32", "data.batch_size=16", "data.eval_batch_size=16",
                    "trainer.max_epochs=-1", "trainer.max_steps=4", "trainer.val_check_interval=4",
                    "trainer.check_val_every_n_epoch=null", "classifier.num_draws=2",
                    "trainer.accelerator=cpu", "trainer.precision=32-true"],
            "smoke_extra": ["trainer.max_steps=2", "trainer.val_check_interval=2", "eval.max_test=4", "data.max_val=4"],
            "bench": ["--steps", "4", "--warmup", "2", "--score-items", "8"],
            "compile": ["--steps", "4", "--warmup", "2", "--compile-backend", "aot_eager", "--compile-dynamic", "auto"],
            "device": "cpu", "precision": "32-true",
            "budget": 300,
        }
    return {
        "data": None,  # prepared by prepare.sh and carried
        # 4,500 train reviews - 500 validation = 4,000 trained on; 3 epochs of 125 steps (batch 32) = 375 steps
        "shape": SHAPE,
        "run": ["dataset.val_size=500"],
        "smoke_extra": [],
        "bench": ["--steps", "30", "--warmup", "5", "--score-items", "200"],
        "compile": ["--steps", "30", "--warmup", "8", "--compile-backend", "inductor"],
        "device": "cuda", "precision": "bf16-mixed",
        "budget": 480,
    }


class Check:
    def __init__(self, out: Path, work: Path, dry: bool, python: str, budget: float):
        self.out, self.work, self.dry, self.python = out, work, dry, python
        self.started = time.time()
        self.deadline = self.started + budget
        self.log = open(out / "gpu_check.log", "a", encoding="utf-8")
        self.record = {"mode": "dry_run" if dry else "gpu", "host": platform.node(), "python": python,
                       "budget_s": budget, "started": time.strftime("%Y-%m-%d %H:%M:%S"), "steps": []}
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline",
                    "WANDB_SILENT": "true", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
        self._pythonpath([str(HERE)])
        if dry:
            self.env["OMP_NUM_THREADS"] = "1"  # 2 shared cores: one thread each is fastest (tests do the same)

    def _pythonpath(self, first: list[str]) -> None:
        rest = [p for p in self.env.get("PYTHONPATH", "").split(os.pathsep) if p]
        self.env["PYTHONPATH"] = os.pathsep.join([*first, *[p for p in rest if p not in first]])

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.log.write(text + "\n")
        self.log.flush()

    def save(self) -> None:
        self.record["total_s"] = round(time.time() - self.started, 1)
        steps = self.record["steps"]
        self.record["ok"] = bool(steps) and all(s["status"] == "ok" for s in steps)
        (self.out / "gpu_check.json").write_text(json.dumps(self.record, indent=1, default=str))

    def run(self, cmd: list[str], cap: float) -> tuple[int | None, str, float]:
        """``cmd`` with the smaller of ``cap`` and the time left; (return code or None on timeout, output, s)."""
        limit = max(1.0, min(cap, self.deadline - time.time()))
        self.log.write(f"$ {' '.join(cmd)}   # limit {limit:.0f} s\n")
        self.log.flush()
        start = time.time()
        proc = subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=limit)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the run and any ranks it started
            output, _ = proc.communicate()
            code = None
        self.log.write(output or "")
        self.log.flush()
        return code, output or "", time.time() - start

    def step(self, name: str, cap: float, fn) -> dict:
        """Run ``fn() -> numbers`` (raising on failure); record it; never raise."""
        entry = {"name": name, "status": "skipped", "seconds": 0.0, "numbers": {}, "error": None}
        self.record["steps"].append(entry)
        if self.deadline - time.time() < 10:
            entry["error"] = "not started: the check's time budget is spent"
            self.say(f"[{name}] skipped: out of time")
            self.save()
            return entry
        self.say(f"[{name}] ...")
        start = time.time()
        self._cap = cap
        try:
            entry["numbers"] = fn() or {}
            entry["status"] = "ok"
        except StepTimeout as err:
            entry["status"], entry["error"] = "timeout", str(err)
        except Exception as err:  # noqa: BLE001  (a failed step is a finding; the next step still runs)
            entry["status"], entry["error"] = "failed", f"{type(err).__name__}: {err}"
        entry["seconds"] = round(time.time() - start, 1)
        self.say(f"[{name}] {entry['status']} in {entry['seconds']} s"
                 + (f": {entry['error']}" if entry["error"] else ""))
        self.save()
        return entry

    def call(self, cmd: list[str]) -> str:
        code, output, _ = self.run(cmd, self._cap)
        if code is None:
            raise StepTimeout(f"killed at the step's limit; last lines: {tail(output)}")
        if code != 0:
            raise RuntimeError(f"exit {code}: {tail(output)}")
        return output


class StepTimeout(Exception):
    pass


def tail(text: str, lines: int = 4) -> str:
    """The framework's own one-line error (``error: ...`` / ``config error: ...``) if it printed one, else the
    last lines of the output."""
    rows = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in rows if ln.startswith(("error:", "config error:", "E   "))]
    return " | ".join(ln[:400] for ln in (errors[-lines:] if errors else rows[-lines:]))


def last_json(output: str) -> dict:
    for line in reversed(output.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no JSON line in the output: {tail(output)}")


def shape_overrides(shape: dict) -> list[str]:
    return [f"+model.backbone.{k}={v}" for k, v in shape.items()]


def check_run(run_dir: Path, device: str, precision: str, models: set[str]) -> dict:
    """The run finished, trained in ``precision``, and every scoring call ran on ``device``."""
    res_path = run_dir / "results.json"
    if not res_path.is_file():
        raise RuntimeError(f"no results.json in {run_dir}")
    res = json.loads(res_path.read_text())
    if res.get("status") != "finished":
        raise RuntimeError(f"results.json status={res.get('status')}: {res.get('error')}")
    config = (run_dir / "config_resolved.yaml").read_text()
    block = re.search(r"^trainer:\n((?:[ #].*\n)*)", config, re.M)
    found = re.search(r"^  precision: (\S+)$", block.group(1) if block else "", re.M)
    if not found or found.group(1).strip("'\"") != precision:
        raise AssertionError(f"trainer.precision is {found and found.group(1)}, expected {precision}")
    spy = json.loads((run_dir / "device_check.json").read_text())
    for key in ("module", "inputs", "scores"):
        if spy[key] != [device]:
            raise AssertionError(f"scoring {key} ran on {spy[key]}, expected only {device} (device_check.json: {spy})")
    if spy["calls"] == 0 or not models <= set(spy["models"]):
        raise AssertionError(f"scored models {spy['models']} ({spy['calls']} calls), expected {sorted(models)}")
    numbers = {k: res.get(k) for k in ("optimizer_steps", "n_val", "n_test", "train_tokens_per_s", "wall_s", "model")}
    numbers["precision"] = precision
    numbers["device_check"] = spy
    numbers["test"] = {name: {k: m.get(k) for k in ("accuracy", "nll", "examples_per_s", "forward_passes_per_example")}
                       for name, m in res.get("models", {}).items()}
    return numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, no wheels")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or HERE / "out"))
    parser.add_argument("--work", type=Path, default=None, help="run directories (default: a new temp folder)")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--budget", type=float, default=None, help="seconds for the whole check")
    args = parser.parse_args()
    dry = args.dry_run
    size = sizes(dry)
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in ("gpu_check.json", "gpu_check.log", "results.json"):
        (args.out / stale).unlink(missing_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)
    check = Check(args.out, work, dry, args.python, args.budget or size["budget"])
    py, device, precision = args.python, size["device"], size["precision"]
    check.say(f"GPU check ({check.record['mode']}): out {args.out}, runs in {work}, budget {check.deadline - check.started:.0f} s")

    # ---- 0. packages the image lacks (wheels carried in experiments/gpu/wheels), then what is there ----
    def install():
        wheels = sorted((HERE / "wheels").glob("*.whl"))
        if dry:
            return {"wheels": 0, "note": "dry run: the checkout's own environment"}
        if not wheels:
            raise RuntimeError("no wheels in experiments/gpu/wheels: run experiments/gpu/prepare.sh and carry them")
        site = work / "site"
        check.call([py, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir",
                    "--upgrade", "--target", str(site), *map(str, wheels)])
        check._pythonpath([str(site), str(HERE)])
        return {"wheels": [w.name for w in wheels]}

    check.step("install", 60, install)

    def env():
        probe = ("import json, importlib.metadata as md, torch; names = ['torch', 'lightning', 'transformers', "
                 "'torchmetrics', 'tokenizers', 'hydra-core', 'omegaconf', 'antlr4-python3-runtime', 'datasets', "
                 "'dill', 'multiprocess', 'pyarrow', 'fsspec', 'huggingface-hub', 'scikit-learn', 'pytest']\n"
                 "def v(n):\n try: return md.version(n)\n except Exception: return None\n"
                 + ("" if dry else "import hydra, omegaconf, datasets, diffusion_lab.app\n") +
                 "cuda = torch.cuda.is_available()\n"
                 "print(json.dumps({'cuda': cuda, 'device': torch.cuda.get_device_name() if cuda else 'cpu', "
                 "'cuda_version': torch.version.cuda, 'bf16': cuda and torch.cuda.is_bf16_supported(), "
                 "'versions': {n: v(n) for n in names}}))")
        numbers = last_json(check.call([py, "-c", probe]))
        if shutil.which("nvidia-smi"):
            code, smi, _ = check.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                                      "--format=csv,noheader"], 15)
            numbers["nvidia_smi"] = smi.strip() if code == 0 else None
        if not dry and not numbers["cuda"]:
            raise RuntimeError(f"torch sees no GPU: {numbers}")
        check.record["device"] = numbers["device"]
        return numbers

    check.step("env", 60, env)

    # ---- data: the carried IMDB subset (GPU) or a tiny one made now (dry run) ----
    data = work / "data" if dry else HERE / "data"
    if dry:
        check.step("data", 60, lambda: {"made": check.call([py, str(HERE / "make_data.py"), str(data), *size["data"]]).strip()})
    check.env["DIFFUSION_LAB_DATA_DIR"] = str(data)
    base = [*RANDOM_DISTILROBERTA, *shape_overrides(size["shape"]), *QUIET, *size["run"]]

    def framework_run(name: str, overrides: list[str], models: set[str]) -> dict:
        if not (data / "imdb" / "train.jsonl.gz").is_file():
            raise RuntimeError(f"no IMDB subset at {data}: run experiments/gpu/prepare.sh (and carry experiments/gpu/data)")
        run_dir = work / "runs" / name
        shutil.rmtree(run_dir, ignore_errors=True)
        check.call([py, "-m", "diffusion_lab", *base, *overrides, f"hydra.run.dir={run_dir}"])
        return check_run(run_dir, device, precision, models)

    # ---- 1. the headline recipe: train in bf16-mixed, score validation and test on the GPU ----
    def train_clf():
        numbers = framework_run("imdb_gen_clf", [], {"GenerativeClassifier", "DiscriminativeClassifier"})
        shutil.copyfile(work / "runs" / "imdb_gen_clf" / "results.json", args.out / "results.json")
        return numbers

    check.step("imdb_gen_clf", 260, train_clf)

    # ---- 2. rates against their baselines, in one process ----
    check.step("bench", 100, lambda: last_json(check.call([py, str(HERE / "bench.py"), *size["bench"], "--", *base])))

    # ---- 3. the multi-device strategies on one device ----
    def smoke(name: str, trainer: list[str]):
        entry = check.step(name, 70, lambda: framework_run(name, [*SMOKE, *size["smoke_extra"], *trainer],
                                                           {"GenerativeClassifier"}))
        if entry["status"] == "failed":  # as shipped failed: how far does it get past the known loader limits?
            check.step(f"{name}_workaround", 70, lambda: framework_run(
                f"{name}_workaround", [*SMOKE, *size["smoke_extra"], *trainer, *WORKAROUND], {"GenerativeClassifier"}))

    if dry:  # the CPU equivalents: DDP on one CPU process (gloo); Lightning's FSDP needs CUDA, so composed only
        smoke("ddp", ["trainer=ddp_cpu", "trainer.devices=1"])

        def fsdp_compose():
            out = check.call([py, "-m", "diffusion_lab", *base, *SMOKE, "trainer=fsdp", "trainer.devices=1", "--cfg", "job"])
            if "FSDPStrategy" not in out:
                raise RuntimeError(f"trainer=fsdp did not compose to an FSDPStrategy: {tail(out)}")
            return {"note": "dry run: composed only (Lightning's FSDPStrategy refuses accelerator=cpu)"}

        check.step("fsdp", 60, fsdp_compose)
    else:
        smoke("ddp", ["trainer=ddp", "trainer.devices=1"])
        smoke("fsdp", ["trainer=fsdp", "trainer.devices=1"])

    # ---- 4. the GPU-gated tests (they skip without CUDA; the dry run collects only this check's own) ----
    def gpu_tests():
        targets = ["tests/test_gpu_check.py"] if dry else ["tests"]
        code, output, _ = check.run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", *targets], check._cap)
        counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", output)}
        if code is None:
            raise StepTimeout(f"pytest killed at the step's limit: {tail(output)}")
        if code != 0:
            raise RuntimeError(f"pytest exit {code}: {tail(output, 8)}")
        if not dry and (counts.get("skipped") or not counts.get("passed")):
            raise AssertionError(f"on a GPU every gpu test must run: {counts}")
        return counts

    check.step("pytest_gpu", 120, gpu_tests)

    # ---- 3b. torch.compile on/off (last: compilation is the least predictable cost) ----
    check.step("compile", 150, lambda: last_json(check.call([py, str(HERE / "bench.py"), "--compile", *size["compile"],
                                                             "--", *base])))

    check.save()
    bad = [s["name"] for s in check.record["steps"] if s["status"] != "ok"]
    check.say(f"GPU check done in {check.record['total_s']} s: "
              + ("all steps ok" if not bad else f"not ok: {', '.join(bad)}") + f"; {args.out / 'gpu_check.json'}")
    if dry and not bad and args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if not bad else 1)


if __name__ == "__main__":
    main()

"""The cases behind experiments/reliability/README.md: each one a command line, what it must do, what it did.

Every case runs ``python -m diffusion_lab ...`` in a scratch directory and records the exit code and
the last line of stderr (or a check on the files it left). The table between the markers in
README.md is replaced; nothing else there is touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = Path(__file__).with_name("README.md")
TINY = ["dataset.num_train=96", "dataset.num_val=16", "dataset.num_test=16", "data.max_length=16",
        "data.batch_size=16", "data.max_val=16", "tokenizer.vocab_size=300", "model.backbone.hidden_size=32",
        "model.backbone.num_hidden_layers=1", "model.backbone.num_attention_heads=2",
        "model.backbone.intermediate_size=64", "trainer.enable_progress_bar=false", "sampler.steps=4",
        "logger=csv", "task.eval_draws=2", "task.num_samples=2", "task.sample_length=8",
        "~callbacks.progress_bar"]
ROWS: list[tuple[str, str, str, str]] = []


def cli(args: list[str], env: dict | None = None, cwd: Path = REPO, timeout: int = 300):
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", "diffusion_lab", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return proc.returncode, (lines[-1] if lines else ""), time.time() - started


def shown(args: list[str], work: Path) -> str:
    text = " ".join(a for a in args if a not in TINY)
    return "python -m diffusion_lab " + text.replace(str(work), "$W")


def case(name: str, args: list[str], expected: str, work: Path, env: dict | None = None, check=None):
    rc, last, wall = cli(args, env)
    observed = check(rc, last) if check else f"exit {rc}: {last}"
    ROWS.append((name, shown(args, work), expected, f"{observed} ({wall:.0f} s)".replace(str(work), "$W")))
    print(f"[{name}] {ROWS[-1][3]}", flush=True)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="reliability-"))
    trained = work / "trained"
    rc, last, _ = cli([*TINY, "trainer.max_epochs=2", f"hydra.run.dir={trained}"])
    assert rc == 0, last

    # 1: two runs whose time-stamped directory names are the same
    same = "hydra.run.dir=outputs/task/2026-01-01/10-00-00-${dl.run_token:}"
    procs = [subprocess.Popen([sys.executable, "-m", "diffusion_lab", "task=visualize", "task.mode=masking",
                               "logger=none", f"seed={s}", same], cwd=work, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for s in (0, 1)]
    codes = [p.wait(timeout=300) for p in procs]
    dirs = sorted((work / "outputs" / "task" / "2026-01-01").iterdir())
    seeds = sorted(json.loads((d / "masking.json").read_text())["seed"] for d in dirs)
    ROWS.append(("1 two runs in the same second", "two at once: python -m diffusion_lab task=visualize "
                 "task.mode=masking seed=0 / seed=1 (same time stamp)", "two directories, both results kept",
                 f"exit {codes}; {len(dirs)} directories ({', '.join(d.name for d in dirs)}), seeds {seeds}"))
    print(ROWS[-1][3])

    case("2 resume with another schedule and lr", [*TINY, "resume=true", f"run_dir={trained}",
         "masking=seed_discrete", "optimizer.lr=0.01", f"hydra.run.dir={work / 'r2'}"],
         "refused, naming the keys and resume_override", work)
    case("2 resume forgetting a model override", [*(t for t in TINY if not t.startswith("model.")), "resume=true", f"run_dir={trained}",
         f"hydra.run.dir={work / 'r2b'}"], "refused, naming model.backbone.* keys", work)

    csv_mixed = work / "mixed.csv"
    csv_mixed.write_text("text,label\n" + "".join(f"review {i},{y}\n" for i, y in enumerate(["pos", "neg", "0", "1"] * 10)))
    case("3 mixed label spellings", [*TINY[3:14], "task=train_classifier", "dataset=text_files",
         f"dataset.train_path={csv_mixed}", f"dataset.test_path={csv_mixed}", f"hydra.run.dir={work / 'r3'}"],
         "one line naming the file and both spellings", work)
    case("4 sample length beyond the window", ["data.max_length=32", "task.sample_length=64",
         f"hydra.run.dir={work / 'r4'}"], "config error naming task.sample_length, before any work", work)

    sweep = work / "sweep"
    for job, text in (("0", '{"status": "finished", "val/nll_per_token": 4.2}'), ("1", '{"status": "fin')):
        (sweep / job).mkdir(parents=True)
        (sweep / job / "results.json").write_text(text)
    case("5 report with a truncated results.json", ["task=report", f"run_dir={sweep}", "task.plots=false",
         f"hydra.run.dir={work / 'r5'}"], "a table; the bad job marked unreadable, named", work,
         check=lambda rc, last: f"exit {rc}; report.md: " + "; ".join(
             ln for ln in (sweep / "report.md").read_text().splitlines() if "unreadable" in ln or "| 0" in ln)[:200])

    case("6 task=evaluate on a language-model run", ["task=evaluate", f"run_dir={trained}",
         f"hydra.run.dir={work / 'r6'}"], "config error naming the run kind", work)
    case("6 resume=true as train_classifier on an LM run", [*TINY[:14], "task=train_classifier", "resume=true",
         f"run_dir={trained}", f"hydra.run.dir={work / 'r6b'}"], "config error naming the run kind", work)

    broken = work / "broken"
    shutil.copytree(trained, broken)
    (broken / "checkpoints" / "last.ckpt").write_bytes(bytes((broken / "checkpoints" / "last.ckpt").stat().st_size))
    case("7 resume from a zeroed last.ckpt", [*TINY, "resume=true", f"run_dir={broken}",
         f"hydra.run.dir={work / 'r7'}"], "one line naming last.ckpt and best.ckpt; metrics.csv not moved", work,
         check=lambda rc, last: f"exit {rc}: {last}; metrics moved aside: "
                                f"{bool(list(broken.glob('metrics_before_resume_*')))}")

    latin = work / "latin1.csv"
    latin.write_bytes("text,label\ncaf\xe9,0\nok,1\n".encode("latin-1"))
    case("8 non-UTF-8 input", ["dataset=text_files", f"dataset.train_path={latin}", f"dataset.test_path={latin}",
         f"hydra.run.dir={work / 'r8'}"], "one line naming the file", work)

    case("9 no network, no HF_HUB_OFFLINE", ["+experiment=imdb_gen_clf", f"hydra.run.dir={work / 'r9'}"],
         "fails in seconds naming HF_HUB_OFFLINE=1 and the offline presets", work,
         env={"HF_HUB_OFFLINE": "", "HF_ENDPOINT": "http://127.0.0.1:9"})
    case("10 trainer=ddp without a GPU", ["trainer=ddp", f"hydra.run.dir={work / 'r10'}"],
         "config error naming trainer=ddp_cpu, before data and W&B", work, env={"CUDA_VISIBLE_DEVICES": ""})
    case("11 visualize with 10000 steps", ["task=visualize", f"run_dir={trained}", "sampler.steps=10000",
         "task.length=16", f"hydra.run.dir={work / 'r11'}"], "config error naming sampler.steps, at once", work)
    case("12 trainer.max_steps=0", ["trainer.max_steps=0", f"hydra.run.dir={work / 'r12'}"],
         "config error (not 'finished')", work)
    case("12 a non-config error", ["dataset=text_files", f"dataset.train_path={work / 'none.csv'}",
         f"dataset.test_path={work / 'none.csv'}", f"hydra.run.dir={work / 'r12b'}"],
         "a one-line header, then one error line; traceback in the log; results.json failed", work,
         check=lambda rc, last: f"exit {rc}: {last}; results.json status: "
                                f"{json.loads((work / 'r12b' / 'results.json').read_text())['status']}")
    write_table()
    shutil.rmtree(work, ignore_errors=True)


def write_table() -> None:
    head = ["| case | command | expected | observed |", "|---|---|---|---|"]
    body = [f"| {a} | `{b}` | {c} | {d.replace('|', '/')} |" for a, b, c, d in ROWS]
    text = README.read_text()
    start, end = "<!-- table:start -->", "<!-- table:end -->"
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    README.write_text(before + start + "\n" + "\n".join(head + body) + "\n" + end + after)


if __name__ == "__main__":
    main()

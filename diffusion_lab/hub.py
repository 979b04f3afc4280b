"""The one place that decides whether the Hugging Face hub may be used: offline flags and a quick probe.

``hub_offline()`` reads ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` with huggingface_hub's own
truthiness rule (``constants.ENV_VARS_TRUE_VALUES``: 1, ON, YES, TRUE), at call time, so a flag set
after import counts too. ``hub_reachable()`` opens one TCP connection to the hub endpoint with a
short deadline (DNS included, in a daemon thread): without a network the run fails in seconds
instead of spending a minute in the hub client's retries.
"""

from __future__ import annotations

import os
import socket
import threading
from urllib.parse import urlparse

from huggingface_hub import constants

#: what to do without a network (named by every hub error)
OFFLINE_HINT = ("set HF_HUB_OFFLINE=1 (no hub attempts), and use model.pretrained=<local folder saved with "
                "save_pretrained> or an offline preset: +experiment=quickstart, +experiment=imdb_gen_clf_cpu "
                "(pretrained MiniLM shipped in a package), model=minilm, model=roberta_tiny / gpt2_tiny (random init)")


def hub_offline(*extra_vars: str) -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` (or one of ``extra_vars``, e.g.
    ``HF_DATASETS_OFFLINE``) is set to a true value, by huggingface_hub's rule."""
    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", *extra_vars)
    return bool(constants.HF_HUB_OFFLINE) or any(
        os.environ.get(n, "").upper() in constants.ENV_VARS_TRUE_VALUES for n in names)


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether one TCP connection to the hub endpoint succeeds within ``timeout`` seconds."""
    url = urlparse(hub_endpoint())
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    ok: list[bool] = []

    def probe():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                ok.append(True)
        except OSError:
            ok.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(ok and ok[0])

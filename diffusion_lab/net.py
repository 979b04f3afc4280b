"""One quick question before a run depends on a server: can a TCP connection to it be opened?

``unreachable(url, timeout_s)`` resolves the URL's host and connects to its port within
``timeout_s`` seconds (name resolution included: it runs in a daemon thread, since
``getaddrinfo`` has no timeout of its own), sends nothing, and returns ``None`` when the connection
opened or one line saying why not. Used before W&B starts online (``logging_utils``) and before
``task=synthesize`` trains anything with an LLM judge.
"""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def unreachable(url: str, timeout_s: float = 3.0) -> str | None:
    """``None`` if ``url``'s host accepts a TCP connection within ``timeout_s``; else why not (one line)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError as err:
        return f"invalid URL {url!r}: {err}"
    if not host or port is None:
        return f"invalid URL {url!r}: expected http(s)://host[:port]/..."
    outcome: list[str | None] = []

    def connect():
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(f"{host}:{port}: {err.strerror or err}")

    worker = threading.Thread(target=connect, daemon=True, name=f"connect-{host}")
    worker.start()
    worker.join(timeout_s)
    if not outcome:
        return f"{host}:{port}: no connection within {timeout_s:g}s"
    return outcome[0]

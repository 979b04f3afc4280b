#!/usr/bin/env bash
# Installs what tests/test_viewer_browser.py needs: Debian's chromium and the PyPI playwright package.
# Playwright drives the system chromium (executable_path=/usr/bin/chromium); we never run
# `playwright install`, which downloads a browser build of its own and cannot work offline.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

if ! python -c "import playwright" >/dev/null 2>&1; then
    python -m pip install -q playwright
fi

chromium --version
python -c "import importlib.metadata as m; print('playwright', m.version('playwright'))"

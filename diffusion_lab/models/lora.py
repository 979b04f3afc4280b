"""LoRA adapters (``peft``, the maintained library) on a transformers model, as a config choice.

``model.lora={r: 8}`` (any ``peft.LoraConfig`` field: ``lora_alpha``, ``lora_dropout``,
``target_modules``, ...) injects adapters in place: each targeted linear map becomes
``W x + (alpha / r) B A x`` with ``A`` random, ``B`` zero (so training starts at the pretrained model),
and every other weight of the transformer is frozen, except the rows of tokens the run added to the
vocabulary (trained as peft's trainable tokens). ``target_modules`` defaults to peft's table for
the model's family (GPT-2: ``c_attn``; LLaMA / Qwen: ``q_proj``, ``v_proj``); ``all-linear`` adapts
every linear layer except the head. The model stays a plain transformers module (no ``PeftModel``
wrapper), so the ``Denoiser`` code and checkpoints see the same structure with or without LoRA.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf
from torch import nn


def add_lora(model: nn.Module, lora: dict, new_token_ids: list[int] | None = None) -> nn.Module:
    """``model`` with LoRA adapters injected and only the adapters trainable.

    ``new_token_ids``: rows the vocabulary gained for this run (label tokens, mask, pad), whose embeddings
    start random. Frozen, they would stay random: they are trained through peft's trainable tokens
    (``LoraConfig.trainable_token_indices``, a delta on those rows only) unless the config names its own."""
    # imported here: peft takes seconds to import, and only LoRA runs need it
    from peft import LoraConfig, inject_adapter_in_model  # deferred: only for model.lora.r > 0

    fields = OmegaConf.to_container(lora, resolve=True) if isinstance(lora, DictConfig) else dict(lora)
    if new_token_ids and fields.get("trainable_token_indices") is None:
        fields["trainable_token_indices"] = list(new_token_ids)
    try:
        config = LoraConfig(**fields)
    except TypeError as err:
        raise ValueError(f"model.backbone.lora={fields}: {err} (the keys are peft.LoraConfig's)") from None
    model = inject_adapter_in_model(config, model)
    for name, param in model.named_parameters():  # peft's names: lora_A / lora_B, trainable_tokens_delta
        param.requires_grad = "lora_" in name or "trainable_tokens_delta" in name
    return model


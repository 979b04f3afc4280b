"""LoRA adapters (``peft``, the maintained library) on a transformers model, as a config choice.

``model.lora={r: 8}`` (any ``peft.LoraConfig`` field: ``lora_alpha``, ``lora_dropout``,
``target_modules``, ...) injects adapters in place: each targeted linear map becomes
``W x + (alpha / r) B A x`` with ``A`` random, ``B`` zero (so training starts at the pretrained model),
and every other weight of the transformer is frozen. ``target_modules`` defaults to peft's table for
the model's family (GPT-2: ``c_attn``; LLaMA / Qwen: ``q_proj``, ``v_proj``); ``all-linear`` adapts
every linear layer except the head. The model stays a plain transformers module (no ``PeftModel``
wrapper), so the ``Denoiser`` code and checkpoints see the same structure with or without LoRA.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf
from torch import nn


def add_lora(model: nn.Module, lora: dict) -> nn.Module:
    """``model`` with LoRA adapters injected and only the adapters trainable."""
    # imported here: peft takes seconds to import, and only LoRA runs need it
    from peft import LoraConfig, inject_adapter_in_model  # deferred: only for model.lora.r > 0

    fields = OmegaConf.to_container(lora, resolve=True) if isinstance(lora, DictConfig) else dict(lora)
    try:
        config = LoraConfig(**fields)
    except TypeError as err:
        raise ValueError(f"model.backbone.lora={fields}: {err} (the keys are peft.LoraConfig's)") from None
    model = inject_adapter_in_model(config, model)
    for name, param in model.named_parameters():
        param.requires_grad = "lora_" in name  # peft names its adapter weights lora_A / lora_B
    return model


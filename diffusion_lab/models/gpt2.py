"""GPT-2 as a ``Denoiser``: ``CausalLMDenoiser`` (``models/causal.py``) with GPT-2's size names.

Every causal family, GPT-2 included, is ``CausalLMDenoiser`` chosen by ``model_type`` in its config
file (``conf/model/gpt2*.yaml``). ``GPT2Denoiser`` stays so that runs saved with
``_target_: diffusion_lab.models.gpt2.GPT2Denoiser`` rebuild unchanged; the mask helpers are
re-exported for the same reason.
"""

from __future__ import annotations

from diffusion_lab.models.causal import (  # noqa: F401 (re-exported)
    MASKED_ATTENTION,
    OBJECTIVES,
    CausalLMDenoiser,
    attention_pattern,
    bidirectional_mask,
)
from diffusion_lab.models.causal import shift_right as shift_logits_right  # noqa: F401


class GPT2Denoiser(CausalLMDenoiser):
    """``CausalLMDenoiser(model_type="gpt2")`` with the defaults of ``conf/model/gpt2_tiny.yaml``."""

    def __init__(self, vocab_size: int, pad_token_id: int, num_conditions: int = 0, max_length: int = 512,
                 pretrained: str | None = None, n_embd: int = 256, n_layer: int = 4, n_head: int = 4, **kwargs):
        super().__init__(vocab_size, pad_token_id, num_conditions, max_length, model_type="gpt2",
                         pretrained=pretrained, n_embd=n_embd, n_layer=n_layer, n_head=n_head, **kwargs)

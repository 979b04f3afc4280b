"""Label tokens of the conditional classifier: ``<label_0> ... <label_{C-1}>`` and ``<nolabel>``.

The conditional model reads ``[<label_y>, x_1, ..., x_L]``. The label token is masked like any
token during training (so the model learns p(y | x) by filling it in) and ``<nolabel>`` stands in
for a fraction of batches (so the same model gives an unconditional p(x)).
"""

from __future__ import annotations

import torch

from diffusion_lab.models.ar_likelihood import prepend_token


def add_label_tokens(tokenizer, num_classes: int) -> tuple[list[int], int]:
    """Add the label tokens (idempotent; a reloaded run tokenizer already has them)."""
    names = [f"<label_{c}>" for c in range(num_classes)] + ["<nolabel>"]
    missing = [n for n in names if n not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    ids = tokenizer.convert_tokens_to_ids(names)
    return ids[:-1], ids[-1]


def with_prefix(input_ids: torch.Tensor, attention_mask: torch.Tensor, first: torch.Tensor):
    """Prepend one token per row (``first`` ``[B]``): returns ``(ids [B, L+1], mask [B, L+1])``
    (``models.ar_likelihood.prepend_token``, which also puts the causal models' start token in front)."""

    return prepend_token(input_ids, attention_mask, first)

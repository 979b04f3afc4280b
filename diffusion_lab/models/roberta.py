"""RoBERTa backbone as a ``Denoiser``: random init from a ``RobertaConfig`` or ``from_pretrained``."""

from __future__ import annotations

import torch
from transformers import RobertaConfig, RobertaForMaskedLM

from diffusion_lab.models.denoiser import Denoiser
from diffusion_lab.models.pretrained import load_pretrained

POSITION_PAD = 1  #: the pad id RoBERTa's position numbering is built around (its own tokenizer's)


def _set_word_padding(model, pad_token_id: int, init_std: float) -> None:
    """Make the tokenizer's pad id (not ``POSITION_PAD``) the word embedding's padding row."""
    if pad_token_id == POSITION_PAD:
        return
    emb = model.get_input_embeddings()
    with torch.no_grad():
        emb.weight[POSITION_PAD].normal_(0.0, init_std)  # an ordinary token of this tokenizer
        emb.weight[pad_token_id].zero_()
    emb.padding_idx = pad_token_id


class RobertaDenoiser(Denoiser):
    """Bidirectional encoder + LM head. ``pretrained`` (hub id or local folder) overrides the sizes.

    Random init uses the sizes given here (``hidden_size``, ``num_hidden_layers``, ...). The token
    embeddings are resized to ``vocab_size`` (``len(tokenizer)``) so an added mask token has a row.
    """

    def __init__(
        self,
        vocab_size: int,
        pad_token_id: int,
        num_conditions: int = 0,
        max_length: int = 512,
        pretrained: str | None = None,
        hidden_size: int = 256,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 4,
        intermediate_size: int = 1024,
        dropout: float = 0.0,
        objective: str = "diffusion",
        **config_overrides,
    ):
        if objective != "diffusion":
            raise ValueError(
                f"model.objective={objective!r} is not possible with a RoBERTa backbone: it is an "
                "encoder without a causal LM head. Use model.objective=diffusion, or model=gpt2_tiny / "
                "model=gpt2 for an autoregressive model."
            )
        if pretrained:
            model = load_pretrained(RobertaForMaskedLM, pretrained)
        else:
            config = RobertaConfig(
                vocab_size=vocab_size,
                hidden_size=hidden_size,
                num_hidden_layers=num_hidden_layers,
                num_attention_heads=num_attention_heads,
                intermediate_size=intermediate_size,
                hidden_dropout_prob=dropout,
                attention_probs_dropout_prob=dropout,
                # RoBERTa numbers positions from pad_token_id + 1; a fixed small id keeps the position
                # table at max_length + 3 rows whatever the tokenizer's pad id (50258 for GPT-2's BPE)
                max_position_embeddings=max_length + POSITION_PAD + 2,
                pad_token_id=POSITION_PAD,
                type_vocab_size=1,
                **config_overrides,
            )
            model = RobertaForMaskedLM(config)
            _set_word_padding(model, pad_token_id, config.initializer_range)
        if model.get_input_embeddings().num_embeddings != vocab_size:
            model.resize_token_embeddings(vocab_size)
        super().__init__(vocab_size, num_conditions, model.config.hidden_size)
        self.model = model
        self.max_length = max_length

    def _backbone_logits(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # RoBERTa derives position ids from input_ids; with inputs_embeds it numbers 0..L-1 (+offset)
        return self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask).logits

    def encode(self, input_ids, attention_mask, inputs_embeds=None):
        if inputs_embeds is None:
            inputs_embeds = self.embed(input_ids, None)
        return self.model.roberta(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state

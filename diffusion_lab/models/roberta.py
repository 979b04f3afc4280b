"""RoBERTa through the one ``EncoderDenoiser``: kept as a name for run configs saved before it.

New configs use ``diffusion_lab.models.encoder.EncoderDenoiser`` with ``model_type: roberta``,
``position_pad_id: 1`` and ``position_offset: 3`` (RoBERTa numbers positions from ``pad_token_id + 1``;
a fixed small position pad keeps the table at ``max_length + 3`` rows whatever the tokenizer's pad
id, e.g. 50258 for GPT-2's BPE). This class only sets those defaults.
"""

from __future__ import annotations

from diffusion_lab.models.encoder import EncoderDenoiser

POSITION_PAD = 1  #: the pad id RoBERTa's position numbering is built around


class RobertaDenoiser(EncoderDenoiser):
    def __init__(self, vocab_size: int, pad_token_id: int, num_conditions: int = 0, max_length: int = 512,
                 pretrained: str | None = None, hidden_size: int = 256, num_hidden_layers: int = 4,
                 num_attention_heads: int = 4, intermediate_size: int = 1024, dropout: float = 0.0,
                 objective: str = "diffusion", **config_overrides):
        sizes = {} if pretrained else dict(
            hidden_size=hidden_size, num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads,
            intermediate_size=intermediate_size, position_pad_id=POSITION_PAD, type_vocab_size=1)
        super().__init__(vocab_size, pad_token_id, num_conditions, max_length, model_type="roberta",
                         pretrained=pretrained, dropout=dropout, objective=objective,
                         position_offset=POSITION_PAD + 2, **sizes, **config_overrides)

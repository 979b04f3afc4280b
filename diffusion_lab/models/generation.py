"""Text generation shared by every language model: prompts -> sampler -> decoded texts."""

from __future__ import annotations

import torch


@torch.no_grad()
def generate_with_sampler(module, sampler, prompts: list[str], length: int, seed: int | None = None,
                          condition: int | None = None, return_output: bool = False):
    """Tokenize ``prompts``, check ``length`` against the model's window, run ``sampler`` on
    ``module.backbone`` (optionally class-``condition``-ed), decode. Returns texts (and the
    ``SampleOutput`` with its trajectory when ``return_output``)."""
    tok = module.tokenizer
    prompt_ids = [tok(p, add_special_tokens=False)["input_ids"] if p else [] for p in prompts]
    window = getattr(module.backbone, "max_length", None)
    if window is not None and length > window:
        raise ValueError(f"length={length} exceeds the model's position window of {window} tokens (set by the "
                         "trained run's data.max_length); ask for a shorter task.length")
    if any(len(p) >= length for p in prompt_ids):
        raise ValueError(f"a prompt is {max(map(len, prompt_ids))} tokens long; length={length} must exceed it")
    gen = torch.Generator().manual_seed(module.hparams.seed if seed is None else seed)
    cond = None if condition is None else torch.full((len(prompts),), condition, device=module.device)

    def denoise(x, att):
        return module.backbone(x, att, condition=None if cond is None else cond[: x.shape[0]])

    was_training = module.training
    module.eval()
    out = sampler.sample(denoise, prompt_ids, length, module.hparams.mask_token_id,
                         forbidden_token_ids=sorted(set(tok.all_special_ids)), generator=gen,
                         return_trajectory=return_output, device=module.device)
    module.train(was_training)
    texts = tok.batch_decode(out.tokens.tolist(), skip_special_tokens=True)
    return (texts, out) if return_output else texts

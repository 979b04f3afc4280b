"""Training FLOPs per token and a measured matmul peak: the two halves of model FLOPs utilisation (MFU)."""

from __future__ import annotations

import time

import torch


def flops_per_token(model, length: int) -> float:
    """Training FLOPs per token of a transformers model at sequence length ``length`` (Kaplan et al. 2020):

    ``6 N + 12 n_layer L H``, where ``N`` is the non-embedding parameter count plus the LM head's ``H x V``
    (tied to the embedding, so not among the parameters, but computed every step), ``L`` the length and
    ``H`` the hidden size; the second term is the attention scores and their gradients."""
    cfg = model.config
    emb = sum(p.numel() for n, p in model.named_parameters() if "embed" in n)
    n = sum(p.numel() for p in model.parameters()) - emb + cfg.hidden_size * cfg.vocab_size
    return 6 * n + 12 * cfg.num_hidden_layers * length * cfg.hidden_size


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device | str = "cpu", n: int = 1024, reps: int = 10,
                dtype: torch.dtype = torch.float32) -> float:
    """FLOP/s of an ``n x n`` matrix product (``2 n^3`` each) on ``device``, after three warm-up products:
    the attainable peak that MFU is measured against on a machine without a data-sheet figure."""
    device = torch.device(device)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start)

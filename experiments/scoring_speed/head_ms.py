"""Where the LM head's time goes on this CPU: the masked positions' logits and their log-probabilities.

    python experiments/scoring_speed/head_ms.py --positions 4096 --out experiments/scoring_speed/full_n1000/head_ms.json

MiniLM's head shapes (hidden 384, vocabulary 30,522, tied decoder), random weights (timing only), for
``--positions`` masked positions (a batch of 64 rows of 128 tokens at a 50% mask is about 4,096):

- ``matmul``: the decoder product ``h @ E^T + b`` alone, and its FLOP rate;
- ``matmul + cross_entropy``: what the scorer runs (``F.cross_entropy`` on the float32 logits);
- ``matmul + logsumexp``: the same log-probabilities as ``gathered logit - logsumexp`` (no [N, V] log-softmax);
- ``bf16 matmul + cross_entropy``: the product under bfloat16 autocast, the cross-entropy in float32;
- ``encoder-shaped matmul``: ``[positions, hidden] @ [hidden, 4 hidden]`` (the FFN's shape), the
  FLOP rate the encoder's products get on the same threads, for comparison.

Each after a warm-up, the median of ``--reps`` timings, in one process back to back. Run it alone.
"""

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def timed(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--positions", type=int, default=4096)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--vocab", type=int, default=30522)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    h = torch.randn(args.positions, args.hidden, generator=g)
    emb = torch.randn(args.vocab, args.hidden, generator=g) * 0.05
    bias = torch.zeros(args.vocab)
    y = torch.randint(0, args.vocab, (args.positions,), generator=g)

    def logits():
        return torch.addmm(bias, h, emb.t())

    def ce():
        return -F.cross_entropy(logits(), y, reduction="none")

    def lse():
        z = logits()
        return z.gather(1, y[:, None])[:, 0] - z.logsumexp(-1)

    def bf16_ce():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            z = logits()
        return -F.cross_entropy(z.float(), y, reduction="none")

    w_ffn = torch.randn(args.hidden, 4 * args.hidden, generator=g)

    def ffn():
        return h @ w_ffn

    assert torch.allclose(ce(), lse(), atol=1e-4)
    load_before = os.getloadavg()[0]
    rows = {name: timed(fn, args.reps) for name, fn in
            [("matmul", logits), ("matmul + cross_entropy", ce), ("matmul + logsumexp", lse),
             ("bf16 matmul + cross_entropy", bf16_ce), ("encoder-shaped matmul", ffn)]}
    flops = 2 * args.positions * args.hidden * args.vocab
    out = {"positions": args.positions, "hidden": args.hidden, "vocab": args.vocab, "threads": torch.get_num_threads(),
           "ms": {k: 1000 * v for k, v in rows.items()},
           "ms_per_position": {k: 1000 * v / args.positions for k, v in rows.items()},
           "matmul_gflops": flops / rows["matmul"] / 1e9,
           "encoder_shaped_gflops": 2 * args.positions * args.hidden * 4 * args.hidden / rows["encoder-shaped matmul"] / 1e9, "load_before": load_before, "load_after": os.getloadavg()[0]}
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

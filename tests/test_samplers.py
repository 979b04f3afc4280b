"""Samplers on a fake network: invariants of the canvas, schedules, determinism, cache, validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from diffusion_lab.samplers import (
    ConfidenceSampler,
    DDPMCacheSampler,
    RandomRemaskSampler,
    SampleOutput,
    Sampler,
)
from diffusion_lab.samplers.schedules import masked_counts, masked_fraction
from diffusion_lab.samplers.token_choice import choose_tokens

VOCAB, LENGTH, MASK, FORBIDDEN = 16, 12, 15, 14
PROMPTS = [[3, 4, 5], [], [7]]  # different prompt lengths, one empty
CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "sampler"


def fixed_table(seed: int = 0) -> torch.Tensor:
    """Random logits per position [LENGTH, VOCAB]; mask and forbidden ids score highest everywhere."""
    table = torch.randn(LENGTH, VOCAB, generator=torch.Generator().manual_seed(seed))
    table[:, MASK] = 50.0
    table[:, FORBIDDEN] = 40.0
    return table


class FakeNet:
    """denoise(input_ids, attention_mask) -> logits that ignore the input; counts its calls."""

    def __init__(self, table: torch.Tensor):
        self.table, self.calls = table, 0

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        assert attention_mask.shape == input_ids.shape and bool(attention_mask.all())
        self.calls += 1
        return self.table[: input_ids.shape[1]].expand(input_ids.shape[0], -1, -1).clone()


SETTINGS = [
    lambda s: RandomRemaskSampler(s, schedule="linear", strategy="greedy"),
    lambda s: RandomRemaskSampler(s, schedule="cosine", strategy="nucleus", top_p=0.5),
    lambda s: RandomRemaskSampler(s, schedule="exponential", strategy="top_k", top_k=3, temperature=2.0),
    lambda s: ConfidenceSampler(s, schedule="linear", strategy="greedy"),
    lambda s: ConfidenceSampler(s, schedule="cosine", strategy="sample", remask_low_confidence=False),
    lambda s: ConfidenceSampler(s, schedule="exponential", strategy="top_k", top_k=4),
    lambda s: DDPMCacheSampler(s),
    lambda s: DDPMCacheSampler(s, temperature=0.5),
]


def run(sampler: Sampler, seed: int = 0, net: FakeNet | None = None) -> SampleOutput:
    return sampler.sample(
        net or FakeNet(fixed_table()),
        PROMPTS,
        LENGTH,
        MASK,
        forbidden_token_ids=[FORBIDDEN],
        generator=torch.Generator().manual_seed(seed),
        return_trajectory=True,
    )


def generated(prompt_index: int) -> slice:
    return slice(len(PROMPTS[prompt_index]), LENGTH)


@pytest.mark.parametrize("steps", [1, 5, 20])  # 20 > the 12 positions of the empty-prompt row
@pytest.mark.parametrize("make", SETTINGS)
def test_canvas_invariants(make, steps):
    out = run(make(steps))
    assert out.tokens.shape == (len(PROMPTS), LENGTH)
    assert not bool((out.tokens == MASK).any()) and not bool((out.tokens == FORBIDDEN).any())
    assert len(out.trajectory) == steps + 1 and len(out.step_times) == steps
    assert torch.equal(out.trajectory[-1], out.tokens)
    for row, prompt in enumerate(PROMPTS):
        assert out.tokens[row, : len(prompt)].tolist() == prompt
        assert bool((out.trajectory[0][row, generated(row)] == MASK).all())
        for frame in out.trajectory:
            assert frame[row, : len(prompt)].tolist() == prompt


@pytest.mark.parametrize("make", SETTINGS)
def test_deterministic_for_a_seed(make):
    a, b = run(make(6), seed=3), run(make(6), seed=3)
    assert torch.equal(a.tokens, b.tokens)
    assert all(torch.equal(x, y) for x, y in zip(a.trajectory, b.trajectory, strict=True))


def test_different_seeds_differ_when_sampling():
    outs = {tuple(run(DDPMCacheSampler(8), seed=s).tokens.flatten().tolist()) for s in range(4)}
    assert len(outs) > 1


@pytest.mark.parametrize("schedule", ["linear", "cosine", "exponential"])
@pytest.mark.parametrize(
    "cls",
    [
        RandomRemaskSampler,
        ConfidenceSampler,
        lambda *a, **k: ConfidenceSampler(*a, remask_low_confidence=False, **k),
    ],
)
def test_masked_count_follows_schedule(cls, schedule):
    steps = 7
    out = run(cls(steps, schedule=schedule, strategy="sample"))
    for row in range(len(PROMPTS)):
        n = LENGTH - len(PROMPTS[row])
        counts = [int((frame[row] == MASK).sum()) for frame in out.trajectory]
        expected = [int(n * masked_fraction(schedule, s, steps) + 0.5) for s in range(steps + 1)]
        assert counts == expected
        assert counts[0] == n and counts[-1] == 0
        assert all(a >= b for a, b in zip(counts, counts[1:], strict=False))


def test_schedule_endpoints_and_monotone():
    n = torch.tensor([0, 5, 100])
    for schedule in ["linear", "cosine", "exponential"]:
        fracs = [masked_fraction(schedule, s, 10) for s in range(11)]
        assert fracs[0] == 1.0 and fracs[-1] == 0.0
        assert all(a >= b for a, b in zip(fracs, fracs[1:], strict=False))
        assert masked_counts(schedule, 10, 10, n).tolist() == [0, 0, 0]
        assert masked_counts(schedule, 0, 10, n).tolist() == [0, 5, 100]
    assert (
        masked_fraction("exponential", 2, 10)
        < masked_fraction("linear", 2, 10)
        < masked_fraction("cosine", 2, 10)
    )


@pytest.mark.parametrize(
    "make", [lambda: DDPMCacheSampler(9), lambda: ConfidenceSampler(9, remask_low_confidence=False)]
)
def test_revealed_tokens_never_change(make):
    out = run(make())
    for before, after in zip(out.trajectory, out.trajectory[1:], strict=False):
        revealed = before != MASK
        assert torch.equal(after[revealed], before[revealed])


class DoubtfulNet(FakeNet):
    """Like FakeNet, but a revealed token gets a very low logit: the model doubts what it sees."""

    def __call__(self, input_ids, attention_mask):
        logits = super().__call__(input_ids, attention_mask)
        revealed = input_ids != MASK
        logits[revealed] = logits[revealed].scatter(-1, input_ids[revealed][:, None], -30.0)
        return logits


def test_low_confidence_remasking_remasks_and_keeps_the_count():
    steps = 6
    out = run(ConfidenceSampler(steps, remask_low_confidence=True), net=DoubtfulNet(fixed_table()))
    row = 1  # empty prompt
    remasked = any(
        bool(((before[row] != MASK) & (after[row] == MASK)).any())
        for before, after in zip(out.trajectory, out.trajectory[1:], strict=False)
    )
    assert remasked
    counts = [int((f[row] == MASK).sum()) for f in out.trajectory]
    assert counts == [int(LENGTH * masked_fraction("linear", s, steps) + 0.5) for s in range(steps + 1)]
    assert not bool((out.tokens == MASK).any())


def test_greedy_picks_the_argmax():
    table = fixed_table(1)
    allowed = table.clone()
    allowed[:, [MASK, FORBIDDEN]] = float("-inf")
    best = allowed.argmax(-1)
    for sampler in [RandomRemaskSampler(4, strategy="greedy"), ConfidenceSampler(4, strategy="greedy")]:
        out = run(sampler, net=FakeNet(table))
        for row in range(len(PROMPTS)):
            assert torch.equal(out.tokens[row, generated(row)], best[generated(row)])


def test_ddpm_cache_skips_calls_when_nothing_changes():
    net, sampler = FakeNet(fixed_table()), DDPMCacheSampler(steps=200)
    out = sampler.sample(
        net, [[1] * (LENGTH - 3)], LENGTH, MASK, [FORBIDDEN], torch.Generator().manual_seed(0)
    )
    assert sampler.last_num_calls == net.calls
    assert 1 <= net.calls <= 3 < 200  # at most one call per position revealed
    assert not bool((out.tokens == MASK).any())


def test_token_choice_filters_and_sampling_frequencies():
    logits = torch.tensor([[2.0, 1.0, 0.0, float("-inf")]])
    gen = torch.Generator().manual_seed(0)
    assert choose_tokens(logits, "top_k", top_k=1, generator=gen).item() == 0
    assert choose_tokens(logits, "nucleus", top_p=0.1, generator=gen).item() == 0
    draws = choose_tokens(logits.expand(20000, -1), "sample", temperature=1.0, generator=gen)
    freq = torch.bincount(draws, minlength=4).double() / 20000
    assert torch.allclose(freq, torch.softmax(logits[0].double(), -1), atol=0.015)
    assert set(choose_tokens(logits.expand(2000, -1), "top_k", top_k=2, generator=gen).tolist()) == {0, 1}


@pytest.mark.parametrize(
    "make, key",
    [
        (lambda: RandomRemaskSampler(steps=0), "steps"),
        (lambda: ConfidenceSampler(steps=-3), "steps"),
        (lambda: DDPMCacheSampler(steps=0), "steps"),
        (lambda: RandomRemaskSampler(schedule="quadratic"), "schedule"),
        (lambda: ConfidenceSampler(schedule="bogus"), "schedule"),
        (lambda: RandomRemaskSampler(strategy="beam"), "strategy"),
        (lambda: ConfidenceSampler(strategy="beam"), "strategy"),
        (lambda: RandomRemaskSampler(temperature=0.0), "temperature"),
        (lambda: DDPMCacheSampler(temperature=-1.0), "temperature"),
        (lambda: ConfidenceSampler(top_p=0.0), "top_p"),
        (lambda: RandomRemaskSampler(top_p=1.5), "top_p"),
        (lambda: RandomRemaskSampler(top_k=0), "top_k"),
        (lambda: DDPMCacheSampler(eps=1.0), "eps"),
    ],
)
def test_bad_values_name_the_key(make, key):
    with pytest.raises(ValueError, match=rf"sampler\.{key}"):
        make()


def test_unknown_strategy_lists_allowed_values():
    with pytest.raises(ValueError, match="greedy.*top_k.*nucleus.*sample"):
        RandomRemaskSampler(strategy="beam")


def test_prompt_longer_than_length_is_rejected():
    with pytest.raises(ValueError, match="length"):
        DDPMCacheSampler(2).sample(FakeNet(fixed_table()), [[1] * (LENGTH + 1)], LENGTH, MASK)


@pytest.mark.parametrize(
    "config, cls",
    [
        ("random_remask", RandomRemaskSampler),
        ("confidence", ConfidenceSampler),
        ("ddpm_cache", DDPMCacheSampler),
    ],
)
def test_config_instantiates(config, cls):
    cfg = OmegaConf.load(CONF_DIR / f"{config}.yaml")
    sampler = instantiate(cfg)
    assert isinstance(sampler, cls) and sampler.name == config and sampler.steps == 32
    assert not bool((run(instantiate(cfg, steps=3)).tokens == MASK).any())


def test_keep_top_counts_per_row_and_tie_break():
    from diffusion_lab.samplers.canvas import keep_top

    scores = torch.tensor([[0.5, 0.9, 0.5, 0.1], [1.0, 1.0, 1.0, 1.0]])
    prefer = torch.tensor([[False, False, True, False], [False, False, False, True]])
    assert keep_top(scores, torch.tensor([2, 1])).tolist() == [
        [True, True, False, False],
        [True, False, False, False],
    ]
    # ties go to preferred positions (already revealed tokens), then to the earlier position
    assert keep_top(scores, torch.tensor([2, 2]), prefer).tolist() == [
        [False, True, True, False],
        [True, False, False, True],
    ]


class _OnePerStep(Sampler):
    """A new sampler is its ``step``: reveal the leftmost masked position greedily (the shared loop does
    the canvas, the state of masked positions, the timing and the trajectory)."""

    def step(self, point, canvas, state, run):
        logits = run.logits(canvas)
        rows = torch.arange(len(canvas))[state.any(1)]
        where = state[rows].long().argmax(1)  # leftmost masked position of each row that has one
        canvas[rows, where] = logits[rows, where].argmax(-1)
        state[rows, where] = False
        return canvas


def test_a_sampler_written_as_one_step_runs_in_the_shared_loop():
    net = FakeNet(fixed_table())
    out = _OnePerStep(steps=LENGTH).sample(net, PROMPTS, LENGTH, MASK, [FORBIDDEN], return_trajectory=True)
    assert net.calls == LENGTH and len(out.trajectory) == LENGTH + 1 and len(out.step_times) == LENGTH
    assert not (out.tokens == MASK).any() and not (out.tokens == FORBIDDEN).any()  # forbidden ids at -inf
    for row, prompt in enumerate(PROMPTS):
        assert out.tokens[row, : len(prompt)].tolist() == prompt
        masked_after = [int((t[row] == MASK).sum()) for t in out.trajectory]
        assert masked_after == [max(LENGTH - len(prompt) - s, 0) for s in range(LENGTH + 1)]

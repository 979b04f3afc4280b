"""``DDPMCacheSampler``: MDLM's ancestral sampler for the absorbing (masking) process, with its cache."""

from __future__ import annotations

from types import SimpleNamespace

from .base import Sampler
from .token_choice import check_temperature, gumbel_argmax, uniform


class DDPMCacheSampler(Sampler):
    """Reverse the log-linear masking process from t = 1 to 0 (MDLM ``ddpm_cache``).

    With m(t) = t (MDLM's loglinear schedule), times t_i = 1 - i (1 - eps) / S for i = 0..S, and step
    i going from t = t_{i-1} to s = t_i (s = 0 at the last step), the reverse posterior is

        q(x_s | x_t, x_0) : a masked position is unmasked with probability (t - s) / t,
                            taking x_0 ~ p_theta(x_0 | x_t) = softmax(logits / temperature),
                            else it stays masked; an unmasked position never changes.

    SUBS parameterisation: the mask id (and every forbidden id) has probability 0 under p_theta. At
    the last step s = 0, so every remaining masked position is unmasked (drawn, not argmax).

    Cache: the network does not see t, so its prediction depends on the canvas only and MDLM reuses it
    while the canvas is unchanged. Which positions unmask does not depend on the prediction, so it is
    drawn first and the network is called only on steps that unmask something: one call per distinct
    canvas that is actually used, never more than min(steps, masked positions in the batch). The whole batch
    shares the call (``denoise`` may hold per-row state such as a condition, so rows are not split).
    ``last_num_calls`` holds the number of network calls of the latest ``sample``.
    """

    def __init__(
        self, steps: int = 32, temperature: float = 1.0, eps: float = 1e-5, name: str = "ddpm_cache"
    ):
        super().__init__(steps, name)
        check_temperature(temperature)
        if not 0.0 < float(eps) < 1.0:
            raise ValueError(f"sampler.eps must be in (0, 1), got {eps!r}")
        self.temperature, self.eps = temperature, eps
        self.last_num_calls = 0

    def times(self) -> list[tuple[float, float]]:
        """The (t, s) pair of every step: t from 1 down, s = next t, and s = 0 at the last step."""
        grid = [1.0 - i * (1.0 - self.eps) / self.steps for i in range(self.steps + 1)]
        grid[-1] = 0.0
        return list(zip(grid[:-1], grid[1:], strict=True))

    def points(self, run):
        return self.times()

    def begin(self, canvas, run):
        self.last_num_calls = 0
        return SimpleNamespace(masked=~run.is_prompt)

    def step(self, point, canvas, state, run):
        t, s = point
        unmask = state.masked & (uniform(canvas.shape, run.generator, canvas.device) < (t - s) / t)
        if bool(unmask.any()):  # else the canvas stays as it is: no prediction needed (the cache)
            logits = run.logits(canvas)
            self.last_num_calls += 1
            canvas[unmask] = gumbel_argmax(logits[unmask] / self.temperature, run.generator)
            state.masked = state.masked & ~unmask
        return canvas

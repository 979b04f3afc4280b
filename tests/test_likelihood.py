"""The likelihood bound: stratified exact-l masks, unbiasedness, common random numbers."""

import math

import torch

from diffusion_lab.likelihood import elbo_log_likelihood, stratified_mask_draws

V = 9


def context_free(logp):
    """A model that predicts the same distribution at every position, whatever it sees."""

    def score(x, att, condition=None):
        table = logp if condition is None else logp[condition]
        table = table if table.dim() == 2 else table[None].expand(x.shape[0], -1)
        return table[:, None, :].expand(x.shape[0], x.shape[1], V).clone()

    return score


def test_draws_mask_exactly_l_stratified_positions():
    att = torch.ones(3, 10, dtype=torch.bool)
    att[1, 6:] = False
    d = stratified_mask_draws(att, num_draws=5, generator=torch.Generator().manual_seed(0))
    counts = d.masked.sum(-1)
    assert (d.masked & ~att[:, None]).sum() == 0  # padding never masked
    for row, length in enumerate([10, 6, 10]):
        # one count per stratum ((k, k+1]/K * L), weights L / l
        for k in range(5):
            assert k * length / 5 < counts[row, k] <= math.ceil((k + 1) * length / 5)
        assert torch.allclose(d.weight[row], length / counts[row].float())


def test_bound_is_unbiased_for_a_context_free_model():
    """There E[(L/l) sum_masked log p(x_i)] = sum_i log p(x_i): the bound is exact in expectation."""
    logp = torch.log_softmax(torch.randn(V, generator=torch.Generator().manual_seed(3)), 0)
    x = torch.randint(0, V - 1, (4, 12), generator=torch.Generator().manual_seed(4))
    att = torch.ones_like(x)
    att[3, 7:] = 0
    exact = (logp[x] * att).sum(1).double()
    est = elbo_log_likelihood(context_free(logp), x, att, mask_token_id=V - 1, num_draws=3000,
                              generator=torch.Generator().manual_seed(0))
    assert torch.allclose(est, exact, atol=0.15 * exact.abs().max().item() / 10)


def test_token_scores_sum_to_bound_and_conditions_share_draws():
    logp = torch.log_softmax(torch.randn(2, V, generator=torch.Generator().manual_seed(5)), -1)
    x = torch.randint(0, V - 1, (3, 8), generator=torch.Generator().manual_seed(6))
    att = torch.ones_like(x)
    bound, per_token = elbo_log_likelihood(context_free(logp), x, att, V - 1, num_draws=4, conditions=[0, 1],
                                           generator=torch.Generator().manual_seed(0), return_token_scores=True)
    assert bound.shape == (3, 2) and per_token.shape == (3, 2, 8)
    assert torch.allclose(per_token.sum(-1), bound)
    # shared draws: the same positions carry weight for both classes
    assert torch.equal(per_token[:, 0] != 0, per_token[:, 1] != 0)


def test_common_random_numbers_reduce_class_difference_variance():
    """Class difference log p(x|0) - log p(x|1): shared draws beat independent ones on the same model.

    As in real classifiers, the classes share most of their distribution (a small class signal)."""
    torch.manual_seed(0)
    table = torch.log_softmax(torch.randn(1, V) * 2 + 0.2 * torch.randn(2, V), -1)
    x = torch.randint(0, V - 1, (1, 20))
    att = torch.ones_like(x)
    score = context_free(table)
    shared, independent = [], []
    for seed in range(60):
        both = elbo_log_likelihood(score, x, att, V - 1, 2, conditions=[0, 1], generator=torch.Generator().manual_seed(seed))
        shared.append((both[0, 0] - both[0, 1]).item())
        a = elbo_log_likelihood(score, x, att, V - 1, 2, conditions=[0], generator=torch.Generator().manual_seed(seed))
        b = elbo_log_likelihood(score, x, att, V - 1, 2, conditions=[1], generator=torch.Generator().manual_seed(1000 + seed))
        independent.append((a[0, 0] - b[0, 0]).item())
    assert torch.tensor(shared).var() < 0.5 * torch.tensor(independent).var()

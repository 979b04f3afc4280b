"""Unigram initialisation of output biases: counts by hand, and an untrained model starts at the unigram level."""

import math

import torch

from diffusion_lab.likelihood import elbo_log_likelihood
from diffusion_lab.models.roberta import RobertaDenoiser
from diffusion_lab.models.unigram import unigram_log_probs


def test_unigram_log_probs_hand_counts():
    log_p, log_p_cond = unigram_log_probs([[0, 1, 1], [2, 1]], [0, 1], vocab_size=4, num_classes=2, alpha=1.0)
    # totals: w0=1, w1=3, w2=1, w3=0 over N=5 tokens, V=4
    assert torch.allclose(log_p.exp(), torch.tensor([2, 4, 2, 1]) / 9.0)
    assert torch.allclose(log_p_cond[0].exp(), torch.tensor([2, 3, 1, 1]) / 7.0)
    assert torch.allclose(log_p_cond[1].exp(), torch.tensor([1, 2, 2, 1]) / 6.0)


def test_untrained_model_with_unigram_init_scores_at_the_unigram_level():
    torch.manual_seed(0)
    vocab, mask = 50, 49
    probs = torch.softmax(torch.randn(vocab - 1) * 2, 0)
    data = torch.multinomial(probs, 40 * 20, replacement=True).view(40, 20)
    model = RobertaDenoiser(vocab, pad_token_id=0, num_conditions=3, max_length=24, hidden_size=32,
                            num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).eval()
    att = torch.ones_like(data)
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    before = -elbo_log_likelihood(model, data, att, mask, 4, generator=gen()).mean() / 20
    log_p, log_p_cond = unigram_log_probs(data.tolist(), [0] * 40, vocab, num_classes=2)
    model.init_unigram(log_p, log_p_cond)
    after = -elbo_log_likelihood(model, data, att, mask, 4, generator=gen()).mean() / 20
    entropy = -(log_p[data]).mean()
    assert before > math.log(vocab) - 0.5  # random init: about log V per token
    assert abs(after - entropy) < 0.25, (after, entropy)  # unigram init: the empirical unigram NLL
    # class rows shift the prediction: condition 0 (all data) matches, condition 1 (no data) does not
    c0 = elbo_log_likelihood(model, data, att, mask, 4, conditions=[0, 1], generator=gen())
    assert (c0[:, 0] > c0[:, 1]).all()

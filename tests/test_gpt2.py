"""GPT-2 backbone: bidirectional vs causal attention, exact AR likelihood, shift, annealing, loading.

A tiny random GPT-2 (2 layers, 32 wide) with the real GPT-2 tokenizer (mask and pad tokens added
the way ``data.tokenizer.PretrainedTokenizer`` adds them). Skipped when the tokenizer is absent.
"""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

from diffusion_lab.models.ar_likelihood import (
    ar_log_likelihood,
    ar_loss,
    ar_sequence_log_likelihood,
    prepend_start_token,
    start_token_id,
)
from diffusion_lab.models.gpt2 import GPT2Denoiser, attention_pattern
from diffusion_lab.samplers.autoregressive import AutoregressiveSampler
from tests.conftest import DATA_DIR, REPO

TINY = dict(n_embd=32, n_layer=2, n_head=2, max_length=16)


@pytest.fixture(scope="module")
def tok():
    folder = DATA_DIR / "gpt2_tokenizer"
    if not (folder / "tokenizer.json").is_file():
        pytest.skip(f"GPT-2 tokenizer not found in {folder}")
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    tokenizer.add_special_tokens({"mask_token": "<mask>", "pad_token": "<pad>"})
    return tokenizer


def tiny(tok, seed: int = 0, **kw) -> GPT2Denoiser:
    torch.manual_seed(seed)
    return GPT2Denoiser(len(tok), tok.pad_token_id, **{**TINY, **kw}).eval()


def batch(tok):
    """Two rows, the second right-padded after 6 tokens."""
    ids = tok(
        ["The film was a quiet delight from start", "Dull and far too long"],
        padding="max_length",
        max_length=8,
        return_tensors="pt",
    )
    assert ids["attention_mask"].sum(dim=1).tolist() == [8, 6]
    return ids["input_ids"], ids["attention_mask"]


def test_mask_token_added_and_embeddings_resized(tok):
    assert len(tok) == 50257 + 2 and tok.mask_token_id < len(tok)
    model = tiny(tok)
    assert model.model.get_input_embeddings().num_embeddings == len(tok)
    ids, mask = batch(tok)
    assert model(ids, mask).shape == (2, 8, len(tok))


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("objective", ["diffusion", "autoregressive"])
def test_attention_direction_and_padding(tok, impl, objective):
    model = tiny(tok, objective=objective, attn_implementation=impl)
    assert model.causal == (objective == "autoregressive")
    ids, mask = batch(tok)
    later = ids.clone()
    later[:, 4] = tok.convert_tokens_to_ids("Ġbad")  # a real token in both rows
    before, after = model(ids, mask), model(later, mask)
    earlier_changed = (before[:, :4] - after[:, :4]).abs().max().item()
    hidden_changed = (model.encode(ids, mask)[:, :4] - model.encode(later, mask)[:, :4]).abs().max().item()
    assert model.encode(ids, mask).shape == (2, 8, 32)  # hidden states for discriminative heads
    if objective == "diffusion":
        assert earlier_changed > 1e-4 and hidden_changed > 1e-4  # position 4 is seen by positions 0..3
    else:
        assert earlier_changed == 0.0 and hidden_changed == 0.0
    padded = ids.clone()
    padded[1, 6] = tok.convert_tokens_to_ids("Ġgood")  # a padding position: its key must be ignored
    torch.testing.assert_close(model(padded, mask)[1, :6], before[1, :6], rtol=0, atol=1e-6)


def test_sdpa_and_eager_read_the_mask_the_same_way(tok):
    model = tiny(tok)
    ids, mask = batch(tok)
    via_sdpa = model(ids, mask)
    model.model.set_attn_implementation("eager")
    torch.testing.assert_close(model(ids, mask)[mask.bool()], via_sdpa[mask.bool()], rtol=1e-4, atol=1e-5)


def test_ar_log_likelihood_equals_hand_loop(tok):
    model = tiny(tok, objective="autoregressive")
    ids, mask = batch(tok)
    start = start_token_id(tok)
    assert start == tok.eos_token_id  # GPT-2: bos == eos == <|endoftext|>
    total = ar_log_likelihood(model, ids, mask, start)
    for row in range(2):
        expected = 0.0
        for i in range(int(mask[row].sum())):  # log p(x_i | s, x_<i) from the prefix alone
            prefix = torch.tensor([[start, *ids[row, :i].tolist()]])
            expected += torch.log_softmax(model(prefix)[0, -1].double(), -1)[ids[row, i]].item()
        assert total[row].item() == pytest.approx(expected, abs=1e-3)
    full_ids, full_mask = prepend_start_token(ids, mask, start)
    logits = model(full_ids, full_mask)
    loss = ar_loss(logits, full_ids, full_mask)
    assert loss.item() == pytest.approx(-total.sum().item() / mask.sum().item(), rel=1e-5)
    assert torch.allclose(ar_sequence_log_likelihood(logits, full_ids, full_mask), total)
    with pytest.raises(ValueError, match="causal"):
        ar_log_likelihood(tiny(tok), ids, mask, start)


def test_ar_sampler_never_emits_mask_and_fills_left_to_right(tok):
    model = tiny(tok, objective="autoregressive")
    calls = []

    def denoise(ids, attention_mask):  # make the mask id overwhelmingly likely: it must still never win
        calls.append(ids.shape[1])
        logits = model(ids, attention_mask)
        logits[..., tok.mask_token_id] += 1e4
        return logits

    sampler = AutoregressiveSampler(start_token_id=start_token_id(tok), strategy="sample", temperature=2.0)
    prompts = [tok("The film")["input_ids"], []]
    seed, forbidden = torch.Generator().manual_seed(0), [tok.pad_token_id]
    out = sampler.sample(denoise, prompts, 6, tok.mask_token_id, forbidden, seed, return_trajectory=True)
    assert out.tokens.shape == (2, 6)
    assert not bool(((out.tokens == tok.mask_token_id) | (out.tokens == tok.pad_token_id)).any())
    assert out.tokens[0, :2].tolist() == prompts[0]
    assert len(out.trajectory) == 6 + 1 and len(out.step_times) == 6 and calls == [1, 2, 3, 4, 5, 6]
    masked = [int((state == tok.mask_token_id).sum()) for state in out.trajectory]
    assert masked == [10, 9, 8, 6, 4, 2, 0]  # row 0's prompt covers positions 0-1: only row 1 fills them
    for step in range(1, 7):  # step s fills position s-1: everything before it is final
        assert torch.equal(out.trajectory[step][:, :step], out.tokens[:, :step])
        assert torch.equal(out.trajectory[step][:, step:], out.trajectory[0][:, step:])  # prompt or mask


def test_ar_sampler_checks_its_settings(tok):
    with pytest.raises(ValueError, match="sampler.strategy"):
        AutoregressiveSampler(start_token_id=0, strategy="beam")
    with pytest.raises(ValueError, match="sampler.top_p"):
        AutoregressiveSampler(start_token_id=0, top_p=1.5)
    with pytest.raises(ValueError, match="start_token_id"):
        AutoregressiveSampler().sample(lambda i, m: None, [[1]], 3, tok.mask_token_id)


def test_shift_hand_checked_on_five_tokens(tok):
    plain, shifted = tiny(tok, seed=1), tiny(tok, seed=1, shift=True)
    assert torch.equal(plain.model.transformer.wte.weight, shifted.model.transformer.wte.weight)
    ids = tok("one two three four five", return_tensors="pt")["input_ids"]
    assert ids.shape == (1, 5)
    a, b = plain(ids), shifted(ids)
    torch.testing.assert_close(b[0, 0], a[0, 0])  # position 0: its own output (no left neighbour)
    for i in range(1, 5):  # position i: the head output at i - 1
        torch.testing.assert_close(b[0, i], a[0, i - 1])


def test_annealing_moves_from_causal_to_full(tok):
    annealed = tiny(tok, seed=2, attention_anneal_steps=10).train()
    causal = tiny(tok, seed=2, objective="autoregressive")
    full = tiny(tok, seed=2)
    ids, mask = batch(tok)
    assert annealed.anneal_progress == 0.0
    torch.testing.assert_close(annealed(ids, mask)[mask.bool()], causal(ids, mask)[mask.bool()])
    annealed.set_anneal_step(5)
    assert annealed.anneal_progress == 0.5
    pattern = attention_pattern(64, 0.5)
    future = ~torch.ones(64, 64, dtype=torch.bool).tril()
    assert bool(pattern[~future].all()) and 0.4 < pattern[future].float().mean().item() < 0.6
    annealed.set_anneal_step(25)
    assert annealed.anneal_progress == 1.0
    torch.testing.assert_close(annealed(ids, mask)[mask.bool()], full(ids, mask)[mask.bool()])
    annealed.set_anneal_progress(0.0)
    annealed.eval()  # outside training attention is always full
    torch.testing.assert_close(annealed(ids, mask)[mask.bool()], full(ids, mask)[mask.bool()])


def test_local_pretrained_checkpoint_loads(tok, tmp_path):
    torch.manual_seed(3)
    saved = GPT2LMHeadModel(GPT2Config(vocab_size=50257, n_embd=32, n_layer=3, n_head=2, n_positions=32))
    saved.save_pretrained(tmp_path)
    model = GPT2Denoiser(len(tok), tok.pad_token_id, max_length=16, pretrained=str(tmp_path))
    assert model.model.config.n_layer == 3  # sizes come from the checkpoint
    emb = model.model.get_input_embeddings().weight
    assert emb.shape[0] == len(tok)
    torch.testing.assert_close(emb[:50257], saved.get_input_embeddings().weight)
    with pytest.raises(ValueError, match="max_position_embeddings=32"):
        GPT2Denoiser(len(tok), tok.pad_token_id, max_length=64, pretrained=str(tmp_path))


def test_objective_errors_are_clear(tok):
    with pytest.raises(ValueError, match="model.objective must be one of"):
        tiny(tok, objective="masked")
    with pytest.raises(ValueError, match="only apply to model.objective=diffusion"):
        tiny(tok, objective="autoregressive", shift=True)
    with pytest.raises(ValueError, match="only apply to model.objective=diffusion"):
        tiny(tok, objective="autoregressive", attention_anneal_steps=100)
    with pytest.raises(ValueError, match="attn_implementation"):
        tiny(tok, attn_implementation="flash_attention_2")


@pytest.mark.parametrize("objective", ["diffusion", "autoregressive"])
def test_model_configs_instantiate(tok, objective):
    for name in ("gpt2_tiny", "gpt2"):
        cfg = OmegaConf.create({"model": OmegaConf.load(REPO / "conf" / "model" / f"{name}.yaml")})
        assert cfg.model.family == "gpt2" and cfg.model.backbone.pretrained == cfg.model.pretrained
    # gpt2.yaml needs the hub weights; gpt2_tiny is built with even smaller sizes
    cfg = OmegaConf.create({"model": OmegaConf.load(REPO / "conf" / "model" / "gpt2_tiny.yaml")})
    cfg.model.objective = objective
    cfg.model.backbone.update(n_embd=32, n_layer=1, n_head=2)
    model = instantiate(
        cfg.model.backbone,
        vocab_size=len(tok),
        pad_token_id=tok.pad_token_id,
        num_conditions=3,
        max_length=16,
    )
    assert model.causal == (objective == "autoregressive")
    ids, mask = batch(tok)
    assert model(ids, mask, torch.tensor([0, 2])).shape == (2, 8, len(tok))

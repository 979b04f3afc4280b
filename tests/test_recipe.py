"""Issue 11's recipe options: ModernBERT, optimizer/schedule configs, EMA, the training window on
the masking rate, SUBS, and pretraining on an LM run."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Callback

from diffusion_lab.models.denoiser import Denoiser


def test_modernbert_tiny_trains_and_generates(tiny_run):
    results, train_dir = tiny_run(["model=modernbert_tiny"], "train")
    assert results["global_step"] > 0 and results["val/nll_per_token"] > 0
    res, out = tiny_run(["task=generate", f"run_dir={train_dir}", "task.length=10", "task.num_samples=2",
                         "sampler.steps=4"], "gen")
    tokens = torch.load(out / "trajectory.pt")["main"]["trajectory"]
    assert tokens.shape[-1] == 10 and len(res["main"]["texts"]) == 2



class _Vocab:
    """What build_backbone reads of a tokenizer: its size and pad id."""

    pad_token_id = 0

    def __len__(self):
        return 300


def test_modernbert_tiny_initializer_range_reaches_the_backbone():
    """The config's initializer_range is what ModernBERT's init draws from: the output projections at
    initializer_range / sqrt(2 x layers) (the plateau's cause at transformers' 0.02, see the config)."""
    from diffusion_lab.builders import build_backbone
    from tests.conftest import TINY, compose

    stds = {}
    for rng in (0.02, 0.06):
        cfg = compose([*TINY, "model=modernbert_tiny", f"model.backbone.initializer_range={rng}"])
        torch.manual_seed(0)
        backbone = build_backbone(cfg, _Vocab())
        assert backbone.model.config.initializer_range == rng
        layers = backbone.model.config.num_hidden_layers
        stds[rng] = backbone.model.model.layers[0].attn.Wo.weight.std().item()
        assert stds[rng] == pytest.approx(rng / (2 * layers) ** 0.5, rel=0.25)  # truncated normal: a bit under
    assert compose([*TINY, "model=modernbert_tiny"]).model.backbone.initializer_range == 0.06


PROBE: dict = {}


class Probe(Callback):
    """Records one weight tensor as validation sees it and as training leaves it."""

    def on_validation_epoch_start(self, trainer, pl_module):
        PROBE["validated"] = _first_weight(pl_module).clone()

    def on_train_end(self, trainer, pl_module):
        PROBE["final"] = _first_weight(pl_module).clone()


def _first_weight(module):
    return next(p for n, p in module.named_parameters() if n.endswith("word_embeddings.weight")).detach()


def test_ema_weights_are_validated_checkpointed_and_kept(tiny_run):
    import importlib

    probes = importlib.import_module("tests.test_recipe").PROBE  # the module Hydra instantiates from
    probes.clear()
    probe = ["+callbacks.probe._target_=tests.test_recipe.Probe"]
    _, out = tiny_run(["callbacks=[none,ema]", "callbacks.ema.decay=0.5", "optimizer.lr=1e-2", *probe])
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    key = next(k for k in ckpt["state_dict"] if k.endswith("word_embeddings.weight"))
    ema, raw = ckpt["state_dict"][key], ckpt["current_model_state"][key]
    assert not torch.allclose(ema, raw)  # the average is not the last iterate
    assert torch.equal(probes["validated"], ema) and torch.equal(probes["final"], ema)
    from diffusion_lab.run_loading import load_run

    loaded = load_run(out, "last").module  # what generate / evaluate score
    assert torch.equal(_first_weight(loaded), ema)


def test_budget_triangle_follows_elapsed_time_not_steps():
    from diffusion_lab.optim import time_budget_triangle

    now = {"t": 0.0}
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = time_budget_triangle(opt, num_training_steps=10, warmup_fraction=0.25, min_lr_ratio=0.1,
                                 clock=lambda: (now["t"], 100.0))
    seen = []
    for t in (10.0, 25.0, 62.5, 100.0, 130.0):
        now["t"] = t
        sched.step()
        seen.append(opt.param_groups[0]["lr"])
    assert seen == pytest.approx([0.4, 1.0, 0.55, 0.1, 0.1])


def test_cramming_optimizer_and_budget_schedule_run(tiny_run, monkeypatch):
    from diffusion_lab import optim
    from diffusion_lab.optim import training_clock

    clocks = []
    monkeypatch.setattr(optim, "training_clock", lambda trainer: clocks.append(training_clock(trainer)) or clocks[-1])

    cfg_overrides = ["optimizer=cramming", "scheduler=budget_triangle", "trainer.max_time=00:00:05:00"]
    results, _ = tiny_run(cfg_overrides)
    assert results["global_step"] > 0
    assert clocks and clocks[0] is not None and 0 <= clocks[0]()[0] < clocks[0]()[1] == pytest.approx(300)
    from tests.conftest import TINY, compose

    cfg = compose([*TINY, *cfg_overrides])
    assert tuple(cfg.optimizer.betas) == (0.9, 0.98) and cfg.optimizer.eps == 1e-12
    assert training_clock(object()) is None  # no Timer: the triangle falls back to steps


class TableDenoiser(Denoiser):
    """Context-free ``Denoiser``: logits ``table`` at every position whatever it sees, through the real
    ``Denoiser.forward`` (output bias, sparse ``positions``, SUBS)."""

    def __init__(self, table: torch.Tensor):
        super().__init__(vocab_size=len(table))
        self.table = torch.nn.Parameter(table.clone())

    def embed(self, input_ids, condition):
        return torch.zeros(*input_ids.shape, 1)

    def _dense_logits(self, inputs_embeds, attention_mask):
        return self.table.expand(inputs_embeds.shape[0], inputs_embeds.shape[1], -1)


def _table_lm(schedule, table):
    from diffusion_lab.models.diffusion_lm import DiffusionLM

    return DiffusionLM(backbone=TableDenoiser(table), masking=schedule, optimizer=None, mask_token_id=0, seed=0)


VOCAB = 8
TABLE = torch.randn(VOCAB, generator=torch.Generator().manual_seed(0))


def _ids(rows=4096, length=6, low=2):
    return torch.randint(low, VOCAB, (rows, length), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("schedule", ["loglinear", "cosine"])
def test_windowed_loss_of_a_context_free_model_is_its_truncated_nelbo(schedule):
    """Context-free: E_q[sum_i masked nll_i] = m(t) S, so int_{t_lo}^{t_hi} (m'/m) m S dt = (hi - lo) S:
    E[train/loss] = (train_max_rate - train_min_rate) * S / N, whatever the schedule."""
    from diffusion_lab.masking import CosineSchedule, LogLinearSchedule

    cls = {"loglinear": LogLinearSchedule, "cosine": CosineSchedule}[schedule]
    ids = _ids()
    att = torch.ones_like(ids)
    nll_per_token = float(-torch.log_softmax(TABLE, -1)[ids].mean())  # S / N
    plain = cls(0.05, 1.0)  # no window: t ~ U[t(min), t(max)], no factor, E = (max - min) / (t_max - t_min) S / N
    no_window = (1.0 - 0.05) / (plain.inverse_rate(1.0) - plain.inverse_rate(0.05)) * nll_per_token
    for window, expected in (((0.2, 0.6), 0.4 * nll_per_token), ((None, None), no_window)):
        lm = _table_lm(cls(0.05, 1.0, train_min_rate=window[0], train_max_rate=window[1]), TABLE)
        loss = torch.stack([lm.training_loss(ids, att)["loss"] for _ in range(16)]).mean()
        assert float(loss) == pytest.approx(expected, rel=0.02), window


def test_training_window_changes_training_only_not_the_bound():
    from diffusion_lab.masking import LogLinearSchedule

    ids = _ids(rows=64)
    att = torch.ones_like(ids)
    full, windowed = (_table_lm(LogLinearSchedule(1e-3, 1.0, **kw), TABLE)
                      for kw in ({}, {"train_min_rate": 0.3, "train_max_rate": 0.5}))
    windowed.backbone.load_state_dict(full.backbone.state_dict())
    bounds = [lm.sequence_log_likelihood(ids, att, num_draws=4, generator=torch.Generator().manual_seed(3))
              for lm in (full, windowed)]
    assert torch.equal(bounds[0], bounds[1])
    rates = windowed.training_loss(ids, att)["rates"]
    assert rates.min() >= 0.3 - 1e-6 and rates.max() <= 0.5 + 1e-6
    with pytest.raises(ValueError, match="train_min_rate"):
        LogLinearSchedule(0.1, 0.5, train_min_rate=0.05)


def test_subs_bound_is_the_exact_likelihood_over_non_special_tokens():
    """Suppressed ids carry the LARGEST logits; with SUBS the context-free bound of a constant row equals
    sum_i log softmax over the non-suppressed tokens (each draw is exact for a constant row)."""
    from diffusion_lab.masking import LogLinearSchedule

    table = TABLE.clone()
    table[:2] = 10.0  # mask (0) and pad (1) would dominate
    lm = _table_lm(LogLinearSchedule(), table)
    lm.backbone.suppress_tokens([0, 1])
    ids = torch.arange(2, VOCAB)[:, None].repeat(1, 5)  # one constant row per ordinary token
    att = torch.ones_like(ids)
    bound = lm.sequence_log_likelihood(ids, att, num_draws=3, generator=torch.Generator().manual_seed(0))
    exact = 5 * torch.log_softmax(table[2:], -1).double()
    assert torch.allclose(bound, exact, atol=1e-5)
    sparse = lm.backbone(ids, att, positions=att.bool())
    assert sparse.shape == (ids.numel(), VOCAB) and torch.isinf(sparse[:, :2]).all()
    loss = lm.training_loss(ids, att)["loss"]
    assert torch.isfinite(loss)
    loss.backward()
    assert lm.backbone.table.grad[:2].abs().sum() == 0  # suppressed logits receive no gradient


def test_subs_sampling_never_emits_a_suppressed_id():
    from diffusion_lab.samplers.confidence import ConfidenceSampler

    table = TABLE.clone()
    table[5] = 20.0  # an ordinary id the model would otherwise always pick
    backbone = TableDenoiser(table)
    backbone.suppress_tokens([0, 1, 5])
    out = ConfidenceSampler(steps=4).sample(lambda x, a: backbone(x, a), [[], []], 12, 0, forbidden_token_ids=[0],
                                            generator=torch.Generator().manual_seed(0))
    assert out.tokens.numel() == 24 and not torch.isin(out.tokens, torch.tensor([0, 1, 5])).any()


def test_subs_ids_from_the_config_keep_the_label_tokens(tiny_run):
    from diffusion_lab.builders import build_backbone
    from diffusion_lab.classifiers.label_tokens import add_label_tokens
    from diffusion_lab.models.denoiser import subs_token_ids
    from tests.conftest import TINY, compose

    _, out = tiny_run(["trainer.max_steps=1", "model=modernbert_tiny", "model.subs=true"], "subs")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out / "tokenizer"))
    labels, nolabel = add_label_tokens(tok, 2)
    backbone = build_backbone(compose([*TINY, "model=modernbert_tiny", "model.subs=true"]), tok)
    ids = set(backbone.suppress_ids.tolist())
    assert {tok.mask_token_id, tok.pad_token_id} <= ids and ids == set(subs_token_ids(tok))
    assert not ids & {*labels, nolabel}


CLF = ["task=train_classifier", "task.baselines=[]", "classifier.num_draws=2", "task.val_draws=1"]


def _run_without_bpe_size(overrides, out):
    """A tiny run whose tokenizer is not the BPE (TINY's tokenizer.vocab_size would not compose)."""
    from diffusion_lab.app import run
    from tests.conftest import TINY, compose

    return run(compose([*(o for o in TINY if not o.startswith("tokenizer.")), *overrides], out)), out


def test_classifier_starts_from_an_lm_run_and_refuses_a_mismatch(tiny_run, tmp_path):
    _, lm_dir = tiny_run(["model=modernbert_tiny", "trainer.max_steps=2"], "lm")
    init = ["model=modernbert_tiny", f"model.init_from={lm_dir}", "tokenizer=pretrained",
            f"tokenizer.name_or_path={lm_dir / 'tokenizer'}"]
    _, clf_dir = _run_without_bpe_size([*CLF, *init, "optimizer.lr=0.0", "trainer.max_steps=1"], tmp_path / "clf")
    from diffusion_lab.runs import find_checkpoint

    lm = torch.load(find_checkpoint(lm_dir, "best"), weights_only=False)["state_dict"]
    clf = torch.load(clf_dir / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    for key, value in lm.items():
        if key.startswith("backbone."):
            mine = clf[f"lms.0.{key}"]
            assert torch.equal(mine[: value.shape[0]], value), key  # lr=0: still the LM's weights
    words = "backbone.model.model.embeddings.tok_embeddings.weight"
    assert clf[f"lms.0.{words}"].shape[0] == lm[words].shape[0] + 3  # <label_0>, <label_1>, <nolabel>
    with pytest.raises(ValueError, match="another id"):
        tiny_run([*CLF, "model=modernbert_tiny", f"model.init_from={lm_dir}", "tokenizer.vocab_size=280"], "bad_vocab")
    with pytest.raises(ValueError, match="sizes must match"):
        _run_without_bpe_size([*CLF, *init, "model.backbone.hidden_size=48"], tmp_path / "bad_size")
    with pytest.raises(ValueError, match="task=train_lm run"):
        _run_without_bpe_size([*CLF, init[0], f"model.init_from={clf_dir}", *init[2:]], tmp_path / "bad_kind")


def test_per_class_models_keep_their_naive_bayes_term_over_the_lm_weights(tiny_run):
    """``model.init_from`` copies the LM's output bias into every backbone; a per_class model's class term
    lives in that bias, so each class model must start as the LM's bias + ``log p(w | c) - log p(w)``
    (before the fix both class models were the LM: identical, a 50% classifier at initialisation)."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from diffusion_lab.builders import build_backbone, unigram_init
    from diffusion_lab.models.init_from import lm_backbone_state
    from diffusion_lab.models.unigram import unigram_log_probs
    from tests.conftest import TINY, compose

    _, lm_dir = tiny_run(["trainer.max_steps=2"], "lm")
    tok = AutoTokenizer.from_pretrained(str(lm_dir / "tokenizer"))
    cfg = compose([*TINY, "model.unigram_init=true", f"+model.init_from={lm_dir}"])
    backbones = [build_backbone(cfg, tok) for _ in range(2)]
    ids = [tok("a good film, a good cast")["input_ids"], tok("a bad plot and bad acting")["input_ids"]]
    dm = SimpleNamespace(datasets={"train": {"input_ids": ids, "label": [0, 1]}}, tokenizer=tok)
    assert unigram_init(cfg, dm, backbones, num_classes=2)
    lm_bias = lm_backbone_state(lm_dir)[0]["output_bias"]
    log_p, log_p_cond = unigram_log_probs(ids, [0, 1], len(tok), 2)
    for c, backbone in enumerate(backbones):
        torch.testing.assert_close(backbone.output_bias.detach(), lm_bias + log_p_cond[c] - log_p)
    good = tok.convert_tokens_to_ids(tok.tokenize(" good"))[0]
    assert backbones[0].output_bias[good] > backbones[1].output_bias[good]  # the class term survived

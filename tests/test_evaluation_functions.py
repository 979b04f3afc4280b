"""Model-independent evaluation functions (diffusion_lab.evaluation) on tiny synthetic inputs."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from diffusion_lab.evaluation import (
    PERTURBATIONS,
    build_frequency_vocab,
    deletion_curve,
    energy_score,
    length_matched_indices,
    mask_top_words,
    max_softmax_score,
    n_changed,
    ood_metrics,
    perturb,
    self_contained_report,
    token_heatmap_html,
    word_deletion,
)

TEXT = " ".join(f"tok{i}x" for i in range(20))  # 20 distinct words
CORPUS = [" ".join(f"tok{i}x" for i in range(j, 40)) for j in range(40)]  # tok{i}x appears i+1 times
VOCAB = build_frequency_vocab(CORPUS)
KW = {
    "char_typos": {},
    "word_swap": {"vocab_by_frequency": VOCAB, "window": 3},
    "mask_top_words": {"weights": {}, "placeholder": "<unk>"},  # the by-name placeholder keeps the length
}


@pytest.mark.parametrize("name", sorted(KW))
def test_same_length_perturbations_change_exactly_n_words(name):
    fn, kw = PERTURBATIONS[name], KW[name]
    words = TEXT.split()
    out = fn(TEXT, 0.25, 7, **kw)
    new = out.split()
    assert len(new) == len(words)
    changed = [i for i, (a, b) in enumerate(zip(words, new, strict=True)) if a != b]
    assert len(changed) == n_changed(20, 0.25) == 5  # all other words are returned verbatim
    assert fn(TEXT, 0.25, 7, **kw) == out  # deterministic for a seed
    assert fn(TEXT, 0.25, 8, **kw) != out  # another seed, other words (zero weights tie: seeded)
    assert fn(TEXT, 0.0, 7, **kw) == TEXT


def test_char_typo_is_one_edit_per_word():
    out = PERTURBATIONS["char_typos"](TEXT, 1.0, 3).split()
    for a, b in zip(TEXT.split(), out, strict=True):
        assert abs(len(a) - len(b)) <= 1 and a != b
        if len(a) == len(b):  # substitution (1 position) or adjacent swap (2 positions)
            assert sum(x != y for x, y in zip(a, b, strict=True)) in (1, 2)
    single = PERTURBATIONS["char_typos"]("a b c d", 1.0, 0).split()
    assert len(single) == 4 and all(w for w in single)  # 1-letter words never vanish


def test_word_deletion_removes_exactly_n_and_keeps_order():
    words = TEXT.split()
    out = word_deletion(TEXT, 0.3, 11).split()
    assert len(out) == 20 - n_changed(20, 0.3) == 14
    it = iter(words)
    assert all(w in it for w in out)  # an in-order subsequence: the survivors are untouched
    assert word_deletion(TEXT, 0.3, 12) != word_deletion(TEXT, 0.3, 11)


def test_word_swap_picks_a_neighbour_in_frequency_rank():
    out = PERTURBATIONS["word_swap"](TEXT, 0.5, 5, vocab_by_frequency=VOCAB, window=3).split()
    swaps = [(a, b) for a, b in zip(TEXT.split(), out, strict=True) if a != b]
    assert len(swaps) == 10
    for a, b in swaps:
        assert 0 < abs(VOCAB.rank[a] - VOCAB.rank[b]) <= 3
    assert VOCAB[0] == "tok39x" and VOCAB[-1] == "tok0x"  # most frequent first


def test_mask_top_words_removes_exactly_the_highest_abs_weight_words():
    text = "The movie was Great, not awful; the plot dull."
    weights = {"great": 2.0, "awful": -3.0, "dull": -1.5, "plot": 0.1, "the": 0.01}
    out = mask_top_words(text, 0.0, 0, weights=weights, k=3, placeholder="<unk>").split()
    assert out == ["The", "movie", "was", "<unk>", "not", "<unk>", "the", "plot", "<unk>"]
    by_fraction = mask_top_words(text, 2 / 9, 0, weights=weights, placeholder="[REMOVED]")
    assert by_fraction == "The movie was [REMOVED] not [REMOVED] the plot dull."  # 2 of 9 words
    assert mask_top_words(text, 0.0, 0, weights=weights, k=3) == "The movie was not the plot"  # default: deleted
    assert mask_top_words(text, 2 / 9, 0, weights=weights) == "The movie was not the plot dull."


def test_mask_top_words_gives_every_model_the_same_text_of_trained_tokens(tmp_path):
    """Issue 37: the default (eval.mask_placeholder=delete) hands every model one perturbed text, and
    no untrained special id (the BPE's <unk>, which the old placeholder produced) reaches a neural model."""
    from diffusion_lab.data.sources import SyntheticSentimentSource
    from diffusion_lab.data.tokenizer import TrainedBPE, encode_texts
    from diffusion_lab.evaluation.suite import robustness_section
    from tests.conftest import GPT2_TOKENIZER, compose

    placeholder = compose([], tmp_path).eval.mask_placeholder
    assert placeholder == "delete"
    splits = SyntheticSentimentSource(num_train=200, num_val=10, num_test=24).load(0)
    texts, labels = list(splits.test["text"]), list(splits.test["label"])
    weights = {w: float(len(w)) for t in texts for w in t.lower().split()}  # every word weighs: top words exist

    class Recorder:  # stands in for RunModels: records what each model is given
        names = ["generative", "discriminative", "tfidf_lr"]

        def __init__(self):
            self.seen = []

        def score_all(self, batch):
            self.seen.append(list(batch))
            return {n: type("S", (), {"log_joint": torch.zeros(len(batch), 2)})() for n in self.names}

    models = Recorder()
    clean = models.score_all(texts)
    models.seen.clear()
    robustness_section(models, texts, labels, clean, dict.fromkeys(models.names, 1.0),
                       {"mask_top_words": {"weights": weights, "placeholder": placeholder}}, [0.2, 0.4], seed=0)
    assert len(models.seen) == 2  # one call per strength, scoring every model on the same texts
    perturbed = [t for batch in models.seen for t in batch]
    assert all(len(p.split()) < len(t.split()) for p, t in zip(perturbed, texts * 2, strict=True))

    bpe = TrainedBPE(vocab_size=300).build(splits.train["text"], tmp_path / "tok")
    tokenizers = [bpe]
    if (GPT2_TOKENIZER / "tokenizer.json").is_file():
        from transformers import AutoTokenizer

        tokenizers.append(AutoTokenizer.from_pretrained(str(GPT2_TOKENIZER)))
    for tok in tokenizers:
        ids = {i for row in encode_texts(tok, perturbed, 64) for i in row}
        assert tok.unk_token_id not in ids and not ids & set(tok.all_special_ids), tok.name_or_path
    old = perturb(texts, "mask_top_words", 0.2, 0, weights=weights, placeholder="<unk>")
    assert bpe.unk_token_id in {i for row in encode_texts(bpe, old, 64) for i in row}  # what the fix removes


def test_perturb_is_deterministic_with_per_item_seeds():
    texts = [TEXT, TEXT, TEXT]
    a = perturb(texts, "word_deletion", 0.5, seed=1)
    assert a == perturb(texts, "word_deletion", 0.5, seed=1)
    assert len(set(a)) == 3  # same text, different item index: different deletions
    assert a != perturb(texts, "word_deletion", 0.5, seed=2)
    with pytest.raises(KeyError):
        perturb(texts, "nope", 0.5, seed=1)


def test_ood_auroc_and_fpr_perfect_random_and_loglik_scale():
    perfect = ood_metrics(torch.arange(10.0, 20.0), torch.arange(0.0, 10.0))
    assert perfect == {"auroc": pytest.approx(1.0), "fpr_at_95_tpr": 0.0, "n_in": 10, "n_out": 10}
    # summed log-likelihoods: a sigmoid would saturate these into ties; ranks keep them apart
    loglik = ood_metrics(-500.0 - torch.rand(50), -640.0 - torch.rand(50))
    assert loglik["auroc"] == pytest.approx(1.0) and loglik["fpr_at_95_tpr"] == 0.0
    g = torch.Generator().manual_seed(0)
    rand = ood_metrics(torch.randn(2000, generator=g), torch.randn(2000, generator=g))
    assert abs(rand["auroc"] - 0.5) < 0.05
    # keeping >= 95% of in = {1..20} needs threshold <= 2; then out = {21} of {0.5, 21} passes
    hand = ood_metrics(torch.arange(1.0, 21.0), torch.tensor([0.5, 21.0]))
    assert hand["fpr_at_95_tpr"] == pytest.approx(0.5)


def test_length_matching_equalises_histograms():
    rng = np.random.default_rng(0)
    li, lo = rng.normal(50, 10, 400).round(), rng.normal(65, 10, 300).round()
    edges = np.histogram_bin_edges(np.concatenate([li, lo]), bins=8)
    ii, oo = length_matched_indices(li, lo, seed=3, bins=8)
    assert len(ii) == len(oo) > 50 and len(set(ii)) == len(ii)
    assert np.array_equal(np.histogram(li[ii], edges)[0], np.histogram(lo[oo], edges)[0])
    assert length_matched_indices(li, lo, seed=3, bins=8) == (ii, oo)


def test_energy_and_max_softmax_scores():
    z = torch.tensor([[1.0, 2.0, 3.0], [-700.0, -702.0, -710.0]])
    assert torch.allclose(energy_score(z), torch.logsumexp(z.double(), 1))
    assert torch.allclose(energy_score(z, T=2.0), 2 * torch.logsumexp(z.double() / 2, 1))
    assert max_softmax_score(z)[0].item() == pytest.approx(math.exp(3) / sum(math.exp(v) for v in (1, 2, 3)))


def _bag_of_words_proba(batch):
    weights = {"good": 1.0, "great": 1.5, "bad": -1.0}
    s = torch.tensor([sum(weights.get(t, 0.0) for t in toks) for toks in batch])
    p = torch.sigmoid(s)
    return torch.stack([1 - p, p], 1)


def test_deletion_curve_oracle_beats_random():
    rng = np.random.default_rng(0)
    tokens = [
        list(rng.choice(["good", "great", "the", "a", "film", "plot", "of", "it"], 12)) for _ in range(30)
    ]
    pred = _bag_of_words_proba(tokens).argmax(1)
    weights = {"good": 1.0, "great": 1.5, "bad": -1.0}
    # oracle: each token's weight toward the predicted class
    attributions = [
        [weights.get(t, 0.0) * (1 if c == 1 else -1) for t in toks]
        for toks, c in zip(tokens, pred, strict=True)
    ]
    out = deletion_curve(_bag_of_words_proba, tokens, attributions, pred, ks=[0, 2, 4], seed=0)
    assert out["ks"] == [0, 2, 4] and out["n"] == 30
    assert out["attributed"][0] == pytest.approx(out["original_prob"]) == pytest.approx(out["random"][0])
    assert out["attributed"][1] < out["random"][1] and out["attributed"][2] < out["random"][2]
    assert out["attributed"][2] < out["attributed"][1] < out["attributed"][0]
    only_random = deletion_curve(
        _bag_of_words_proba, tokens, attributions, pred, ks=[2], seed=0, baseline="random"
    )
    assert "attributed" not in only_random and only_random["random"] == [out["random"][1]]


def test_heatmap_and_report_escape_script(tmp_path):
    evil = "<script>alert(1)</script>"
    heat = token_heatmap_html(["fine", evil], [0.5, -1.0])
    assert evil not in heat and "&lt;script&gt;" in heat
    assert heat.count("<span") == 2 and "rgba(178, 24, 43, 1.000)" in heat
    png = tmp_path / "x.png"
    Image.new("RGB", (4, 4), "red").save(png)
    report = self_contained_report(evil, [(evil, heat)], {evil: png})
    assert evil not in report and "&lt;script&gt;" in report
    assert "data:image/png;base64," in report and "http" not in report and "<link" not in report


def test_suite_sections_on_known_scores():
    from diffusion_lab.evaluation.models import Scores
    from diffusion_lab.evaluation.suite import calibration_section, ood_section

    g = torch.Generator().manual_seed(0)
    joint_in = torch.randn(40, 2, generator=g, dtype=torch.float64) - 50.0
    joint_out = joint_in - 30.0  # log p(x) = logsumexp_y lower by 30 nats for every OOD item
    len_in, len_out = [10] * 20 + [30] * 20, [10] * 10 + [30] * 30
    sec = ood_section({"generative": Scores(joint_in, len_in), "discriminative": Scores(joint_in, len_in)},
                      {"generative": Scores(joint_out, len_out), "discriminative": Scores(joint_out, len_out)},
                      None, None, len_in, len_out, "toy", seed=0, bins=2)
    gen = sec["generative"]
    assert gen["log_px"]["all"]["auroc"] == 1.0 and gen["log_px"]["all"]["fpr_at_95_tpr"] == 0.0
    assert gen["log_px"]["all"]["auroc_ci95"] == pytest.approx([1.0, 1.0])
    low, high = gen["max_softmax"]["all"]["auroc_ci95"]
    assert low < gen["max_softmax"]["all"]["auroc"] < high
    assert gen["log_px"]["length_matched"]["n_in"] == gen["log_px"]["length_matched"]["n_out"] == 30
    assert 0.3 < gen["max_softmax"]["all"]["auroc"] < 0.7  # the posterior does not see the shift
    assert sec["discriminative"]["energy"]["all"]["auroc"] == 1.0 and "log_px" not in sec["discriminative"]
    labels = (joint_in[:, 1] > joint_in[:, 0]).long()  # always right, so scaling sharpens (T < 1)
    cal, temps = calibration_section({"m": Scores(joint_in, len_in)}, {"m": Scores(joint_in, len_in)}, labels,
                                     labels, seed=3)
    assert cal["m"]["predictions_changed_by_scaling"] == 0 and temps["m"] < 1.0
    assert cal["m"]["val_nll_after"] < cal["m"]["val_nll_before"] and cal["m"]["seed"] == 3

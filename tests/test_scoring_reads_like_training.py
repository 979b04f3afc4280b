"""Scoring text (``RunModels``: task=evaluate, the classifier judge, synthesis scoring) reads it exactly as
the run's data module does: the same ids (``data.tokenizer.encode_texts``) and the same window rows and
batches as its test loader, for truncated short texts and for long documents under ``data.long_text=windows``."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from diffusion_lab.classifiers.per_class_layout import PerClassLayout
from diffusion_lab.evaluation.models import RunModels
from tests.conftest import TINY, TableBackbone, compose

WINDOW = 8


WORDS = ("a the film plot actor scene great dull slow fine story ending music long short bad good "
         "script camera light dark funny sad").split()


def _texts(n: int, lo: int, hi: int, seed: int) -> list[str]:
    g = torch.Generator().manual_seed(seed)
    return [" ".join(WORDS[int(i)] for i in torch.randint(0, len(WORDS), (int(k),), generator=g))
            for k in torch.randint(lo, hi, (n,), generator=g)]


def _dm(tmp_path, long_text: str, overlap: int = 0):
    """A data module over texts of 1-4 words (shorter than the window) and 12-40 words (several windows)."""
    import json

    from hydra.utils import instantiate

    for name, texts in (("train", _texts(60, 1, 40, 0)), ("test", _texts(6, 1, 5, 1) + _texts(8, 12, 40, 2))):
        rows = [{"text": t, "label": ["neg", "pos"][i % 2]} for i, t in enumerate(texts)]
        (tmp_path / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    cfg = compose([*[o for o in TINY if o.startswith("tokenizer.")], "dataset=text_files",
                   f"dataset.train_path={tmp_path / 'train.jsonl'}", f"dataset.test_path={tmp_path / 'test.jsonl'}",
                   f"data.max_length={WINDOW}", f"data.long_text={long_text}", f"data.window_overlap={overlap}"])
    dm = instantiate(cfg.datamodule)
    dm.setup()
    return dm


def _stub(num_classes=2):
    return SimpleNamespace(layout=PerClassLayout(), autoregressive=False, num_classes=num_classes,
                           hparams=SimpleNamespace(num_draws=2))


@pytest.mark.parametrize("long_text,overlap", [("truncate", 0), ("windows", 0), ("windows", 3)])
def test_scoring_gives_the_test_loaders_ids_windows_and_batches(tmp_path, long_text, overlap):
    dm = _dm(tmp_path, long_text, overlap)
    test = dm.datasets["test"]
    texts, lengths = list(test["text"]), [len(dm.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in test["text"]]
    assert min(lengths) <= WINDOW < max(lengths)  # short texts and long ones
    models = RunModels(_stub(), {}, dm.tokenizer, WINDOW, batch_size=4, num_draws=2, infill=False,
                       long_text=long_text, window_overlap=overlap)
    ids = models.encode(texts)
    assert ids == [list(x) for x in test["input_ids"]] == dm.tokenize(texts)
    assert [len(x) for x in ids] == (lengths if long_text == "windows" else [min(n, WINDOW) for n in lengths])
    ours, loader = list(models.batch_dicts(ids)), list(dm.dataloader("test", batch_size=4))
    assert len(ours) == len(loader)
    for a, b in zip(ours, loader, strict=True):
        for key in ("input_ids", "attention_mask", "doc_ids", "score_mask"):
            assert torch.equal(a[key], b[key]), key
    assert (long_text == "windows") == any(len(b["doc_ids"].unique()) < len(b["doc_ids"]) for b in ours)


def test_windowed_scores_equal_the_test_loaders_draw_for_draw(tmp_path):
    """One scoring path: the generative classifier's log joint from texts equals ``predict`` on the loader."""
    from diffusion_lab.classifiers.generative import GenerativeClassifier
    from diffusion_lab.classifiers.predict import predict

    dm = _dm(tmp_path, "windows", 2)
    vocab, mask = len(dm.tokenizer), dm.mask_token_id

    class TableLM(nn.Module):
        def __init__(self, seed):
            super().__init__()
            t = torch.randn(vocab, generator=torch.Generator().manual_seed(seed))
            t[mask] = -30.0
            self.backbone = TableBackbone(torch.log_softmax(t, 0))

    clf = GenerativeClassifier([TableLM(0), TableLM(1)], "per_class", 2, [math.log(0.5)] * 2, mask,
                               optimizer=None, num_draws=3).eval()
    models = RunModels(clf, {}, dm.tokenizer, WINDOW, batch_size=4, infill=False, long_text="windows",
                       window_overlap=2, seed=5)
    scored = models.score("generative", texts=list(dm.datasets["test"]["text"]), keep_token_scores=True)
    loaded = predict(clf, dm.dataloader("test", batch_size=4), seed=5, num_draws=3, keep_token_scores=True)
    assert torch.equal(scored.log_joint, loaded.log_joint)
    assert scored.lengths == list(dm.datasets["test"]["length"]) == [t.shape[-1] for t in scored.token_scores]


def test_for_run_reads_the_runs_text_policy():
    windows = compose(["task=train_classifier", "data.long_text=windows", "data.window_overlap=2"])
    models = RunModels.for_run(windows, _stub(), {}, SimpleNamespace(pad_token_id=0, unk_token_id=3), batch_size=4)
    assert (models.long_text, models.window_overlap, models.max_length) == ("windows", 2, windows.data.max_length)
    assert not models.tfidf_window  # a windows run fits TF-IDF on the full text (train_classifier)
    truncate = compose(["task=train_classifier", "task.tfidf_full_text=false"])
    assert RunModels.for_run(truncate, _stub(), {}, SimpleNamespace(pad_token_id=0, unk_token_id=3)).tfidf_window
    with pytest.raises(ValueError, match="data.long_text='slide'"):
        RunModels(_stub(), {}, SimpleNamespace(pad_token_id=0, unk_token_id=3), 8, long_text="slide")


def test_gradient_x_input_of_a_windowed_document_is_exact():
    """Two windows of one document: logits are the scored-token-weighted mean of the windows' (as
    ``predict`` gives them); each scored token's attribution is its share of that mean's margin."""
    from diffusion_lab.evaluation.explain import gradient_x_input

    torch.manual_seed(0)
    emb, head = nn.Embedding(12, 4), nn.Linear(4, 2)

    class Bag(nn.Module):
        backbone = SimpleNamespace(input_embeddings=lambda: emb)

        def forward(self, ids, att, inputs_embeds=None):
            return head((inputs_embeds * att[..., None]).sum(1))

    x = torch.randint(0, 12, (3, 5), generator=torch.Generator().manual_seed(0))
    att = torch.ones_like(x)
    att[1, 4:] = 0
    score = att.bool().clone()
    score[1, :2] = False  # window 2 of document 0: two context tokens, two scored
    logits, attrs = gradient_x_input(Bag(), x, att, torch.tensor([0, 0, 1]), score)
    z = head((emb(x) * att[..., None]).sum(1)).detach()
    n = score.sum(1).float()
    assert torch.allclose(logits[0].float(), (z[0] * n[0] + z[1] * n[1]) / (n[0] + n[1]), atol=1e-5)
    assert torch.allclose(logits[1].float(), z[2], atol=1e-6)
    a = int(logits[0].argmax())
    w = (head.weight[a] - head.weight[1 - a]).detach()
    share = torch.cat([(emb(x[0]) @ w) * n[0], (emb(x[1, 2:4]) @ w) * n[1]]).detach() / (n[0] + n[1])
    assert len(attrs[0]) == 7 and torch.allclose(torch.tensor(attrs[0]), share, atol=1e-5)
    assert len(attrs[1]) == 5

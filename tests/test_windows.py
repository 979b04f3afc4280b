"""Whole documents (data.long_text=windows): every token scored once, random training windows, batches of whole documents."""

from __future__ import annotations

import pytest
import torch

from diffusion_lab.data.batching import PadCollator
from diffusion_lab.data.windows import RandomWindows, document_batches, document_windows, window_rows


@pytest.mark.parametrize("n,window,overlap", [(5, 8, 0), (8, 8, 3), (30, 8, 0), (30, 8, 3), (31, 8, 7), (9, 8, 2)])
def test_windows_score_every_token_exactly_once_with_full_context(n, window, overlap):
    windows = document_windows(n, window, overlap)
    scored = [i for start, end, score_from in windows for i in range(start + score_from, end)]
    assert scored == list(range(n))  # once each, in order
    assert all(end - start <= window for start, end, _ in windows)
    if n > window:  # every window is full: the last one is aligned to the end of the document
        assert all(end - start == window for start, end, _ in windows)
        assert all(score_from >= overlap for _, _, score_from in windows[1:])


def test_bad_overlap_is_a_clear_error():
    with pytest.raises(ValueError, match="data.window_overlap=8"):
        document_windows(20, 8, 8)


def test_eval_batches_hold_whole_documents_and_mark_the_scored_tokens():
    docs = [list(range(20)), [1, 2, 3], list(range(9))]
    rows = window_rows(docs, [0, 1, 0], window=8, overlap=2)
    batches = document_batches([r["doc"] for r in rows], max_rows=3)
    for batch in batches:  # no document is split across batches
        docs_in = {rows[i]["doc"] for i in batch}
        assert all(sum(r["doc"] == d for r in rows) == sum(rows[i]["doc"] == d for i in batch) for d in docs_in)
    out = PadCollator(0)([rows[i] for i in range(len(rows))])
    assert out["doc_ids"].tolist() == [r["doc"] for r in rows]
    per_doc = torch.zeros(3, dtype=torch.long).index_add_(0, out["doc_ids"], out["score_mask"].sum(1))
    assert per_doc.tolist() == [20, 3, 9]  # scored tokens add up to each document's length


def test_pad_collator_pads_as_transformers_does_and_adds_what_the_library_lacks():
    """On labelled rows ``PadCollator`` gives exactly transformers' ``DataCollatorWithPadding`` (longest row,
    right padding). It stays the project's for what the library does not do: ``doc`` / ``score_from`` ->
    ``doc_ids`` / ``score_mask``, ``NO_LABEL`` for unlabelled rows (the library drops ``labels``), right
    padding whatever the tokenizer's ``padding_side``, and it needs only the pad id."""
    from tokenizers import Tokenizer, models
    from transformers import DataCollatorWithPadding, PreTrainedTokenizerFast

    from diffusion_lab.data.splits import NO_LABEL

    vocab = {"<pad>": 0, "<unk>": 1}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
                                  pad_token="<pad>", unk_token="<unk>")
    library = DataCollatorWithPadding(tok, return_tensors="pt")
    rows = window_rows([list(range(2, 22)), [3, 4, 5], list(range(2, 11))], [0, 1, 0], window=8, overlap=2)
    ours = PadCollator(0)(rows)
    theirs = library([{"input_ids": r["input_ids"], "label": r["label"]} for r in rows])
    for key in ("input_ids", "attention_mask", "labels"):
        assert ours[key].dtype == theirs[key].dtype and ours[key].equal(theirs[key]), key
    raw = library(rows)  # the evaluation rows as they are: their extra keys pass through unconverted
    assert "doc_ids" not in raw and "score_mask" not in raw and ours["score_mask"].sum() == 20 + 3 + 9
    unlabelled = [{"input_ids": [5, 6]}, {"input_ids": [7]}]
    assert PadCollator(0)(unlabelled)["labels"].tolist() == [NO_LABEL] * 2 and "labels" not in library(unlabelled)


def test_training_windows_are_random_reproducible_and_change_with_the_epoch():
    rows = [{"input_ids": list(range(100)), "label": 0}, {"input_ids": [1, 2], "label": 1}]
    ds = RandomWindows(rows, window=10, seed=0)
    first = [ds[0]["input_ids"] for _ in range(2)]
    assert first[0] == first[1] and len(first[0]) == 10  # same (seed, epoch, row): same window
    assert ds[1]["input_ids"] == [1, 2]  # short documents are untouched
    starts = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        starts.add(ds[0]["input_ids"][0])
    assert len(starts) > 1  # not always the first window


def _dm(long_text, **extra):
    from hydra.utils import instantiate

    from tests.conftest import TINY, compose

    cfg = compose([*[o for o in TINY if o.startswith(("dataset.", "tokenizer."))], "data.max_length=8",
                   f"data.long_text={long_text}", *extra])
    dm = instantiate(cfg.datamodule)
    dm.setup()
    return dm


def test_datamodule_windows_cover_whole_documents_and_truncate_keeps_one_window():
    windows, truncate = _dm("windows"), _dm("truncate")
    lengths = windows.datasets["test"]["length"]
    assert max(lengths) > 8  # the test needs documents longer than the window
    scored = torch.zeros(len(lengths), dtype=torch.long)
    for batch in windows.dataloader("test", batch_size=4):
        scored.index_add_(0, batch["doc_ids"], batch["score_mask"].sum(1))
        assert batch["input_ids"].shape[1] <= 8
    assert scored.tolist() == lengths
    stats = windows.window_stats("test")
    assert stats["longer_than_window"] == sum(n > 8 for n in lengths) and stats["long_text"] == "windows"
    rows = sum(len(b["labels"]) for b in truncate.dataloader("test"))
    assert rows == len(truncate.datasets["test"]) and max(truncate.datasets["test"]["length"]) <= 8
    train = next(iter(windows.dataloader("train", shuffle=True, batch_size=64)))
    assert train["input_ids"].shape[1] <= 8  # training reads one window of each long document

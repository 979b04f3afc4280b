"""Data layer: sources (cleaning, splits, errors), tokenizers, the datamodule's batches, dataset configs."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from diffusion_lab.data.batching import BucketBatchSampler
from diffusion_lab.data.datamodule import TextDataModule
from diffusion_lab.data.sources import (
    ImdbSource,
    RtPolaritySource,
    SyntheticSentimentSource,
    TextFilesSource,
    Wikitext2Source,
)
from diffusion_lab.data.splits import NO_LABEL
from diffusion_lab.data.tokenizer import PretrainedTokenizer, TrainedBPE
from tests.conftest import DATA_DIR, REPO

needs_data = pytest.mark.skipif(not (DATA_DIR / "imdb" / "train.jsonl.gz").is_file(), reason=f"no shared data in {DATA_DIR}")
needs_trec = pytest.mark.skipif(not (DATA_DIR / "trec" / "train.jsonl").is_file(), reason=f"no trec/ in {DATA_DIR}")
needs_gpt2 = pytest.mark.skipif(not (DATA_DIR / "gpt2_tokenizer").is_dir(), reason=f"no gpt2_tokenizer in {DATA_DIR}")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return path


def write_csv(path: Path, rows: list[dict], sep: str = ",") -> Path:
    path.write_text("text" + sep + "label\n" + "".join(f"{r['text']}{sep}{r['label']}\n" for r in rows))
    return path


def labelled_rows(n: int, labels=("neg", "pos", "mid"), prefix="row") -> list[dict]:
    return [{"text": f"{prefix} number {i} says {labels[i % len(labels)]}", "label": labels[i % len(labels)]} for i in range(n)]


# ---- synthetic ----------------------------------------------------------------------------------
def test_synthetic_is_deterministic_balanced_and_disjoint():
    a = SyntheticSentimentSource(num_train=200, num_val=40, num_test=60).load(seed=3)
    b = SyntheticSentimentSource(num_train=200, num_val=40, num_test=60).load(seed=3)
    c = SyntheticSentimentSource(num_train=200, num_val=40, num_test=60).load(seed=4)
    assert a.train["text"] == b.train["text"] and a.test["label"] == b.test["label"]
    assert a.train["text"] != c.train["text"]
    assert a.label_names == ["negative", "positive"]
    assert Counter(a.train["label"]) == {0: 100, 1: 100}
    assert len(a.validation) == 40 and len(a.test) == 60
    assert not set(a.test["text"]) & set(a.train["text"])
    assert all(5 <= len(t.split()) <= 25 for t in a.train["text"])


def test_synthetic_three_classes_with_negation():
    s = SyntheticSentimentSource(num_train=300, num_val=30, num_test=30, num_classes=3).load(seed=0)
    assert s.label_names == ["negative", "neutral", "positive"] and s.num_classes == 3
    assert Counter(s.train["label"]) == {0: 100, 1: 100, 2: 100}
    negated = [(t, y) for t, y in zip(s.train["text"], s.train["label"], strict=True) if " not good" in t]
    assert negated and all(y == 0 for _, y in negated)  # "not good" is negative, so words alone do not decide


# ---- text files ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "jsonl.gz", "json"])
def test_text_files_formats_and_string_label_mapping(tmp_path, fmt):
    train, test = labelled_rows(60), labelled_rows(15, prefix="test")
    paths = []
    for name, rows in (("train", train), ("test", test)):
        p = tmp_path / f"{name}.{fmt}"
        if fmt in ("csv", "tsv"):
            write_csv(p, rows, "\t" if fmt == "tsv" else ",")
        elif fmt == "json":
            p.write_text(json.dumps(rows))
        else:
            write_jsonl(p, rows)
        paths.append(p)
    s = TextFilesSource(paths[0], paths[1], val_size=0.2).load(seed=0)
    assert s.label_names == ["mid", "neg", "pos"]  # sorted
    assert len(s.train) == 48 and len(s.validation) == 12 and len(s.test) == 15
    assert Counter(s.validation["label"]) == {0: 4, 1: 4, 2: 4}  # stratified
    for t, y in zip(s.test["text"], s.test["label"], strict=True):
        assert t.endswith(s.label_names[y])


def test_text_files_label_names_fix_order_and_int_labels(tmp_path):
    rows = labelled_rows(30, labels=("pos", "neg"))
    tr, te = write_jsonl(tmp_path / "tr.jsonl", rows), write_jsonl(tmp_path / "te.jsonl", labelled_rows(6, ("pos", "neg"), "t"))
    s = TextFilesSource(tr, te, val_size=4, label_names=["neg", "pos"]).load(seed=0)
    assert s.label_names == ["neg", "pos"]
    assert all(t.endswith(s.label_names[y]) for t, y in zip(s.train["text"], s.train["label"], strict=True))
    ints = [{"text": f"text {i}", "label": i % 4} for i in range(40)]
    s = TextFilesSource(write_jsonl(tmp_path / "i.jsonl", ints), write_jsonl(tmp_path / "it.jsonl", [{"text": "t", "label": 3}]), val_size=4).load(0)
    assert s.label_names == ["0", "1", "2", "3"]


def test_txt_files_are_unlabelled(tmp_path):
    (tmp_path / "tr.txt").write_text("\n".join(f"line {i}" for i in range(20)) + "\n\n")
    (tmp_path / "te.txt").write_text("a test line\nanother one\n")
    s = TextFilesSource(tmp_path / "tr.txt", tmp_path / "te.txt", val_size=5).load(seed=0)
    assert s.label_names == [] and set(s.train["label"]) == {NO_LABEL} and len(s.train) == 15
    assert s.stats["empty_skipped"] == 1


def test_text_files_clean_dedupe_and_count(tmp_path):
    rows = labelled_rows(20, labels=("a", "b")) + [{"text": "   ", "label": "a"}, {"text": "", "label": "b"}]
    rows += [{"text": "row   number 0 says a", "label": "a"}]  # duplicate once whitespace is normalised
    test = [rows[1], {"text": "a fresh test text", "label": "b"}]  # rows[1] leaks from train
    s = TextFilesSource(write_jsonl(tmp_path / "tr.jsonl", rows), write_jsonl(tmp_path / "te.jsonl", test), val_size=4).load(0)
    assert s.stats["empty_skipped"] == 2
    assert s.stats["duplicates_removed"]["within_train"] == 1
    assert s.stats["duplicates_removed"]["test_in_train"] == 1 and s.test["text"] == ["a fresh test text"]
    assert len(s.train) + len(s.validation) == 20 and not set(s.validation["text"]) & set(s.train["text"])


def test_text_files_errors_name_problem_and_fix(tmp_path):
    rows = labelled_rows(20, labels=("a", "b"))
    tr = write_jsonl(tmp_path / "tr.jsonl", rows)
    with pytest.raises(FileNotFoundError, match=r"test file not found: .*nope\.jsonl.*dataset\.test_path"):
        TextFilesSource(tr, tmp_path / "nope.jsonl").load(0)
    with pytest.raises(ValueError, match=r"no text column 'body'; columns found: \['label', 'text'\]"):
        TextFilesSource(tr, tr, text_column="body").load(0)
    with pytest.raises(ValueError, match=r"no label column 'y'"):
        TextFilesSource(tr, tr, label_column="y").load(0)
    te = write_jsonl(tmp_path / "te.jsonl", [{"text": "x", "label": "c"}])
    with pytest.raises(ValueError, match=r"test: labels \['c'\] are not among the declared classes"):
        TextFilesSource(tr, te).load(0)
    te = write_jsonl(tmp_path / "te.jsonl", [{"text": "x", "label": "a"}])
    with pytest.raises(ValueError, match=r"classes \['z'\] have no training examples"):
        TextFilesSource(tr, te, label_names=["a", "b", "z"]).load(0)
    with pytest.raises(ValueError, match=r"test split is empty .*\(20 rows were exact copies of training texts"):
        TextFilesSource(tr, tr).load(0)
    write_jsonl(tmp_path / "empty.jsonl", [{"text": " ", "label": "a"}])
    with pytest.raises(ValueError, match=r"test file .*empty.jsonl: all 1 texts in column 'text' are empty or "
                                         r"whitespace-only \(e.g. line 1\)"):
        TextFilesSource(tr, tmp_path / "empty.jsonl").load(0)


def test_imdb_missing_files_say_where_and_how(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path}/train.jsonl.gz.*DIFFUSION_LAB_DATA_DIR"):
        ImdbSource(tmp_path, hub_id=None).load(0)


# ---- real shared data ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def imdb():
    return ImdbSource(DATA_DIR / "imdb", val_size=200, max_train=1000).load(seed=0)


@needs_data
def test_imdb_real_data_is_shuffled_cleaned_and_deduplicated(imdb):
    assert imdb.label_names == ["negative", "positive"]
    assert len(set(imdb.train["label"][:20])) == 2 and len(set(imdb.test["label"][:20])) == 2
    counts = Counter(imdb.train["label"])
    assert sum(counts.values()) == 1000 and abs(counts[0] - counts[1]) <= 2  # stratified max_train subset
    assert len(imdb.validation) == 200
    assert not any("<br" in t for t in list(imdb.train["text"]) + imdb.test["text"][:2000])
    dups = imdb.stats["duplicates_removed"]
    assert dups["test_in_train"] == 123 and dups["within_train"] >= 96
    assert dups["total"] == sum(v for k, v in dups.items() if k != "total")
    assert len(imdb.test) == 25000 - 123
    assert not set(imdb.validation["text"]) & set(imdb.train["text"])
    assert not set(imdb.test["text"]) & (set(imdb.train["text"]) | set(imdb.validation["text"]))


@needs_data
def test_rt_polarity_and_wikitext_real():
    rt = RtPolaritySource(DATA_DIR / "rt_polarity", val_size=500, test_size=1000).load(seed=1)
    assert len(rt.validation) == 500 and len(rt.test) == 1000 and len(set(rt.train["label"][:20])) == 2
    wiki = Wikitext2Source(DATA_DIR / "wikitext2", train_size=50, val_size=20).load(seed=0)
    assert wiki.label_names == [] and set(wiki.test["label"]) == {NO_LABEL}
    assert len(wiki.test) > 1500 and not any(t.startswith("= ") and t.endswith(" =") for t in wiki.test["text"])


TREC = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]


def trec_source(tmp_path, *overrides):
    from tests.conftest import compose as compose_run

    return instantiate(compose_run(["dataset=trec", *overrides], tmp_path).dataset)


@needs_trec
def test_trec_loads_six_classes_with_honest_splits(tmp_path):
    splits = trec_source(tmp_path).load(seed=0)
    assert splits.label_names == TREC  # class ids in the order of the config (alphabetical, trec/README.md)
    dups = splits.stats["duplicates_removed"]
    assert dups["within_train"] == 72 and dups["test_in_train"] == 10  # removed as for every source
    assert splits.stats["sizes"] == {"train": 5452 - 72 - 500, "validation": 500, "test": 500 - 10}
    assert Counter(splits.test["label"]) == {1: 133, 5: 111, 2: 94, 4: 80, 3: 65, 0: 7}
    assert set(splits.validation["label"]) == set(range(6))  # stratified: even ABBR (86 questions) is there
    again = trec_source(tmp_path).load(seed=1)
    assert again.test["text"] != splits.test["text"] and sorted(again.test["text"]) == sorted(splits.test["text"])
    assert set(again.validation["text"]) != set(splits.validation["text"])  # validation carved with the seed
    small = trec_source(tmp_path, "dataset.max_train=60").load(seed=0)
    assert len(small.train) == 60 and set(small.train["label"]) == set(range(6))  # stratified subset
    assert small.validation["text"] == splits.validation["text"] and small.test["text"] == splits.test["text"]


def test_trec_missing_files_name_the_path_and_the_data_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path}/trec/train.jsonl; .*DIFFUSION_LAB_DATA_DIR"):
        trec_source(tmp_path, f"data_dir={tmp_path}").load(seed=0)


@needs_trec
def test_tiny_classifier_trains_on_trec(tiny_run):
    results, out = tiny_run(["task=train_classifier", "dataset=trec", "dataset.max_train=60", "dataset.val_size=24",
                             "task.val_draws=1", "classifier.num_draws=1", "eval.max_test=12",
                             "task.baselines=[tfidf_lr]"])
    saved = json.loads((out / "results.json").read_text())
    assert saved["label_names"] == TREC
    assert saved["models"]["generative"]["n"] == 12 and saved["models"]["tfidf_lr"]["n"] == 12
    assert saved["models"]["generative"]["forward_passes_per_example"] == 6  # one draw x six classes


# ---- tokenizers ---------------------------------------------------------------------------------
def test_trained_bpe_saves_and_reloads_identically(tmp_path):
    texts = SyntheticSentimentSource(num_train=300, num_val=10, num_test=10).load(0).train["text"]
    tok = TrainedBPE(vocab_size=300, min_frequency=2).build(texts, tmp_path / "tok")
    assert tok.mask_token == "<mask>" and tok.pad_token == "<pad>" and tok.bos_token == "<s>"
    assert {tok.mask_token_id, tok.pad_token_id} <= set(tok.all_special_ids) and len(tok) <= 300
    again = TrainedBPE(vocab_size=300).build(lambda: pytest.fail("must reuse the saved tokenizer"), tmp_path / "tok")
    sample = ["the movie was not good", "an unseen wórd ☃"]
    assert again(sample, add_special_tokens=False)["input_ids"] == tok(sample, add_special_tokens=False)["input_ids"]
    assert again.mask_token_id == tok.mask_token_id and len(again) == len(tok)


@needs_gpt2
def test_gpt2_tokenizer_loads_offline_and_gets_mask_and_pad(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = PretrainedTokenizer(DATA_DIR / "gpt2_tokenizer").build(None, tmp_path / "tok")
    assert len(tok) == 50259 and tok.mask_token_id == 50257 and tok.pad_token_id == 50258
    assert tok.pad_token_id != tok.eos_token_id
    assert tok("Hello world", add_special_tokens=False)["input_ids"] == [15496, 995]
    reloaded = PretrainedTokenizer("/does/not/matter").build(None, tmp_path / "tok")  # reused from save_dir
    assert reloaded.mask_token_id == 50257 and len(reloaded) == 50259


def test_pretrained_tokenizer_missing_folder_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer folder .*missing does not exist"):
        PretrainedTokenizer(tmp_path / "missing").build()


# ---- datamodule ---------------------------------------------------------------------------------
def make_dm(tmp_path, seed=0, **kw) -> TextDataModule:
    src = SyntheticSentimentSource(num_train=240, num_val=40, num_test=60)
    return TextDataModule(src, TrainedBPE(vocab_size=300), batch_size=8, eval_batch_size=16, seed=seed,
                          cache_dir=tmp_path / f"cache{seed}", **kw)


def test_datamodule_batches_are_dynamically_padded_and_deterministic(tmp_path):
    dm = make_dm(tmp_path, max_test=30)
    dm.setup("fit")
    assert dm.num_classes == 2 and dm.label_names == ["negative", "positive"]
    assert (tmp_path / "cache0" / "tokenizer" / "tokenizer.json").is_file()
    batches = list(dm.train_dataloader())
    assert sum(len(b["labels"]) for b in batches) == 240
    for b in batches:
        lengths = b["attention_mask"].sum(1)
        assert b["input_ids"].dtype == torch.long and b["input_ids"].shape[1] == lengths.max()
        assert (b["input_ids"][b["attention_mask"] == 0] == dm.pad_token_id).all()
        assert (b["input_ids"][b["attention_mask"] == 1] != dm.pad_token_id).all()
        assert (b["attention_mask"][:, :-1] >= b["attention_mask"][:, 1:]).all()  # right padding
    same = [b["input_ids"] for b in make_dm(tmp_path).train_dataloader()]
    assert all(torch.equal(a["input_ids"], b) for a, b in zip(batches, same, strict=True))
    test = list(dm.test_dataloader())
    assert sum(len(b["labels"]) for b in test) == 30 and Counter(torch.cat([b["labels"] for b in test]).tolist()) == {0: 15, 1: 15}
    assert dm.tokenize(["the movie was good"])[0] == dm.tokenizer("the movie was good", add_special_tokens=False)["input_ids"]


def test_datamodule_lm_use_unsup_adds_unlabelled_rows(tmp_path):
    rows = labelled_rows(30, labels=("a", "b"))
    tr, te = write_jsonl(tmp_path / "tr.jsonl", rows), write_jsonl(tmp_path / "te.jsonl", labelled_rows(6, ("a", "b"), "t"))
    src = TextFilesSource(tr, te, val_size=4)
    real_load = src.load

    def load_with_unsup(seed):
        s = real_load(seed)
        s.unsup = SyntheticSentimentSource(num_train=20, num_val=1, num_test=1).load(seed).train.map(lambda r: {"label": NO_LABEL})
        return s

    src.load = load_with_unsup
    dm = TextDataModule(src, TrainedBPE(vocab_size=300), batch_size=4, lm_use_unsup=True, max_length=6)
    labels = torch.cat([b["labels"] for b in dm.train_dataloader()])
    assert (labels == NO_LABEL).sum() == 20 and (labels >= 0).sum() == 26
    assert max(b["input_ids"].shape[1] for b in dm.train_dataloader()) <= 6  # truncation to max_length


def test_bucket_sampler_covers_all_rows_and_groups_lengths():
    lengths = list(range(100, 0, -1)) * 3
    sampler = BucketBatchSampler(lengths, batch_size=10, seed=0, bucket_batches=30)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(300)) and len(batches) == len(sampler) == 30
    assert max(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) <= 4
    assert list(sampler) == batches  # same epoch, same order
    sampler.sampler.set_epoch(1)  # where Lightning calls set_epoch: dataloader.batch_sampler.sampler
    assert list(sampler) != batches


def test_distributed_fallback_is_a_plain_shuffled_loader(tmp_path, monkeypatch):
    import diffusion_lab.data.datamodule as datamodule

    monkeypatch.setattr(datamodule, "_distributed", lambda trainer: True)
    loader = make_dm(tmp_path).train_dataloader()
    assert isinstance(loader.sampler, torch.utils.data.RandomSampler) and loader.batch_size == 8


def test_shard_batches_gives_every_rank_as_many_batches_and_covers_all():
    from diffusion_lab.data.datamodule import shard_batches

    batches = [[0], [1, 2], [3], [4, 5], [6]]
    ranks = [shard_batches(batches, r, 2) for r in range(2)]
    assert ranks == [[[0], [3], [6]], [[1, 2], [4, 5], [0]]]  # rank 1 repeats the first batch: equal counts
    assert sorted({i for r in ranks for b in r for i in b}) == list(range(7))
    assert shard_batches(batches, 0, 1) == batches


@pytest.mark.parametrize("long_text", ["truncate", "windows"])
def test_the_trainers_loaders_are_sharded_by_rank_and_scoring_reads_whole_splits(tmp_path, long_text):
    """Under DDP / FSDP the datamodule shards its own loaders (Lightning's sampler injection is off: it
    cannot enter the document batches of windowed evaluation); predict's ``dataloader(split)`` stays whole."""
    import types

    shards = []
    for rank in range(2):
        dm = make_dm(tmp_path, max_length=16, long_text=long_text)
        dm.setup("fit")
        dm.trainer = types.SimpleNamespace(global_rank=rank, world_size=2, strategy=None)
        train = dm.train_dataloader()
        assert isinstance(train.sampler, torch.utils.data.DistributedSampler)
        assert (train.sampler.rank, train.sampler.num_replicas, train.sampler.seed) == (rank, 2, dm.seed)
        shards.append([b["labels"].shape[0] for b in dm.val_dataloader()])
        whole = dm.dataloader("validation")
        rows = sum(b["labels"].shape[0] for b in whole)
    assert len(shards[0]) == len(shards[1])  # the same number of validation steps on every rank
    assert sum(shards[0]) + sum(shards[1]) >= rows and max(sum(shards[0]), sum(shards[1])) < rows
    assert rows == len(dm.eval_rows("validation"))


# ---- configs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["imdb", "rt_polarity", "trec", "wikitext2", "synthetic_sentiment",
                                  "synthetic_sentiment_3class", "text_files"])
def test_dataset_configs_instantiate(name):
    overrides = [f"+dataset={name}", f"+data_dir={DATA_DIR}", "+tokenizer=gpt2"]
    if name == "text_files":
        overrides += ["dataset.train_path=a.csv", "dataset.test_path=b.csv"]
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose(overrides=overrides)
    source = instantiate(cfg.dataset)
    assert source.name == name and hasattr(source, "load")
    assert instantiate(cfg.tokenizer).name_or_path == f"{DATA_DIR}/gpt2_tokenizer"

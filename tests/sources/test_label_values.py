"""Integer labels, the common case: written as YAML numbers, matched against the column as text."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from optkit.errors import RecipeError
from optkit.passes.finetune import FinetuneConfig, finetune
from optkit.recipe import DataSpec, recipe_from_dict
from optkit.sources.data import load_splits
from optkit.sources.model import resolve_model
from tests.conftest import context, make_rows


def _kept(i: int) -> bool:
    return i % 50 != 49  # every 50th row has no label


# What the file holds, counted from the rows themselves: '0' rotten, '1' fresh.
COUNTS = {
    "0": sum(label == "rotten" for i, (_, label) in enumerate(make_rows(200)) if _kept(i)),
    "1": sum(label == "fresh" for i, (_, label) in enumerate(make_rows(200)) if _kept(i)),
}


@pytest.fixture(scope="module")
def int_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Labels 0/1 with a few unlabelled rows, so pandas reads the column as floats (1.0), as real files do."""
    path = tmp_path_factory.mktemp("ints") / "reviews.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["review", "sentiment"])
        for i, (text, label) in enumerate(make_rows(200)):
            w.writerow([text, int(label == "fresh") if _kept(i) else ""])
    return path


def _spec(source: Path, labels: object) -> DataSpec:
    return DataSpec.model_validate(
        {
            "source": str(source),
            "text": "review",
            "label": "sentiment",
            "labels": labels,
            "splits": {"train": 120, "eval": 60, "calibration": 16},
        }
    )


def test_integer_labels_as_a_list_match_the_column_as_text(int_csv: Path) -> None:
    splits = load_splits(_spec(int_csv, [0, 1]), seed=1)
    assert splits.label_names == ["0", "1"]
    assert splits.info["rows_used"] == 196 and splits.info["class_counts"] == COUNTS
    # the same rows and fingerprint as labels written as text: '0' and 0 are one label
    assert load_splits(_spec(int_csv, ["0", "1"]), seed=1).fingerprint == splits.fingerprint
    reversed_ = load_splits(_spec(int_csv, [1, 0]), seed=1)
    assert list(reversed_.info["class_counts"].items()) == [("1", COUNTS["1"]), ("0", COUNTS["0"])]


def test_a_label_mapping_names_the_classes_and_keeps_their_order(int_csv: Path) -> None:
    splits = load_splits(_spec(int_csv, {0: "negative", 1: "positive"}), seed=1)
    assert splits.label_names == ["negative", "positive"]
    assert splits.info["class_counts"] == {"negative": COUNTS["0"], "positive": COUNTS["1"]}
    as_list = load_splits(_spec(int_csv, [0, 1]), seed=1)
    assert splits.eval.labels == as_list.eval.labels  # same ids: only the names differ
    assert splits.fingerprint != as_list.fingerprint  # but the names reach the model, so the key differs


def test_a_mapping_that_names_two_classes_alike_is_refused(int_csv: Path) -> None:
    with pytest.raises(RecipeError, match=r"data\.labels: label name\(s\) \['pos'\] given twice"):
        recipe_from_dict(
            {"name": "x", "model": {"source": "m"}, "variants": {"v": ["export"]}}
            | {"data": {"source": str(int_csv), "labels": {0: "pos", 1: "pos"}}}
        )


def test_the_mapping_names_reach_the_fine_tuned_model_config(recipe_dict: dict, int_csv: Path, tmp_path: Path) -> None:
    recipe_dict["data"] |= {"source": str(int_csv), "labels": {0: "negative", 1: "positive"}}
    ctx = context(recipe_dict, tmp_path / "out")
    finetune(resolve_model(ctx.recipe.model), FinetuneConfig(max_steps=1), ctx)
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert config["label2id"] == {"negative": 0, "positive": 1}

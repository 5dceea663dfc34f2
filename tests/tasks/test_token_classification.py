"""token-classification: CoNLL and JSONL reading, label alignment, scores, and a run on the tiny model."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from optkit.api import run_recipe
from optkit.errors import DataError, RecipeError
from optkit.recipe import recipe_from_dict
from optkit.sources.data import load_splits, read_conll
from optkit.tasks import get_task
from optkit.tasks.token_classification import NOT_PREDICTED, align_labels
from tests.tasks.structured_data import ner_sentences, write_conll, write_ner_jsonl


def _recipe(model: str, data: str, **data_extra: Any) -> dict[str, Any]:
    return {
        "name": "tiny-ner",
        "seed": 7,
        "model": {"source": model, "task": "token-classification"},
        "data": {
            "source": data,
            "text": "tokens",
            "label": "tags",
            "max_length": 16,
            "splits": {"train": 120, "eval": 60, "calibration": 16},
            **data_extra,
        },
        "baseline": [{"finetune": {"epochs": 8, "learning_rate": 3e-3, "batch_size": 16}}],
        "variants": {
            "fp32-onnx": [{"export": {}}],
            "int8-dynamic": [{"export": {}}, {"quantize": {"mode": "dynamic"}}],
            "int8-static": [{"export": {}}, {"quantize": {"mode": "static"}}],
        },
        "evaluate": {
            "shapes": [{"batch": 2, "seq": 16}],
            "latency": {"warmup": 1, "runs": 5, "threads": 1},
            "memory": False,
            "batch_size": 16,
        },
        "report": {"formats": ["json", "md", "html"], "gates": {"int8-dynamic": {"max_metric_drop": 0.5}}},
    }


def test_conll_reader_skips_docstart_reads_the_last_column_and_names_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "x.conll"
    path.write_text("-DOCSTART- -X- O O\n\nJohn NNP B-NP B-PER\nruns VBZ B-VP O\n\n\nParis NNP B-NP B-LOC\n")
    frame = read_conll(path)
    assert frame["tokens"].tolist() == [["John", "runs"], ["Paris"]]
    assert frame["tags"].tolist() == [["B-PER", "O"], ["B-LOC"]]
    assert frame["line"].tolist() == [3, 7]
    path.write_text("John B-PER\nruns\n")
    with pytest.raises(DataError, match=r"line 2: token 'runs' has no tag"):
        read_conll(path)


def test_only_the_first_sub_token_of_a_word_carries_its_tag() -> None:
    assert align_labels([None, 0, 0, 1, 2, 2, None], [3, 5, 1]) == [-100, 3, -100, 5, 1, -100, -100]


def test_jsonl_length_mismatch_is_a_data_error_naming_file_row_and_field(tmp_path: Path) -> None:
    rows = [{"tokens": ["a", "b"], "tags": ["O", "O"]}, {"tokens": ["a", "b", "c"], "tags": ["O", "B-X"]}]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = recipe_from_dict(_recipe("m", str(path)))
    with pytest.raises(DataError, match=r"data\.label: .*bad\.jsonl row 2: 3 words in 'tokens' but 2 tags in 'tags'"):
        load_splits(recipe.data, 7, "token-classification")


def test_tags_without_an_iob_prefix_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "pos.jsonl"
    path.write_text(json.dumps({"tokens": ["a"], "tags": ["NOUN"]}) + "\n")
    with pytest.raises(DataError, match=r"tag 'NOUN' is not 'O' or B-/I-/E-/S-TYPE"):
        load_splits(recipe_from_dict(_recipe("m", str(path))).data, 7, "token-classification")


def test_splits_read_conll_and_jsonl_alike(tmp_path: Path) -> None:
    sentences = ner_sentences(200)
    a = load_splits(
        recipe_from_dict(_recipe("m", str(write_conll(tmp_path / "a.conll", sentences)))).data,
        7,
        "token-classification",
    )
    jsonl = write_ner_jsonl(tmp_path / "a.jsonl", sentences)
    b = load_splits(recipe_from_dict(_recipe("m", str(jsonl), label="ner_tags")).data, 7, "token-classification")
    assert a.label_names == b.label_names == ["O", "B-NEG", "B-POS", "I-NEG"]
    assert a.eval.items == b.eval.items and a.eval.labels == b.eval.labels
    assert len(a.train) == 120 and len(a.calibration) == 16
    assert a.info["entity_counts"] == {"NEG": 200, "POS": 200}


def test_eval_source_draws_eval_rows_from_the_official_test_file(tmp_path: Path) -> None:
    """data.eval_source: eval sentences come only from the second file, train and calibration only from the
    first, every row has its own number, and the fingerprint follows the second file's bytes."""
    train = write_conll(tmp_path / "train.conll", ner_sentences(200, seed=1))
    test = write_conll(tmp_path / "test.conll", ner_sentences(90, seed=2))
    data = recipe_from_dict(_recipe("m", str(train), eval_source=str(test))).data
    s = load_splits(data, 7, "token-classification")
    test_items = read_conll(test)["tokens"].tolist()
    train_items = read_conll(train)["tokens"].tolist()
    assert len(s.eval) == 60 and all(item in test_items for item in s.eval.items)
    assert len(s.train) == 120 and all(item in train_items for item in s.train.items)
    assert set(s.calibration.rows) <= set(s.train.rows) and not set(s.train.rows) & set(s.eval.rows)
    assert s.info["eval_rows_available"] == 90 and s.info["eval_source"] == str(test)
    alone = load_splits(recipe_from_dict(_recipe("m", str(train))).data, 7, "token-classification")
    assert s.fingerprint != alone.fingerprint
    write_conll(test, ner_sentences(90, seed=3))
    assert load_splits(data, 7, "token-classification").fingerprint != s.fingerprint
    everything = data.model_copy(update={"splits": data.splits.model_copy(update={"train": 200, "eval": 0.5})})
    full = load_splits(everything, 7, "token-classification")
    assert len(full.train) == 200 and len(full.eval) == 45  # a fraction of eval: of the eval file


def test_eval_source_errors_name_the_field_and_the_fix(tmp_path: Path) -> None:
    train = write_conll(tmp_path / "train.conll", ner_sentences(150, seed=1))
    test = tmp_path / "test.conll"
    test.write_text("Paris X X B-LOC\nis X X O\n\nRome X X B-GPE\n")
    data = recipe_from_dict(_recipe("m", str(train), eval_source=str(test))).data
    with pytest.raises(DataError, match=r"data\.labels: .*only in the eval file: \['B-GPE', 'B-LOC'\].*data\.labels"):
        load_splits(data, 7, "token-classification")
    write_conll(test, ner_sentences(40, seed=2))
    with pytest.raises(DataError, match=r"data\.splits\.eval: 60 rows asked, but .*test\.conll has 40 usable rows"):
        load_splits(data, 7, "token-classification")
    missing = recipe_from_dict(_recipe("m", str(train), eval_source=str(tmp_path / "nope.conll"))).data
    with pytest.raises(DataError, match=r"^data\.eval_source: file .*nope\.conll' does not exist"):
        load_splits(missing, 7, "token-classification")
    with pytest.raises(DataError, match=r"data\.eval_source: task 'text-classification'.*remove eval_source"):
        load_splits(data, 7, "text-classification")
    with pytest.raises(RecipeError, match=r"eval_source.*a hub data set .*local or package: file"):
        recipe_from_dict(_recipe("m", str(train), eval_source="hub:conll2003"))


def test_scores_agreement_and_per_type_metrics() -> None:
    task = get_task("token-classification")
    names = ["O", "B-PER", "I-PER", "B-LOC"]
    gold = [[1, 2, 0, 3], [0, 3]]
    pred = [[1, 2, 0, 0], [0, 3]]  # one LOC missed
    s = task.scores(pred, gold, names)
    assert s["entity_precision"] == 1.0 and s["entity_recall"] == pytest.approx(2 / 3)
    assert s["entity_f1"] == pytest.approx(0.8) and s["token_accuracy"] == pytest.approx(5 / 6)
    assert task.agreement(pred, gold) == pytest.approx(5 / 6)  # per word, not per sentence
    per_type = task.class_metrics(pred, gold, names)
    assert per_type["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert per_type["LOC"]["recall"] == 0.5 and per_type["LOC"]["support"] == 2
    import numpy as np

    boot = task.class_metrics(pred, gold, names, np.array([[1, 1], [2, 0], [0, 2]]))
    assert boot["LOC"]["recall"].tolist() == [0.5, 0.0, 1.0]  # resamples: both rows, row 0 twice, row 1 twice
    # a word cut off by max_length is scored as 'O'
    assert task.scores([[1, NOT_PREDICTED]], [[1, 2]], names)["entity_f1"] == 0.0
    assert task.prediction_label([1, 2, 0, 3], names) == "PER[0-1], LOC[3]"


def test_tiny_model_end_to_end(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Fine-tune a token head, export (validated against PyTorch), int8 dynamic and static, measure and gate."""
    data = write_conll(tmp_path / "ner.conll", ner_sentences(200))
    recipe = tmp_path / "ner.yaml"
    recipe.write_text(yaml.safe_dump(_recipe(str(tiny_model_dir), str(data))))
    report = run_recipe(recipe, output=tmp_path / "reports", workspace=tmp_path / "ws").report
    v = report["variants"]
    assert report["task"]["primary_metric"] == "entity_f1"
    assert v["baseline"]["entity_f1"] > 0.5, v["baseline"]  # the entity is the word: learnable in seconds
    assert v["fp32-onnx"]["entity_f1"] == v["baseline"]["entity_f1"]
    export = next(s for s in report["steps"] if s["kind"] == "export")
    assert export["meta"]["validation"]["max_abs_diff"] < 1e-4 and export["meta"]["validation"]["agreement"] == 1.0
    assert {"NEG", "POS"} <= set(v["baseline"]["per_class"])
    assert all(r["status"] == "measured" for r in report["results"]), report["results"]
    gate = next(g for g in report["gates"] if g["gate"] == "max_metric_drop")
    assert gate["passed"] and "entity_f1 drop" in gate["message"]
    html = (tmp_path / "reports" / "tiny-ner" / "report.html").read_text()
    assert "entity_f1 vs latency" in html
    from optkit.ship import predict_package

    _, results = predict_package(tmp_path / "reports" / "tiny-ner" / "packages" / "int8-dynamic", ["the good film"])
    assert results[0]["tags"][0] == "O" and len(results[0]["tags"]) == 3  # one tag per word
    assert "prediction" in results[0] and isinstance(results[0]["entities"], list)


@pytest.mark.parametrize(
    ("task", "row", "message"),
    [
        (
            "token-classification",
            {"tokens": ["a", "b", "c"], "tags": ["O", "O"]},
            r"data\.label: \S+bad\.jsonl row 1: 3 words in 'tokens' but 2 tags in 'tags'",
        ),
        (
            "question-answering",
            {"question": "q", "context": "short", "answers": {"text": ["short"], "answer_start": [3]}},
            r"data\.label: \S+bad\.jsonl row 1, column 'answers': answer 0 'short' at answer_start 3 runs outside",
        ),
    ],
)
def test_cli_bad_rows_exit_2_with_one_line_naming_file_row_and_field(
    tiny_model_dir: Path, tmp_path: Path, task: str, row: dict[str, Any], message: str
) -> None:
    from click.testing import CliRunner

    from optkit.cli import cli

    (tmp_path / "bad.jsonl").write_text(json.dumps(row) + "\n")
    recipe = _recipe(str(tiny_model_dir), str(tmp_path / "bad.jsonl"))
    recipe["model"]["task"] = task
    if task == "question-answering":
        recipe["data"].update(text="question", label="answers")
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "r.yaml")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    first = result.output.strip().splitlines()[0]
    assert re.search(message, first), first


def test_cli_validate_names_the_eval_file(tiny_model_dir: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from optkit.cli import cli

    train = write_conll(tmp_path / "train.conll", ner_sentences(200, seed=1))
    test = write_conll(tmp_path / "test.conll", ner_sentences(90, seed=2))
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(_recipe(str(tiny_model_dir), str(train), eval_source=str(test))))
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "r.yaml")])
    assert result.exit_code == 0, result.output
    assert f"train 120, calibration 16, eval 60 of 90 in {test} (90 sentences;" in result.output


def test_an_accuracy_gate_on_a_tagger_points_at_max_metric_drop(tiny_model_dir: Path, tmp_path: Path) -> None:
    from optkit.api import validate_recipe
    from optkit.errors import RecipeError

    recipe = _recipe(str(tiny_model_dir), str(write_conll(tmp_path / "ner.conll", ner_sentences(200))))
    recipe["report"]["gates"] = {"int8-dynamic": {"max_accuracy_drop": 0.01}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    with pytest.raises(RecipeError, match=r"has no accuracy .*use max_metric_drop \(its primary metric, entity_f1\)"):
        validate_recipe(tmp_path / "r.yaml")

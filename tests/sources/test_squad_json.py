"""SQuAD's nested JSON read as one row per question, off answers dropped and counted, and splits by group."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from optkit.errors import DataError
from optkit.recipe import DataSpec
from optkit.sources.data import load_splits, read_table
from tests.tasks.structured_data import qa_rows, write_qa_jsonl


def _document(rows: list[dict[str, Any]], articles: int, per_paragraph: int = 2) -> dict[str, Any]:
    """The rows in SQuAD's layout: article i % ``articles``, ``per_paragraph`` questions sharing one context
    (each question keeps its own context's answer; the paragraph's context is the first question's)."""
    data: list[dict[str, Any]] = [{"title": f"Article_{a}", "paragraphs": []} for a in range(articles)]
    for i in range(0, len(rows), per_paragraph):
        first = rows[i]
        qas = [
            {
                "id": f"q{i + k}",
                "question": f"{first['question']} {k}",
                "answers": [
                    {"text": t, "answer_start": s}
                    for t, s in zip(first["answers"]["text"], first["answers"]["answer_start"], strict=True)  # type: ignore[index]
                ],
            }
            for k in range(min(per_paragraph, len(rows) - i))
        ]
        data[(i // per_paragraph) % articles]["paragraphs"].append({"context": first["context"], "qas": qas})
    return {"version": "1.1", "data": data}


def _write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document, indent=1))
    return path


def _spec(source: Path, splits: dict[str, Any], group: str | None = "title") -> DataSpec:
    data: dict[str, Any] = {"source": str(source), "text": "question", "label": "answers", "splits": splits}
    if group:
        data["group"] = group
    return DataSpec.model_validate(data)


def test_the_nested_layout_flattens_to_one_row_per_question_with_its_article(tmp_path: Path) -> None:
    path = _write(tmp_path / "dev.json", _document(qa_rows(12), articles=3))
    frame, digest, where = read_table(_spec(path, {"train": 4, "eval": 4}))
    assert list(frame.columns) == ["id", "title", "question", "context", "answers"]
    assert len(frame) == 12 and frame["title"].nunique() == 3 and where == str(path) and len(digest) == 64
    row = frame.iloc[1]
    start, text = row["answers"]["answer_start"][0], row["answers"]["text"][0]
    assert row["context"][start : start + len(text)] == text and row["id"] == "q1"
    assert frame.attrs["notes"] == {"articles": 3, "dropped_answers": 0, "dropped_questions": 0}


def test_an_answer_off_its_offset_is_dropped_and_counted_and_a_question_left_without_any_too(tmp_path: Path) -> None:
    doc = _document(qa_rows(400, seed=1), articles=4)
    qa = doc["data"][0]["paragraphs"][0]["qas"]
    good = qa[0]["answers"][0]
    qa[0]["answers"].append({"text": good["text"], "answer_start": good["answer_start"] + 1})  # one of two off
    qa[1]["answers"] = [{"text": "zzz", "answer_start": 0}]  # the only answer off: the question goes
    path = _write(tmp_path / "dev.json", doc)
    splits = load_splits(_spec(path, {"train": 100, "eval": 50, "calibration": 8}), 0, "question-answering")
    assert splits.info["rows_used"] == 399
    assert (splits.info["dropped_answers"], splits.info["dropped_questions"]) == (2, 1)
    assert "2 answers and 1 questions dropped: answer text not at answer_start" in splits.info["summary"]
    every = splits.train.labels + splits.eval.labels
    assert all(len(a["text"]) == 1 for a in every)  # the off second answer of q0 is gone, wherever q0 landed


def test_a_file_whose_offsets_are_mostly_off_is_an_error_not_noise(tmp_path: Path) -> None:
    doc = _document(qa_rows(20), articles=2)
    for paragraph in doc["data"][1]["paragraphs"]:
        for qa in paragraph["qas"]:
            qa["answers"][0]["answer_start"] += 1
    path = _write(tmp_path / "dev.json", doc)
    with pytest.raises(DataError, match=r"dev\.json'?: 10 of 20 answers do not match their context at answer_start"):
        read_table(_spec(path, {"train": 4, "eval": 4}))


def test_a_malformed_article_names_its_place_in_the_file(tmp_path: Path) -> None:
    doc = _document(qa_rows(6), articles=2)
    del doc["data"][1]["paragraphs"][0]["context"]
    path = _write(tmp_path / "dev.json", doc)
    with pytest.raises(DataError, match=r"data\[1\] \(Article_1\) paragraphs\[0\] needs a non-empty 'context'"):
        read_table(_spec(path, {"train": 2, "eval": 2}))
    doc["data"][1]["title"] = ""
    with pytest.raises(DataError, match=r"data\[1\] has no 'title'"):
        read_table(_spec(_write(path, doc), {"train": 2, "eval": 2}))


def test_a_json_lines_file_named_json_still_reads_as_json_lines(tmp_path: Path) -> None:
    path = write_qa_jsonl(tmp_path / "qa.json", qa_rows(10))
    frame, _, _ = read_table(_spec(path, {"train": 4, "eval": 4}))
    assert list(frame.columns) == ["question", "context", "answers"] and len(frame) == 10


def test_grouped_splits_keep_each_article_on_one_side_with_exact_counts(tmp_path: Path) -> None:
    path = _write(tmp_path / "dev.json", _document(qa_rows(600, seed=2), articles=12))
    frame, _, _ = read_table(_spec(path, {"train": 4, "eval": 4}))
    title_of = dict(zip(frame["question"] + "|" + frame["context"], frame["title"], strict=False))
    counts = {"train": 200, "eval": 120, "calibration": 16}

    def titles(split: Any) -> set[str]:
        return {title_of[f"{it['question']}|{it['context']}"] for it in split.items}

    grouped = load_splits(_spec(path, counts), 5, "question-answering")
    assert (len(grouped.train), len(grouped.eval), len(grouped.calibration)) == (200, 120, 16)
    assert not titles(grouped.train) & titles(grouped.eval)
    assert titles(grouped.calibration) <= titles(grouped.train)
    assert grouped.info["eval_groups"] == len(titles(grouped.eval)) == 3  # 50 questions an article
    assert len(titles(grouped.train)) == grouped.info["train_groups"] == 9  # spread over every other article
    assert "split by title: 3 eval, 9 train groups" in grouped.info["summary"]
    again = load_splits(_spec(path, counts), 5, "question-answering")
    assert again.eval.rows == grouped.eval.rows and again.fingerprint == grouped.fingerprint
    loose = load_splits(_spec(path, counts, group=None), 5, "question-answering")
    assert titles(loose.train) & titles(loose.eval)  # row by row, articles straddle the split
    assert loose.fingerprint != grouped.fingerprint


def test_grouped_splits_refuse_what_they_cannot_do(tmp_path: Path) -> None:
    path = _write(tmp_path / "dev.json", _document(qa_rows(100), articles=2))
    with pytest.raises(DataError, match=r"data\.splits: with data\.group, eval's 1 groups leave 50 rows"):
        load_splits(_spec(path, {"train": 51, "eval": 10}), 0, "question-answering")
    with pytest.raises(DataError, match=r"data\.group: column 'article' is not in .*'title'"):
        load_splits(_spec(path, {"train": 10, "eval": 10}, group="article"), 0, "question-answering")
    table = tmp_path / "t.csv"
    table.write_text("text,label,title\n" + "".join(f"w{i},{i % 2},t{i % 3}\n" for i in range(30)))
    spec = DataSpec.model_validate({"source": str(table), "group": "title", "splits": {"train": 10, "eval": 10}})
    with pytest.raises(DataError, match=r"data\.group: grouped splits are supported for question-answering"):
        load_splits(spec, 0, "text-classification")
    both = _spec(path, {"train": 10, "eval": 10}).model_copy(update={"eval_source": str(path)})
    with pytest.raises(DataError, match=r"data\.group: eval rows come from data\.eval_source.*remove data\.group"):
        load_splits(both, 0, "question-answering")


def test_a_missing_file_names_the_command_that_fetches_it(tmp_path: Path) -> None:
    spec = DataSpec.model_validate({"source": str(tmp_path / "dev.json"), "fetch": "make squad-data"})
    with pytest.raises(DataError, match=r"dev\.json' does not exist; get it with: make squad-data"):
        read_table(spec)
    with pytest.raises(DataError, match=r"does not exist; check the path"):
        read_table(DataSpec.model_validate({"source": str(tmp_path / "dev.json")}))

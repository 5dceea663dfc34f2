"""question-answering: answers checked against their context, windows and spans, and a tiny-model run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from optkit.api import run_recipe
from optkit.bench import bench_model
from optkit.errors import DataError
from optkit.recipe import Shape, recipe_from_dict
from optkit.sources.data import load_splits
from optkit.tasks import get_task
from optkit.tasks.question_answering import best_span, read_answers
from tests.tasks.structured_data import qa_rows, write_qa_jsonl

CONTEXT = "the movie was good and the plot was dull"


def _recipe(model: str, data: str) -> dict[str, Any]:
    return {
        "name": "tiny-qa",
        "seed": 7,
        "model": {"source": model, "task": "question-answering"},
        "data": {
            "source": data,
            "text": "question",
            "label": "answers",
            "max_length": 20,  # room for 14 context words beside the question: the longer contexts overflow
            "splits": {"train": 150, "eval": 50, "calibration": 16},
        },
        "baseline": [{"finetune": {"epochs": 5, "learning_rate": 3e-3, "batch_size": 16}}],
        "variants": {
            "fp32-onnx": [{"export": {}}],
            "int8-dynamic": [{"export": {}}, {"quantize": {"mode": "dynamic"}}],
            "int8-static": [{"export": {}}, {"quantize": {"mode": "static"}}],
        },
        "evaluate": {
            "shapes": [{"batch": 2, "seq": 20}],
            "latency": {"warmup": 1, "runs": 5, "threads": 1},
            "memory": False,
            "batch_size": 16,
        },
        "report": {"formats": ["json"], "gates": {"int8-dynamic": {"max_metric_drop": 0.5}}},
    }


def test_answers_in_both_layouts_are_read_and_checked_against_the_context() -> None:
    want = {"text": ["good"], "answer_start": [14]}
    assert read_answers({"text": ["good"], "answer_start": [14]}, CONTEXT, "r") == want
    assert read_answers([{"text": "good", "answer_start": 14}], CONTEXT, "r") == want
    with pytest.raises(DataError, match=r"answer 0 'good' at answer_start 40 runs outside the context \(40 char"):
        read_answers({"text": ["good"], "answer_start": [40]}, CONTEXT, "f row 3")
    with pytest.raises(DataError, match=r"does not match the context at answer_start 4 \(the context has 'movi'"):
        read_answers({"text": ["good"], "answer_start": [4]}, CONTEXT, "f row 3")
    with pytest.raises(DataError, match=r"needs at least one answer"):
        read_answers({"text": [], "answer_start": []}, CONTEXT, "f row 3")


def test_a_bad_offset_in_a_file_names_the_file_row_and_column(tmp_path: Path) -> None:
    rows = qa_rows(5)
    rows[3]["answers"] = {"text": ["good"], "answer_start": [0]}
    path = write_qa_jsonl(tmp_path / "qa.jsonl", rows)
    with pytest.raises(DataError, match=r"data\.label: .*qa\.jsonl row 4, column 'answers': answer 0 'good'"):
        load_splits(recipe_from_dict(_recipe("m", str(path))).data, 7, "question-answering")


def test_best_span_keeps_to_the_context_order_and_length() -> None:
    start = np.array([9.0, 0.0, 1.0, 5.0, 0.0])  # position 0 is the question: never an answer
    end = np.array([9.0, 4.0, 0.0, 0.0, 3.0])
    in_context = [False, True, True, True, True]
    assert best_span(start, end, in_context) == (3, 4, 8.0)  # (3, 1) scores 9 but ends before it starts
    assert best_span(start, end, [False] * 5) is None


def test_training_windows_point_at_the_answer_or_at_cls(tiny_model_dir: Path) -> None:
    """Every window whose label is a span decodes back to the gold answer; the others hold no whole answer."""
    from transformers import AutoTokenizer

    task = get_task("question-answering")
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = qa_rows(20)
    items = [{"question": r["question"], "context": r["context"]} for r in rows]
    feats = task.training_features(tok, items, [r["answers"] for r in rows], 12)
    assert len(feats) > len(rows)  # long contexts overflow into several windows
    batch = feats.collate(list(range(len(feats))))
    spans = 0
    ex = -1
    for f in range(len(feats)):
        s, e = int(batch["start_positions"][f]), int(batch["end_positions"][f])
        ex = int(batch["idx"][f])
        if (s, e) != (0, 0):
            spans += 1
            words = tok.decode(batch["input_ids"][f][s : e + 1])
            assert words in {r["answers"]["text"][0] for r in rows}, (f, words)
    assert spans >= len(rows) and ex >= 0  # each answer lies whole in at least one window


def test_tiny_model_end_to_end_and_bench_accepts_its_inputs(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_qa_jsonl(tmp_path / "qa.jsonl", qa_rows(200))
    recipe = tmp_path / "qa.yaml"
    recipe.write_text(yaml.safe_dump(_recipe(str(tiny_model_dir), str(data))))
    outcome = run_recipe(recipe, output=tmp_path / "reports", workspace=tmp_path / "ws")
    v = outcome.report["variants"]
    assert outcome.report["task"]["primary_metric"] == "f1"
    assert v["baseline"]["f1"] > 0.8, v["baseline"]  # the answer is the one positive word
    export = next(s for s in outcome.report["steps"] if s["kind"] == "export")
    assert export["meta"]["validation"]["max_abs_diff"] < 1e-4
    assert v["int8-static"]["agreement_with_baseline"] > 0.8
    assert "f1_delta_ci95" in v["int8-dynamic"]  # per-question F1 gives the paired bootstrap its rows
    assert all(r["status"] == "measured" for r in outcome.report["results"])
    onnx = next(Path(p) for p in (tmp_path / "ws").rglob("model.onnx"))
    bench = bench_model(onnx, shapes=[Shape(batch=2, seq=16)], memory=False)
    assert bench["results"][0]["status"] == "measured"

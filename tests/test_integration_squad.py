"""The real MiniLM-L6 on a slice of the real SQuAD v1.1 dev set (``make squad-data``) through recipes/qa-int8.yaml:
fine-tune a new span head briefly, export, dynamic int8.

Skipped where the data is missing, except under CI (``.ci/run`` runs ``make squad-data``), where a missing file
fails: the QA chain must not go untested on real text by accident. A handful of training steps teaches the head
little, so the test checks what must hold at any quality: the reader saw the whole official file, the split kept
articles apart, the F1 and exact match in the report are SQuAD's (recomputed here with the official script's
definition), and the ONNX graph gives PyTorch's start/end logits.
"""

from __future__ import annotations

import os
import re
import string
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from optkit.api import run_recipe

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SQUAD = ROOT / ".data" / "squad" / "dev-v1.1.json"


def _slice_recipe() -> dict[str, Any]:
    """The shipped recipe cut to 150 training questions (5 steps of 16 windows of 128 tokens), 60 eval questions,
    fp32 and dynamic int8."""
    recipe = yaml.safe_load((ROOT / "recipes" / "qa-int8.yaml").read_text())
    recipe["name"] = "squad-slice"
    recipe["data"]["source"] = str(SQUAD)
    recipe["data"].update(max_length=128, splits={"train": 150, "eval": 60, "calibration": 8})
    recipe["baseline"][0]["finetune"].update(epochs=1, max_steps=5, batch_size=16)
    export = {"export": {"validation_samples": 16}}
    recipe["variants"] = {
        "fp32-onnx": [export],
        "int8-dynamic": [export, {"quantize": {"mode": "dynamic", "per_channel": True}}],
    }
    recipe["evaluate"] = {
        "shapes": [{"batch": 1, "seq": 128}],
        "latency": {"warmup": 2, "runs": 5, "threads": 2},
        "memory": False,
    }
    recipe["report"] = {"formats": ["json"], "gates": {"int8-dynamic": {"max_size_ratio": 0.35}}}
    return recipe


def _normalize(text: str) -> str:
    """The official SQuAD v1.1 evaluation script's normalize_answer, written out again on purpose."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def _official_f1(prediction: str, truth: str) -> float:
    pred, gold = _normalize(prediction).split(), _normalize(truth).split()
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def test_squad_slice_fine_tunes_exports_and_quantises(tmp_path: Path) -> None:
    if not SQUAD.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{SQUAD} is missing: .ci/run fetches it (make squad-data)")
        pytest.skip("the SQuAD v1.1 dev set is not fetched (make squad-data)")
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(_slice_recipe()))
    report = run_recipe(path, output=tmp_path / "reports", workspace=tmp_path / "ws").report
    data, v = report["data"], report["variants"]
    # the whole official file was read: 10,565 questions over 48 articles, its 15 answers off their offset dropped
    assert (data["rows_used"], data["articles"], data["dropped_answers"]) == (10565, 48, 15)
    assert data["group"] == "title" and data["eval_groups"] >= 1 and data["eval_rows"] == 60
    golds = [t["text"] for t in data["eval_targets"]]
    for name in ("baseline", "int8-dynamic"):
        predictions = v[name]["eval_predictions"]
        f1 = sum(max(_official_f1(p, g) for g in gold) for p, gold in zip(predictions, golds, strict=True)) / 60
        em = sum(any(_normalize(p) == _normalize(g) for g in gold) for p, gold in zip(predictions, golds, strict=True))
        assert v[name]["f1"] == pytest.approx(f1, abs=1e-9) and v[name]["exact_match"] == pytest.approx(em / 60)
        assert all(isinstance(p, str) for p in predictions)
    export = next(s for s in report["steps"] if s["kind"] == "export")
    assert export["meta"]["validation"]["max_abs_diff"] < 1e-4, export["meta"]["validation"]  # start/end logits
    assert v["fp32-onnx"]["eval_predictions"] == v["baseline"]["eval_predictions"]
    assert v["int8-dynamic"]["size_ratio"] < 0.35 and 0.0 <= v["int8-dynamic"]["agreement_with_baseline"] <= 1.0
    assert report["passed"], report["gates"]

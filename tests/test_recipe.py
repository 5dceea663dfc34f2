from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from optkit.errors import RecipeError
from optkit.recipe import load_recipe, recipe_from_dict

ROOT = Path(__file__).resolve().parents[1]


def test_default_recipe_loads_and_round_trips() -> None:
    recipe = load_recipe(ROOT / "recipes" / "bert-int8.yaml")
    assert list(recipe.variants) == ["fp32-onnx", "int8-dynamic", "int8-static"]
    assert [s.kind for s in recipe.chain("int8-static")] == ["finetune", "export", "quantize"]
    again = recipe_from_dict(recipe.model_dump(mode="json"))
    assert again == recipe


def test_bare_step_names_are_accepted(recipe_dict: dict[str, Any]) -> None:
    recipe_dict["variants"] = {"onnx": ["export"]}
    recipe_dict["report"] = {}
    recipe = recipe_from_dict(recipe_dict)
    assert recipe.variants["onnx"][0].kind == "export"
    assert recipe.variants["onnx"][0].opset == 17  # defaults come from the pass config


def test_static_defaults_quantize_matmul_with_uint8_activations(recipe_dict: dict[str, Any]) -> None:
    q = recipe_from_dict(recipe_dict).variants["int8-static"][1]
    assert (q.mode, q.activation_type, q.weight_type) == ("static", "uint8", "int8")


def _mutate(d: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for p in parents:
        d = d[int(p)] if p.isdigit() else d[p]
    d[int(last) if last.isdigit() else last] = value


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        ("evaluate.latency.runz", 5, r"evaluate\.latency\.runz: unknown key 'runz'; did you mean 'runs'"),
        (
            "variants.int8-dynamic.1",
            {"quantize": {"mode": "dynamic", "per_chanel": True}},
            r"variants\.int8-dynamic\[1\]\.quantize\.per_chanel: unknown key.*'per_channel'",
        ),
        ("variants.int8-dynamic.1", {"quantize": {"mode": "fast"}}, r"quantize\.mode: .*'dynamic' or 'static'"),
        ("variants.int8-dynamic.1", {"quantise": {}}, r"unknown pass 'quantise'; did you mean 'quantize'"),
        (
            "variants.bad",
            [{"export": {}}, {"finetune": {}}],
            r"variants\.bad\[1\] \(finetune\): a torch pass cannot follow 'export'",
        ),
        ("variants.bad", [{"quantize": {}}], r"variants\.bad\[0\] \(quantize\): needs an ONNX model"),
        ("variants.empty", [], r"variant 'empty' names no step"),
        ("evaluate.latency.runs", "many", r"evaluate\.latency\.runs: .*integer"),
        ("evaluate.latency.runs", 1, r"evaluate\.latency\.runs: runs must be 5 or more .* or .auto.; got 1"),
        (
            "data.splits.calibration",
            0,
            r"needs calibration rows \(its quantize step\) but data\.splits\.calibration is 0",
        ),
        (
            "report.gates.int8-dynamc",
            {"min_speedup": 1.1},
            r"unknown variant 'int8-dynamc'; did you mean 'int8-dynamic'",
        ),
        ("report.gates.int8-dynamic", {"min_sped": 1.1}, r"unknown key 'min_sped'; did you mean 'min_speedup'"),
        ("evaluate.reference", "fp32", r"evaluate.reference names unknown variant 'fp32'"),
        ("name", "../escape", r"not a safe folder name"),
        ("variants.int8-dynamic.1", {"quantize": {"mode": "dynamic"}, "export": {}}, r"exactly one key"),
        ("data.splits", {"train": 0.9, "eval": 0.2}, r"fractions exceed 1"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_bad_recipes_are_rejected_with_the_field_path(
    recipe_dict: dict[str, Any], path: str, value: Any, match: str
) -> None:
    _mutate(recipe_dict, path, value)
    with pytest.raises(RecipeError, match=match):
        recipe_from_dict(recipe_dict)


def test_missing_required_field_is_named(recipe_dict: dict[str, Any]) -> None:
    del recipe_dict["data"]
    with pytest.raises(RecipeError, match=r"<recipe>: data: required field is missing"):
        recipe_from_dict(recipe_dict)


def test_malformed_yaml_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nvariants:\n  a: [export\n  b: 1\n")
    with pytest.raises(RecipeError, match=r"bad\.yaml: malformed YAML at line \d+, column \d+"):
        load_recipe(path)


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"- just\n- a list\n", "a recipe is a YAML mapping"), (b"name: \xff\xfe\n", "not UTF-8")],
    ids=["list", "binary"],
)
def test_non_recipe_files_are_rejected(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_bytes(content)
    with pytest.raises(RecipeError, match=match):
        load_recipe(path)


def test_missing_recipe_file(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")


def test_yaml_tags_are_not_executed(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(RecipeError, match="malformed YAML"):
        load_recipe(path)


def test_recipe_round_trips_through_yaml(recipe_dict: dict[str, Any], write_recipe) -> None:  # type: ignore[no-untyped-def]
    recipe = load_recipe(write_recipe(recipe_dict))
    dumped = yaml.safe_load(yaml.safe_dump(recipe.model_dump(mode="json")))
    assert recipe_from_dict(dumped) == recipe


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "recipes").glob("*.yaml")))
def test_shipped_recipes_validate_against_the_installed_assets(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `optkit validate` checks: a shipped recipe whose model or data package is missing from
    `make install`, or whose labels no longer match its data, fails here and not after minutes of training.
    CI's own recipe runs on assets that scripts/tiny_assets.py makes (as .ci/dogfood does), here in a
    scratch folder."""
    from optkit.api import validate_recipe
    from scripts.tiny_assets import main as make_tiny_assets

    if name == "ci-tiny.yaml":
        assert make_tiny_assets([str(tmp_path / ".ci" / "tiny")]) == 0
        monkeypatch.chdir(tmp_path)
    recipe, splits = validate_recipe(ROOT / "recipes" / name)
    assert recipe.model.num_labels == len(splits.label_names)
    assert len(splits.eval) >= (60 if name == "ci-tiny.yaml" else 200)
    assert not set(splits.train.rows) & set(splits.eval.rows)
    if name == "reuters-r8.yaml":  # the multi-class demo: every topic must reach eval, the rarest too
        assert splits.label_names == ["earn", "acq", "crude", "trade", "money-fx", "interest", "ship", "grain"]
        assert min(splits.eval.labels.count(i) for i in range(8)) == 16  # grain: 41 stories, 40% held out

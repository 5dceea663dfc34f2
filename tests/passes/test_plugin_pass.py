"""A pass defined outside optkit: registered through the public call, validated, checked and run like a built-in.

Nothing in optkit is edited or patched here: the pass brings its own config, preflight check and
report note, and the recipe, preflight, runner and report find them through the catalogue.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from pydantic import Field

from optkit.api import run_recipe, validate_recipe
from optkit.errors import RecipeError
from optkit.passes import registry
from optkit.passes.base import Artifact, PassConfig, PassContext, Plan


class StampConfig(PassConfig):
    """Copies an ONNX model and stamps a label into its metadata: the smallest honest onnx -> onnx pass."""

    kind: Literal["stamp"] = "stamp"
    label: str = Field(description="Written into the model's metadata.")
    max_label_length: int = Field(16, ge=1, description="Longest label this pass accepts.")

    def check(self, where: str, model: dict[str, Any] | None, plan: Plan) -> dict[str, Any] | None:
        if len(self.label) > self.max_label_length:
            raise RecipeError(
                f"{where}.label: {len(self.label)} characters; stamp takes at most {self.max_label_length}"
            )
        return model

    def report_notes(self, variant: str, report: dict[str, Any]) -> list[str]:
        return [f"{variant} carries the stamp {self.label!r}"]


def stamp(src: Artifact, config: StampConfig, ctx: PassContext) -> Artifact:
    import onnx

    model = onnx.load(str(src.onnx_file))
    onnx.helper.set_model_props(model, {"stamp": config.label})
    onnx.save(model, str(ctx.out_dir / "model.onnx"))
    for f in src.path.iterdir():
        if f.is_file() and f.suffix in (".json", ".txt"):
            shutil.copy2(f, ctx.out_dir / f.name)
    ctx.meta["stamped"] = config.label
    return Artifact(ctx.out_dir, "onnx", key="")


@pytest.fixture
def stamp_registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Register through the public call; the catalogue is restored afterwards so other tests never see it."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry.list_passes()))
    monkeypatch.setattr(registry, "_STATE", dict(registry._STATE))
    registry.register_pass(StampConfig, version=1, input_format="onnx", output_format="onnx", uses_data=False)(stamp)
    yield


def _recipe(base: dict[str, Any], tmp: Path, stamp_options: dict[str, Any]) -> Path:
    recipe = {**base, "variants": {"fp32-onnx": ["export"], "stamped": ["export", {"stamp": stamp_options}]}}
    recipe["baseline"] = [{"finetune": {"max_steps": 2, "batch_size": 16}}]
    recipe["report"] = {"formats": ["json"]}
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_an_unregistered_pass_is_an_unknown_step(base_recipe: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"variants\.stamped\[1\]: unknown pass 'stamp'"):
        validate_recipe(_recipe(base_recipe, tmp_path, {"label": "v1"}))


def test_a_registered_pass_is_validated_checked_run_and_noted(
    stamp_registered: None, base_recipe: dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(RecipeError, match=r"variants\.stamped\[1\]\.stamp\.lable: unknown key 'lable'"):
        validate_recipe(_recipe(base_recipe, tmp_path, {"lable": "v1"}))
    with pytest.raises(RecipeError, match=r"variants\.stamped\[1\]\.stamp\.label: 40 characters; stamp takes at most"):
        validate_recipe(_recipe(base_recipe, tmp_path, {"label": "x" * 40}))  # its own preflight check, before any work
    assert not (tmp_path / "ws").exists()

    outcome = run_recipe(
        _recipe(base_recipe, tmp_path, {"label": "v1"}), output=tmp_path / "out", workspace=tmp_path / "ws"
    )
    step = next(s for s in outcome.report["steps"] if s["kind"] == "stamp")
    assert step["meta"] == {"stamped": "v1"}
    assert "stamped carries the stamp 'v1'" in outcome.report["notes"]
    assert outcome.report["variants"]["stamped"]["agreement_with_baseline"] == 1.0  # a copy predicts the same
    saved = json.loads((tmp_path / "out" / "tiny" / "report.json").read_text())
    assert saved["variants"]["stamped"]["chain"][-1] == {"kind": "stamp", "label": "v1", "max_label_length": 16}


def register_stamp() -> None:
    """What a plugin package names in its entry point: a function without arguments that registers."""
    registry.register_pass(StampConfig, version=1, input_format="onnx", output_format="onnx", uses_data=False)(stamp)


def _with_entry_points(monkeypatch: pytest.MonkeyPatch, *values: str) -> None:
    import importlib.metadata as md

    points = [md.EntryPoint(f"plugin{i}", v, registry.ENTRY_POINT_GROUP) for i, v in enumerate(values)]
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry.list_passes()))
    monkeypatch.setattr(registry, "_STATE", {**registry._STATE, "plugins_loaded": False})
    monkeypatch.setattr(registry.md, "entry_points", lambda group: [p for p in points if p.group == group])


def test_a_pass_from_the_entry_point_group_joins_the_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_entry_points(monkeypatch, f"{__name__}:register_stamp")
    assert registry.get_pass("stamp").config_cls is StampConfig


def test_a_broken_plugin_is_named_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    from optkit.errors import PassError

    _with_entry_points(monkeypatch, "no_such_module_for_optkit:register")
    with pytest.raises(PassError, match=r"the pass plugin 'plugin0' \(no_such_module_for_optkit:register.*fix or"):
        registry.list_passes()

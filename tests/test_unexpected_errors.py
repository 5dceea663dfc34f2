"""An exception optkit did not expect still ends in one line and exit 1; ``--debug`` shows its traceback."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from optkit.cli import cli


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("injected failure\nsecond line that must not reach the message")


def _in_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    from optkit.passes import registry

    spec = registry.get_pass("export")
    monkeypatch.setitem(registry._REGISTRY, "export", dataclasses.replace(spec, fn=_boom))


def _in_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    import optkit.api

    monkeypatch.setattr(optkit.api, "evaluate_build", _boom)


def _in_report_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    import optkit.api

    monkeypatch.setattr(optkit.api, "render_markdown", _boom)


@pytest.fixture(scope="module")
def workspace(base_recipe: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One fine-tune shared by the cases: a one-variant recipe, no memory probe, few timing runs."""
    root = tmp_path_factory.mktemp("unexpected")
    recipe = {**base_recipe, "variants": {"fp32-onnx": [{"export": {}}]}, "report": {"formats": ["json", "md"]}}
    recipe["baseline"] = [{"finetune": {"max_steps": 2, "batch_size": 16}}]
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return root, path


@pytest.mark.parametrize(
    ("inject", "where"),
    [
        (_in_pass, r"during fp32-onnx\[1\] export \(input [0-9a-f]{12}\)"),
        (_in_evaluation, "during evaluation"),
        (_in_report_writer, "during report writing"),
    ],
    ids=["pass", "evaluation", "report-writer"],
)
def test_an_unexpected_error_is_one_line_and_exit_1(
    inject: Callable[[pytest.MonkeyPatch], None],
    where: str,
    workspace: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, recipe = workspace
    inject(monkeypatch)
    args = ["run", str(recipe), "--workspace", str(root / "ws"), "-o", str(root / "out")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # handled, not escaped
    assert "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: unexpected RuntimeError "), last
    assert re.search(where, last), last
    assert "injected failure. optkit did not expect this: rerun with --debug for the traceback" in last
    assert "second line" not in result.output
    assert not (root / "out" / "tiny" / "report.md").exists()  # nothing half-written

    debug = CliRunner().invoke(cli, ["--debug", *args])  # the exception escapes, with the original chained
    assert isinstance(debug.exception.__cause__, RuntimeError), debug.exception
    assert "injected failure" in str(debug.exception.__cause__)

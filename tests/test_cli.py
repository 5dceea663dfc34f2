from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner

from optkit import __version__
from optkit.cli import cli


def test_version_and_help() -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["--version"]).output.strip() == f"optkit, version {__version__}"
    out = runner.invoke(cli, ["--help"]).output
    assert all(cmd in out for cmd in ("run", "validate", "env"))


def test_env_lists_providers_and_cpu_flags() -> None:
    result = CliRunner().invoke(cli, ["env"])
    assert result.exit_code == 0
    assert "CPUExecutionProvider" in result.output and "int8 VNNI:" in result.output


def test_validate_ok(recipe_dict: dict[str, Any], write_recipe) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(cli, ["validate", str(write_recipe(recipe_dict))])
    assert result.exit_code == 0, result.output
    assert "ok: 3 variant(s): fp32-onnx, int8-dynamic, int8-static" in result.output
    assert "data: 200 rows (rotten 80, fresh 120); train 120, calibration 16, eval 60" in result.output


def test_bad_inputs_exit_2_with_a_message_and_no_traceback(
    recipe_dict: dict[str, Any],
    write_recipe,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    runner = CliRunner()
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("name: [unclosed\n")
    cases = {
        str(bad_yaml): "malformed YAML at line",
        str(tmp_path / "missing.yaml"): "does not exist",
    }
    missing_model = dict(recipe_dict, model={"source": str(tmp_path / "no-model")})
    cases[str(write_recipe(missing_model, "m.yaml"))] = "model.source: local path"
    no_column = dict(recipe_dict, data={**recipe_dict["data"], "label": "stars"})
    cases[str(write_recipe(no_column, "c.yaml"))] = "data.label: column 'stars' is not in"
    for path, message in cases.items():
        for command in ("validate", "run"):
            args = [command, path] if command == "validate" else [command, path, "--workspace", str(tmp_path / "ws")]
            result = runner.invoke(cli, args)
            assert result.exit_code == 2, (command, path, result.output)
            assert message in result.output and "Traceback" not in result.output


def test_run_prints_the_table_and_exits_1_on_a_failed_gate(
    recipe_dict: dict[str, Any],
    write_recipe,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    recipe_dict["variants"] = {"fp32-onnx": [{"export": {}}], "int8-dynamic": recipe_dict["variants"]["int8-dynamic"]}
    recipe_dict["report"]["gates"] = {"int8-dynamic": {"min_speedup": 1000.0}}
    path = write_recipe(recipe_dict)
    out = tmp_path / "reports"
    result = CliRunner().invoke(cli, ["run", str(path), "-o", str(out), "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 1, result.output
    assert "FAIL int8-dynamic: p50 speed-up at b1×s16 vs fp32-onnx" in result.output
    assert f"wrote {out / 'tiny' / 'report.json'}" in result.output
    assert "1 gate(s) failed" in result.output
    assert (out / "tiny" / "report.md").is_file()
    # the last word before the verdict: what to ship (the gated int8 failed, so the reference) and where
    lines = result.output.splitlines()
    assert lines[-3] == f"recommended: fp32-onnx -> {out / 'tiny' / 'packages' / 'fp32-onnx'}", lines[-4:]
    assert lines[-2].startswith("  fastest acceptable variant at cpu b1×s16: p50 ")
    assert f"packages: {out / 'tiny' / 'packages' / 'fp32-onnx'}" in result.output


def test_run_strict_providers_exits_2_before_building_anything(
    recipe_dict: dict[str, Any],
    write_recipe,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """README: with --strict-providers a provider missing from this onnxruntime build stops `run` before any build.

    The test machine's onnxruntime is the CPU build, so cuda is missing; without the early check the
    fine-tune would run (and fill the cache) before the harness met the provider.
    """
    import onnxruntime

    assert "CUDAExecutionProvider" not in onnxruntime.get_available_providers()
    recipe_dict["evaluate"]["providers"] = ["cpu", "cuda"]
    ws, out = tmp_path / "ws", tmp_path / "reports"
    args = ["run", str(write_recipe(recipe_dict)), "-o", str(out), "--workspace", str(ws), "--strict-providers"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: provider 'cuda': CUDAExecutionProvider not available in this onnxruntime build")
    entries = [p.name for p in (ws / "cache").iterdir()] if (ws / "cache").exists() else []
    assert entries == [] and not out.exists()  # nothing built, nothing cached, no report

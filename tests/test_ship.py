"""Packages: what a run hands the engineer loads with Optimum, a pipeline and plain onnxruntime, and
predicts what the evaluation measured; `optkit predict` and `optkit package` work on them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from optkit.api import package_variant, run_recipe
from optkit.cache import file_sha256
from optkit.cli import cli
from optkit.errors import PackageError
from optkit.evaluate.paired import decode_predictions
from optkit.recipe import recipe_from_dict
from optkit.ship import PACKAGE_FILE, install_package, predict_package, read_package
from optkit.sources.data import load_splits

REVIEWS = ["a wonderful , moving and smart film", "boring , tedious and stale", "the plot was really dull"]


@pytest.fixture(scope="module")
def run(tiny_e2e: tuple[Path, Path, Any]) -> dict[str, Any]:
    """The shared tiny run, with what a test needs to check a package against the evaluation."""
    root, path, outcome = tiny_e2e
    recipe = recipe_from_dict(yaml.safe_load(path.read_text()))
    splits = load_splits(recipe.data, recipe.seed, recipe.model.task)
    return {
        "root": root,
        "path": path,
        "report": outcome.report,
        "out": root / "reports" / "tiny",
        "ws": root / "ws",
        "splits": splits,
        "max_length": recipe.data.max_length,
        "batch_size": recipe.evaluate.batch_size,
    }


def _evaluated(run: dict[str, Any], variant: str) -> list[int]:
    """The predictions the evaluation made for ``variant``, as the report stores them for ``compare``."""
    return decode_predictions(run["report"]["variants"][variant]["eval_predictions"])


def test_a_run_packages_every_variant_that_passes_its_gates_and_the_reference(run: dict[str, Any]) -> None:
    report, out = run["report"], run["out"]
    assert report["packages"] == {n: f"packages/{n}" for n in ("fp32-onnx", "int8-dynamic", "int8-static")}
    assert sorted(p.name for p in (out / "packages").iterdir()) == ["fp32-onnx", "int8-dynamic", "int8-static"]
    for name in report["packages"]:
        folder = out / "packages" / name
        manifest = read_package(folder)  # every file against its sha256
        v = report["variants"][name]
        assert manifest["variant"] == name and manifest["chain"] == v["chain"]
        assert manifest["recipe"]["sha256"] == report["recipe_sha256"]
        assert manifest["metrics"]["accuracy"] == v["accuracy"]
        assert manifest["labels"] == ["rotten", "fresh"] and manifest["max_length"] == 16
        assert [i["name"] for i in manifest["inputs"]] == ["input_ids", "attention_mask", "token_type_ids"]
        assert manifest["inputs"][0]["type"] == "int64" and len(manifest["inputs"][0]["shape"]) == 2
        rows = {(r["provider"], r["status"]) for r in manifest["latency"]}
        assert ("cpu", "measured") in rows and any(p == "cuda" and s.startswith("not measured") for p, s in rows)
        cpu = next(r for r in manifest["latency"] if r["provider"] == "cpu")
        assert cpu["threads"] == 1 and cpu["p50_ms"] > 0 and (cpu["batch"], cpu["seq"]) == (1, 16)
        assert manifest["measured_on"]["cpu"] == report["environment"]["cpu"]
        assert set(manifest["files"]) == {p.name for p in folder.iterdir()} - {PACKAGE_FILE}
        cached = run["ws"] / "cache" / v["artifact_key"] / "model.onnx"
        assert manifest["files"]["model.onnx"]["sha256"] == file_sha256(cached)  # the model the report measured
        config = json.loads((folder / "config.json").read_text())
        assert config["id2label"] == {"0": "rotten", "1": "fresh"}
        assert {"tokenizer.json", "tokenizer_config.json"} <= set(manifest["files"])


def test_the_recommended_variant_has_its_package_and_the_reason_says_why(run: dict[str, Any]) -> None:
    rec = run["report"]["recommended"]
    assert rec["variant"] in run["report"]["packages"] and rec["package"] == f"packages/{rec['variant']}"
    assert rec["variant"] == rec["candidates"][0] and rec["provider"] == "cpu"
    assert f"p50 {rec['p50_ms']:.2f} ms" in rec["reason"]


@pytest.mark.parametrize("variant", ["fp32-onnx", "int8-dynamic", "int8-static"])
def test_a_package_loads_with_optimum_a_pipeline_and_plain_onnxruntime_and_predicts_what_evaluation_did(
    run: dict[str, Any], variant: str
) -> None:
    """Ten eval rows, fed in the evaluation's first batch (same padding), through three independent loaders."""
    import numpy as np
    import onnxruntime as ort
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer, pipeline

    folder = run["out"] / "packages" / variant
    texts = run["splits"].eval.texts[: run["batch_size"]]  # the evaluation's first batch
    want = _evaluated(run, variant)[:10]
    assert len(set(want)) == 2  # both classes among the ten: a constant answer cannot pass

    model = ORTModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    classify = pipeline("text-classification", model=model, tokenizer=tokenizer)
    out = classify(texts, batch_size=len(texts), truncation=True, max_length=run["max_length"])
    assert [model.config.label2id[o["label"]] for o in out][:10] == want

    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    enc = tokenizer(texts, truncation=True, max_length=run["max_length"], padding=True, return_tensors="np")
    feed = {i.name: enc[i.name].astype(np.int64) for i in session.get_inputs()}
    assert session.run(None, feed)[0].argmax(-1)[:10].tolist() == want

    manifest, results = predict_package(folder, texts, batch_size=run["batch_size"])
    assert [manifest["labels"].index(r["label"]) for r in results][:10] == want
    assert all(abs(sum(r["scores"].values()) - 1) < 1e-6 and r["score"] >= 0.5 for r in results)


def test_optkit_predict_labels_texts_typed_on_the_command_line(run: dict[str, Any], tmp_path: Path) -> None:
    folder = run["out"] / "packages" / run["report"]["recommended"]["variant"]
    done = CliRunner().invoke(cli, ["predict", str(folder), *REVIEWS])
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert len(lines) == 4 and all(line.split()[0] in ("rotten", "fresh") for line in lines[1:])
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(REVIEWS) + "\n\n")
    as_json = json.loads(CliRunner().invoke(cli, ["predict", str(folder), "--file", str(texts), "--json"]).output)
    assert [r["text"] for r in as_json] == REVIEWS
    assert [r["label"] for r in as_json] == [line.split()[0] for line in lines[1:]]
    assert as_json[0]["label"] == "fresh" and as_json[1]["label"] == "rotten"  # the tiny model learnt the words


def test_a_changed_file_or_no_package_is_refused_with_exit_2(run: dict[str, Any], tmp_path: Path) -> None:
    folder = tmp_path / "pkg"
    shutil.copytree(run["out"] / "packages" / "int8-dynamic", folder)
    with open(folder / "model.onnx", "r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    done = CliRunner().invoke(cli, ["predict", str(folder), "a film"])
    assert done.exit_code == 2 and "model.onnx" in done.output and "sha256" in done.output, done.output
    assert CliRunner().invoke(cli, ["predict", str(tmp_path), "a film"]).exit_code == 2
    done = CliRunner().invoke(cli, ["predict", str(run["out"] / "packages" / "fp32-onnx")])
    assert done.exit_code == 2 and "no input" in done.output


def test_optkit_package_recreates_a_package_from_the_cache(run: dict[str, Any], tmp_path: Path) -> None:
    dest = tmp_path / "again"
    done = CliRunner().invoke(
        cli, ["package", str(run["out"]), "int8-static", "-o", str(dest), "--workspace", str(run["ws"])]
    )
    assert done.exit_code == 0, done.output
    assert read_package(dest)["files"] == read_package(run["out"] / "packages" / "int8-static")["files"]
    with pytest.raises(PackageError, match="has no variant 'int9'"):
        package_variant(run["out"], "int9", dest, workspace=run["ws"])
    done = CliRunner().invoke(cli, ["package", str(run["out"]), "int8-static", "-o", str(dest)])  # not its cache
    assert done.exit_code == 2 and "not in" in done.output and "--workspace" in done.output


def test_installing_a_package_replaces_the_old_one_whole(run: dict[str, Any], tmp_path: Path) -> None:
    dest, staged = tmp_path / "p", tmp_path / ".p.tmp-1-x"
    shutil.copytree(run["out"] / "packages" / "fp32-onnx", dest)
    shutil.copytree(run["out"] / "packages" / "int8-dynamic", staged)
    install_package(staged, dest)
    assert read_package(dest)["variant"] == "int8-dynamic" and sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_a_variant_that_fails_its_gate_loses_its_old_package_and_cannot_be_recommended(
    run: dict[str, Any], tmp_path: Path
) -> None:
    root = tmp_path / "e2e"
    shutil.copytree(run["root"], root)
    data = yaml.safe_load(run["path"].read_text())
    data["evaluate"]["providers"] = ["cpu"]
    data["report"]["gates"] = {"int8-static": {"min_speedup": 1000.0}}
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    outcome = run_recipe(path, output=root / "reports", workspace=root / "ws")
    assert not outcome.passed and set(outcome.report["packages"]) == {"fp32-onnx", "int8-dynamic"}
    assert sorted(p.name for p in (root / "reports" / "tiny" / "packages").iterdir()) == ["fp32-onnx", "int8-dynamic"]
    assert outcome.report["recommended"]["variant"] in {"fp32-onnx", "int8-dynamic"}
    assert "int8-static" not in outcome.report["recommended"]["candidates"]


def test_a_torch_variant_packages_as_its_folder_and_predicts_like_its_evaluation(
    run: dict[str, Any], tmp_path: Path
) -> None:
    """`report.package: [baseline]`: the torch folder, label names in config.json, run through the task's loader."""
    dest = package_variant(run["out"], "baseline", tmp_path / "baseline", workspace=run["ws"])
    manifest = read_package(dest)
    assert manifest["format"] == "torch" and "model.safetensors" in manifest["files"]
    assert [i["name"] for i in manifest["inputs"]] == ["input_ids", "token_type_ids", "attention_mask"]
    texts = run["splits"].eval.texts[:10]
    _, results = predict_package(dest, texts, batch_size=run["batch_size"])
    assert [manifest["labels"].index(r["label"]) for r in results] == _evaluated(run, "baseline")[:10]

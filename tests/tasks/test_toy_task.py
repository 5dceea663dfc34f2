"""A task added from a test module alone: text regression, trained, exported, quantised, evaluated, reported.

Nothing in optkit is edited or patched: the task registers itself, and the data split, fine-tune,
export (and its validation), quantisation, harness and report ask it what they need.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

import optkit.tasks
from optkit.api import run_recipe
from optkit.errors import RecipeError
from optkit.tasks import Targets, Task, register_task
from tests.conftest import make_rows


class TextRegression(Task):
    """One number per text (a rating, a score): a one-output head trained on mean squared error."""

    name = "text-regression"
    metrics = {"mse": False, "mae": False}  # noqa: RUF012
    export_name = "text-classification"  # Optimum exports a one-output sequence head the same way
    auto_model = "AutoModelForSequenceClassification"
    target_dtype = "float32"

    def targets(self, column: Any, spec: Any, where: str) -> Targets:
        values = column.astype(float)
        return Targets(
            values.tolist(),
            keep=values == values,  # every row with a number
            names=[],
            strata=None,
            summary={"summary": f"mean {values.mean():.3f}, sd {values.std():.3f}"},
        )

    def load_model(
        self,
        path: Path,
        names: Sequence[str],
        *,
        trust_remote_code: bool,
        for_training: bool,
        where: str,
        log: Callable[[str], None] = print,
    ) -> tuple[Any, Any]:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        extra = {"num_labels": 1, "problem_type": "regression", "ignore_mismatched_sizes": True} if for_training else {}
        model = AutoModelForSequenceClassification.from_pretrained(path, **extra)
        return (model if for_training else model.eval()), AutoTokenizer.from_pretrained(path)

    def check_outputs(self, outputs: Any, names: Sequence[str], variant: str) -> None:
        assert outputs.shape[-1] == 1, f"{variant}: {outputs.shape}"

    def predictions(self, outputs: Any) -> list[float]:
        return [float(x) for x in outputs[:, 0]]

    def scores(self, predictions: Sequence[Any], targets: Sequence[Any], names: Sequence[str]) -> dict[str, float]:
        errors = [p - y for p, y in zip(predictions, targets, strict=True)]
        return {"mse": sum(e * e for e in errors) / len(errors), "mae": sum(abs(e) for e in errors) / len(errors)}

    def agreement(self, predictions: Sequence[Any], reference: Sequence[Any]) -> float:
        close = [abs(a - b) <= 0.05 for a, b in zip(predictions, reference, strict=True)]
        return sum(close) / len(close)

    def row_scores(self, predictions: Sequence[Any], targets: Sequence[Any]) -> list[float]:
        return [(p - y) ** 2 for p, y in zip(predictions, targets, strict=True)]  # their mean is the MSE


@pytest.fixture
def regression_task(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(optkit.tasks, "_TASKS", dict(optkit.tasks.list_tasks()))
    register_task(TextRegression)
    yield


@pytest.fixture(scope="module")
def scores_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Review snippets with a score: about 0.9 for a fresh review, 0.1 for a rotten one."""
    path = tmp_path_factory.mktemp("regression") / "scores.csv"
    rng = random.Random(3)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["review", "score"])
        for text, label in make_rows(200):
            w.writerow([text, round((0.9 if label == "fresh" else 0.1) + rng.uniform(-0.05, 0.05), 3)])
    return path


def _recipe(base: dict[str, Any], csv_path: Path, tmp: Path) -> Path:
    recipe = json.loads(json.dumps(base))
    recipe["model"] = {"source": base["model"]["source"], "task": "text-regression"}
    recipe["data"] = {**recipe["data"], "source": str(csv_path), "label": "score"}
    del recipe["data"]["labels"]
    recipe["variants"] = {"fp32-onnx": ["export"], "int8-dynamic": ["export", {"quantize": {"mode": "dynamic"}}]}
    recipe["report"] = {"formats": ["json", "md", "html"], "gates": {"*": {"min_agreement": 0.5}}}
    path = tmp / "regression.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_an_unknown_task_is_a_recipe_error_with_a_hint(
    base_recipe: dict[str, Any], scores_csv: Path, tmp_path: Path
) -> None:
    from optkit.recipe import load_recipe

    with pytest.raises(RecipeError, match=r"model\.task: unknown task 'text-regression'; .*known tasks: .*text-class"):
        load_recipe(_recipe(base_recipe, scores_csv, tmp_path))


def test_a_task_from_outside_runs_end_to_end(
    regression_task: None, base_recipe: dict[str, Any], scores_csv: Path, tmp_path: Path
) -> None:
    outcome = run_recipe(_recipe(base_recipe, scores_csv, tmp_path), output=tmp_path / "out", workspace=tmp_path / "ws")
    report = outcome.report
    assert report["task"]["name"] == "text-regression" and report["task"]["primary_metric"] == "mse"
    v = report["variants"]
    targets = [0.9 if label == "fresh" else 0.1 for _, label in make_rows(200)]
    mean = sum(targets) / len(targets)
    variance = sum((t - mean) ** 2 for t in targets) / len(targets)
    assert v["baseline"]["mse"] < variance / 4  # it learned: far better than predicting the mean
    assert v["fp32-onnx"]["agreement_with_baseline"] == 1.0  # export changes no prediction beyond 0.05
    assert abs(v["fp32-onnx"]["mse"] - v["baseline"]["mse"]) < 1e-6
    assert v["fp32-onnx"]["mse_delta"] == pytest.approx(v["fp32-onnx"]["mse"] - v["baseline"]["mse"])
    assert "accuracy" not in v["int8-dynamic"] and v["int8-dynamic"]["mae"] >= 0
    # the interval needs only the task's row scores: no McNemar (not right/wrong), no classes
    lo, hi = v["int8-dynamic"]["mse_delta_ci95"]
    assert lo <= v["int8-dynamic"]["mse_delta"] <= hi and v["int8-dynamic"]["mse_delta_verdict"]
    assert "mcnemar_p" not in v["int8-dynamic"] and "per_class" not in v["int8-dynamic"]
    assert all(g["passed"] for g in report["gates"])
    markdown = (tmp_path / "out" / "tiny" / "report.md").read_text()
    assert "| variant | runtime | mse | Δ mse | mae | agree |" in markdown
    html = (tmp_path / "out" / "tiny" / "report.html").read_text()
    assert ">mse<" in html and ">Δ mse<" in html and ">accuracy<" not in html


def test_a_classifier_only_pass_is_refused_for_another_task(
    regression_task: None, base_recipe: dict[str, Any], scores_csv: Path, tmp_path: Path
) -> None:
    from optkit.api import validate_recipe

    path = _recipe(base_recipe, scores_csv, tmp_path)
    recipe = yaml.safe_load(path.read_text())
    recipe["variants"]["student"] = [{"distill": {"student": {"layers": [0]}}}, "export"]
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(RecipeError, match=r"variants\.student\[0\]\.distill: distill works on .*text-classification"):
        validate_recipe(path)

"""Shared fixtures: a tiny BERT built from a config (no downloads) and a small labelled CSV."""

from __future__ import annotations

import copy
import csv
import dataclasses
from pathlib import Path
from typing import Any

import pytest

# urllib3 (imported by transformers via requests) probes for IPv6 at import by opening an AF_INET6
# socket; no connection is made. Imported here, before pytest-socket blocks sockets for each test
# (--disable-socket in addopts), so that probe is not reported as a test using the network.
import urllib3  # noqa: F401

from optkit.passes.base import Artifact, PassContext, RunSettings
from optkit.recipe import recipe_from_dict
from optkit.sources.data import load_splits
from optkit.sources.model import resolve_model
from scripts.tiny_assets import FILLER, NEGATIVE, POSITIVE, make_rows, write_model

__all__ = ["FILLER", "NEGATIVE", "POSITIVE", "make_rows", "restore_sigint"]


def restore_sigint() -> None:
    """``preexec_fn`` for subprocesses that a test interrupts: give them Ctrl-C back.

    A test runner started as a background job of a non-interactive shell (``cmd &``, as some CI
    wrappers do) ignores SIGINT, its children inherit that, and Python only turns SIGINT into
    KeyboardInterrupt when it is not ignored at start-up.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT encoder (no head) with a word-level vocab: like MiniLM, 10,000x smaller.
    The same one CI's dogfood recipe runs on (scripts/tiny_assets.py)."""
    out = tmp_path_factory.mktemp("tiny-bert")
    write_model(out)
    return out


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["review", "sentiment", "extra"])
        for text, label in make_rows(200):
            w.writerow([text, label, "x"])
        w.writerow(["a synopsis row that is not a review", "plot", "x"])
    return path


def tiny_recipe(model_source: str, data_source: str) -> dict[str, Any]:
    """The fast recipe of ``base_recipe`` over any model and data source (nothing is opened here)."""
    return {
        "name": "tiny",
        "seed": 7,
        "model": {"source": model_source, "num_labels": 2},
        "data": {
            "source": data_source,
            "text": "review",
            "label": "sentiment",
            "labels": ["rotten", "fresh"],
            "max_length": 16,
            "splits": {"train": 120, "eval": 60, "calibration": 16},
        },
        "baseline": [{"finetune": {"epochs": 16, "learning_rate": 3e-3, "batch_size": 16}}],
        "variants": {
            "fp32-onnx": [{"export": {}}],
            "int8-dynamic": [{"export": {}}, {"quantize": {"mode": "dynamic"}}],
            "int8-static": [{"export": {}}, {"quantize": {"mode": "static"}}],
        },
        "evaluate": {
            "shapes": [{"batch": 1, "seq": 16}],
            "latency": {"warmup": 1, "runs": 5, "threads": 1},
            "memory": False,
            "batch_size": 16,
        },
        "report": {"gates": {"int8-dynamic": {"max_accuracy_drop": 0.5}}},
    }


@pytest.fixture(scope="session")
def base_recipe(tiny_model_dir: Path, tiny_csv: Path) -> dict[str, Any]:
    """A fast recipe over the tiny model: every pass kind, small splits, few timing runs."""
    return tiny_recipe(str(tiny_model_dir), str(tiny_csv))


@pytest.fixture
def recipe_dict(base_recipe: dict[str, Any]) -> dict[str, Any]:
    """A fresh, mutable copy of ``base_recipe`` for one test."""
    return copy.deepcopy(base_recipe)


@pytest.fixture
def schema_recipe_dict() -> dict[str, Any]:
    """``recipe_dict`` naming a model and data that do not exist, for tests of the recipe schema alone.

    Validation never opens them, so these tests skip building the tiny model: 4-15 s per pytest
    session, paid again by every mutant that mutmut tries (README, Development).
    """
    return tiny_recipe("models/tiny-bert", "data/reviews.csv")


@pytest.fixture
def write_recipe(tmp_path: Path):  # type: ignore[no-untyped-def]
    def write(data: dict[str, Any], name: str = "recipe.yaml") -> Path:
        import yaml

        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


@dataclasses.dataclass
class RecipeContext(PassContext):
    """A pass context that also keeps the recipe it was made from, so a test can resolve its model."""

    recipe: Any = None


def context(recipe_dict: dict[str, Any], out: Path) -> RecipeContext:
    recipe = recipe_from_dict(recipe_dict)
    splits = load_splits(recipe.data, recipe.seed, recipe.model.task)
    out.mkdir(parents=True, exist_ok=True)
    settings = RunSettings.from_recipe(recipe)
    return RecipeContext(out_dir=out, step="test", settings=settings, splits=lambda: splits, recipe=recipe)


@pytest.fixture(scope="session")
def finetuned(base_recipe: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    """The tiny model fine-tuned once, shared by the export and quantisation tests."""
    from optkit.passes.finetune import FinetuneConfig, finetune

    ctx = context(base_recipe, tmp_path_factory.mktemp("finetuned"))
    finetune(resolve_model(ctx.recipe.model), FinetuneConfig(epochs=16, learning_rate=3e-3, batch_size=16), ctx)
    return Artifact(ctx.out_dir, "torch", key="finetuned", meta=ctx.meta)


@pytest.fixture(scope="session")
def exported(base_recipe: dict[str, Any], finetuned: Artifact, tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    from optkit.passes.onnx_export import ExportConfig, export

    ctx = context(base_recipe, tmp_path_factory.mktemp("exported"))
    export(finetuned, ExportConfig(), ctx)
    return Artifact(ctx.out_dir, "onnx", key="exported", meta=ctx.meta)


@pytest.fixture(scope="session")
def tiny_e2e(base_recipe: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Any]:
    """One real ``run_recipe`` of the tiny recipe on cpu and cuda with every report format: (root, recipe
    path, outcome). Shared by the modules that read a finished run; a test that changes it works on a copy
    (see ``first_run`` in test_api.py)."""
    import yaml

    from optkit.api import run_recipe

    root = tmp_path_factory.mktemp("e2e")
    data = copy.deepcopy(base_recipe)
    data["evaluate"]["providers"] = ["cpu", "cuda"]
    data["evaluate"]["slices"] = ["length", "label"]
    data["report"]["formats"] = ["json", "md", "html", "junit"]
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    outcome = run_recipe(path, output=root / "reports", workspace=root / "ws")
    return root, path, outcome

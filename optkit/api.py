"""Public entry points: ``run_recipe`` and ``validate_recipe``. The CLI only parses and prints."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optkit.progress import Progress, SilentProgress
from optkit.recipe import Recipe, load_recipe

if TYPE_CHECKING:
    from optkit.sources.data import Splits

__all__ = ["REPORT_SCHEMA_VERSION", "RunOutcome", "run_recipe", "validate_recipe"]

REPORT_SCHEMA_VERSION = 1


@dataclass
class RunOutcome:
    report: dict[str, Any]
    paths: list[Path]

    @property
    def passed(self) -> bool:
        return all(g["passed"] for g in self.report["gates"])


def validate_recipe(path: str | Path) -> tuple[Recipe, Splits]:
    """Load and check a recipe, and resolve its model and data sources, without running any pass."""
    from optkit.sources.data import load_splits
    from optkit.sources.model import resolve_model

    recipe = load_recipe(path)
    resolve_model(recipe.model)
    return recipe, load_splits(recipe.data, recipe.seed)


def run_recipe(
    path: str | Path,
    *,
    output: str | Path = "reports",
    workspace: str | Path = ".optkit",
    force: bool = False,
    progress: Progress | None = None,
) -> RunOutcome:
    """Build every variant, evaluate it, write the reports and check the gates.

    Example:
        >>> outcome = run_recipe("recipes/bert-int8.yaml")  # doctest: +SKIP
        >>> outcome.passed
        True
    """
    from optkit.cache import ArtifactCache, write_atomic
    from optkit.envinfo import collect_environment
    from optkit.evaluate.harness import evaluate_build
    from optkit.reports.gates import check_gates
    from optkit.reports.markdown import render_markdown
    from optkit.runner import build_artifacts

    progress = progress or SilentProgress()
    started = time.time()
    recipe = load_recipe(path)
    recipe_text = Path(path).read_bytes()
    workspace = Path(workspace)
    progress.log(f"[bold]optkit run[/] {path} -> {Path(output) / recipe.name}")
    build = build_artifacts(recipe, workspace, force=force, progress=progress)
    built_s = time.time() - started
    evaluation = evaluate_build(recipe, build, ArtifactCache(workspace / "cache"), progress)
    splits = build.splits
    assert splits is not None
    report: dict[str, Any] = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "durations_s": {"build": round(built_s, 1), "total": round(time.time() - started, 1)},
        "recipe_path": str(path),
        "recipe_sha256": hashlib.sha256(recipe_text).hexdigest(),
        "recipe": recipe.model_dump(mode="json"),
        "environment": collect_environment(evaluation["threads"]),
        "seeds": {"recipe": recipe.seed},
        "source_model": {
            "source": recipe.model.source,
            "fingerprint": build.source.key,
            "trust_remote_code": recipe.model.trust_remote_code,
        },
        "data": {
            **splits.info,
            "fingerprint": splits.fingerprint,
            "labels": splits.label_names,
            "train_rows": len(splits.train),
            "calibration_rows": len(splits.calibration),
            "eval_rows": len(splits.eval),
        },
        "reference": evaluation["reference"],
        "threads": evaluation["threads"],
        "variants": evaluation["variants"],
        "results": evaluation["results"],
        "steps": [asdict(s) for s in build.steps],
    }
    report["gates"] = check_gates(recipe, evaluation)
    report["notes"] = _notes(report)
    report["passed"] = all(g["passed"] for g in report["gates"])

    out_dir = Path(output) / recipe.name
    paths = []
    if "json" in recipe.report.formats:
        paths.append(out_dir / "report.json")
        write_atomic(paths[-1], json.dumps(report, indent=2, sort_keys=False, default=str) + "\n")
    if "md" in recipe.report.formats:
        paths.append(out_dir / "report.md")
        write_atomic(paths[-1], render_markdown(report))
    return RunOutcome(report=report, paths=paths)


def _notes(report: dict[str, Any]) -> list[str]:
    """Plain-language explanations a deployment engineer would otherwise have to dig for."""
    notes = []
    vnni = report["environment"]["cpu"]["int8_vnni"]
    for name, v in report["variants"].items():
        quant = [s for s in v["chain"] if s["kind"] == "quantize"]
        if not quant:
            continue
        mode = quant[-1]["mode"]
        for r in report["results"]:
            if r["variant"] != name or r["status"] != "measured" or r.get("speedup_vs_reference") is None:
                continue
            if r["speedup_vs_reference"] < 1.0:
                why = (
                    "this CPU has no VNNI, so int8 MatMul runs on AVX2 with extra widening steps"
                    if not vnni
                    else "QDQ pairs around float ops add conversions"
                )
                notes.append(
                    f"{name} ({mode} int8) is slower than {report['reference']} at b{r['batch']}×s{r['seq']} "
                    f"({r['speedup_vs_reference']:.2f}×): {why}. Reported as measured."
                )
    return notes

"""Public entry points: ``run_recipe`` and ``validate_recipe``. The CLI only parses and prints."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from optkit.cache import ArtifactCache, release_holds, write_files_atomic
from optkit.envinfo import collect_environment
from optkit.errors import PackageError, RunInterrupted, unexpected_errors
from optkit.evaluate.harness import evaluate_build
from optkit.evaluate.paired import encode_predictions
from optkit.evaluate.providers import provider_status
from optkit.interrupts import check
from optkit.preflight import check_inputs
from optkit.progress import Progress, SilentProgress
from optkit.recipe import Recipe, load_recipe
from optkit.redact import redact
from optkit.reports.gates import check_gates
from optkit.reports.html import render_html
from optkit.reports.junit import gates_junit
from optkit.reports.markdown import render_markdown
from optkit.reports.model import REPORT_SCHEMA_VERSION, check_report
from optkit.reports.notes import run_notes
from optkit.reports.recommend import recommend
from optkit.runner import BuildResult, build_artifacts
from optkit.ship import default_packages, install_package, remove_stale, stage_package, write_package
from optkit.sources.data import Splits, load_splits
from optkit.sources.model import resolve_model
from optkit.testhooks import pause_point

__all__ = ["RunOutcome", "package_variant", "run_recipe", "train_along", "validate_recipe"]


@dataclass
class RunOutcome:
    report: dict[str, Any]
    paths: list[Path]
    packages: list[Path] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(g["passed"] for g in self.report["gates"])


def validate_recipe(path: str | Path) -> tuple[Recipe, Splits]:
    """Load and check a recipe, and resolve its model and data sources, without running any pass."""

    recipe = load_recipe(path)
    source = resolve_model(recipe.model)
    splits = load_splits(recipe.data, recipe.seed, recipe.model.task, recipe.evaluate.slice_columns)
    check_inputs(recipe, source, splits)  # the same checks 'run' makes before its first step
    return recipe, splits


def run_recipe(
    path: str | Path,
    *,
    output: str | Path = "reports",
    workspace: str | Path = ".optkit",
    force: bool = False,
    progress: Progress | None = None,
    strict_providers: bool = False,
) -> RunOutcome:
    """Build every variant, evaluate it, write the reports and check the gates.

    Example:
        >>> outcome = run_recipe("recipes/bert-int8.yaml")  # doctest: +SKIP
        >>> outcome.passed
        True
    """

    try:
        return _run_recipe(path, output, workspace, force, progress, strict_providers)
    finally:
        release_holds()  # the run no longer reads its cache entries: another process may --force them


def _run_recipe(
    path: str | Path,
    output: str | Path,
    workspace: str | Path,
    force: bool,
    progress: Progress | None,
    strict_providers: bool,
) -> RunOutcome:

    progress = progress or SilentProgress()
    started = time.time()
    recipe = load_recipe(path)
    recipe_text = Path(path).read_bytes()
    workspace = Path(workspace)
    progress.log(f"[bold]optkit run[/] {path} -> {Path(output) / recipe.name}")
    if strict_providers:  # before minutes of training, not after
        for provider in recipe.evaluate.providers:
            provider_status(provider, strict=True)
    build = build_artifacts(recipe, workspace, force=force, progress=progress)
    built_s = time.time() - started
    out_dir = Path(output) / recipe.name
    try:
        with unexpected_errors("evaluation"):
            evaluation = evaluate_build(
                recipe, build, ArtifactCache(workspace / "cache"), progress, strict_providers=strict_providers
            )
    except KeyboardInterrupt:
        raise _interrupted("evaluation", build, out_dir) from None
    with unexpected_errors("report assembly"):
        report = _assemble_report(recipe, str(path), recipe_text, started, built_s, build, evaluation)
    staged: dict[Path, Path] = {}  # package folder -> its staged copy
    try:
        with unexpected_errors("packaging"):
            staged = _stage_packages(report, build, out_dir, progress)
        with unexpected_errors("report writing"):
            paths = _write_reports(recipe, report, build, out_dir)
            for dest, tmp in staged.items():  # right after the report's renames: the two stay in step
                install_package(tmp, dest)
            remove_stale(out_dir / "packages", list(report["packages"]), progress.log)
    finally:
        for tmp in staged.values():
            shutil.rmtree(tmp, ignore_errors=True)
    return RunOutcome(report=report, paths=paths, packages=list(staged))


def train_along(path: str | Path, *, workspace: str | Path = ".optkit", force: bool = False) -> None:
    """A rank other than 0 of a multi-process run: take part in its training steps, build nothing else.

    Rank 0 (``run_recipe`` in the process with ``RANK=0``) commits every cache entry, evaluates
    and writes the reports; this returns once the recipe's last training step is done.
    """
    try:
        build_artifacts(load_recipe(path), Path(workspace), force=force, progress=SilentProgress())
    finally:
        release_holds()


def package_variant(run_dir: str | Path, variant: str, dest: str | Path, *, workspace: str | Path = ".optkit") -> Path:
    """Re-create ``variant``'s package from a finished run (its report.json) and the cache, without rebuilding."""
    run_dir, dest = Path(run_dir), Path(dest)
    report_file = run_dir / "report.json" if run_dir.is_dir() else run_dir
    try:
        report = json.loads(report_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PackageError(f"cannot read {str(report_file)!r} ({e}); give a run's report folder") from None
    check_report(report, str(report_file))
    if report.get("kind", "recipe") != "recipe" or variant not in report["variants"]:
        known = ", ".join(report["variants"])
        raise PackageError(f"{str(report_file)!r} has no variant {variant!r} (it has: {known})")
    key = report["variants"][variant]["artifact_key"]
    cache = ArtifactCache(Path(workspace) / "cache")
    if cache.lookup(key) is None:
        raise PackageError(
            f"{variant}: its model (cache entry {key[:12]}) is not in {str(cache.root)!r} or no longer matches its "
            f"checksums; pass the run's --workspace, or run the recipe again to rebuild it"
        )
    return write_package(report, variant, cache.path(key), dest, report_dir=report_file.parent)


def _assemble_report(
    recipe: Recipe,
    path: str,
    recipe_text: bytes,
    started: float,
    built_s: float,
    build: BuildResult,
    evaluation: dict[str, Any],
) -> dict[str, Any]:
    """report.json's content: what was run, on what, with what results; secrets redacted."""

    splits = build.splits
    assert splits is not None
    report: dict[str, Any] = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "kind": "recipe",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "durations_s": {"build": round(built_s, 1), "total": round(time.time() - started, 1)},
        "recipe_path": path,
        "recipe_sha256": hashlib.sha256(recipe_text).hexdigest(),
        "recipe": recipe.model_dump(mode="json"),
        "environment": collect_environment(evaluation["threads"]),
        "seeds": {"recipe": recipe.seed},
        "source_model": {
            "source": recipe.model.source,
            "fingerprint": build.source.key,
            "trust_remote_code": recipe.model.trust_remote_code,
            # a model built from its config started from random weights: the report says so where readers look
            **({"weights": "none: built from config.json with random weights"} if recipe.model.from_config else {}),
        },
        "data": {
            **splits.info,
            "fingerprint": splits.fingerprint,
            "labels": splits.label_names,
            "train_rows": len(splits.train),
            "calibration_rows": len(splits.calibration),
            "eval_rows": len(splits.eval),
            # the eval rows' targets, in the compact form of each variant's eval_predictions: with both,
            # compare pairs two reports' rows when the data fingerprint is the same
            "eval_targets": encode_predictions(splits.eval.labels),
        },
        "task": evaluation["task"],
        "reference": evaluation["reference"],
        "threads": evaluation["threads"],
        "variants": evaluation["variants"],
        "results": evaluation["results"],
        "steps": [asdict(s) for s in build.steps],
    }
    if "traffic" in evaluation:
        report["traffic"] = evaluation["traffic"]
    report["gates"] = check_gates(recipe, evaluation)
    report["notes"] = run_notes(recipe, report)
    report["passed"] = all(g["passed"] for g in report["gates"])
    report["recommended"] = recommend(report)
    report["packages"] = {n: f"packages/{n}" for n in default_packages(report)}
    report["recommended"]["package"] = report["packages"].get(report["recommended"]["variant"] or "")
    return redact(report)  # no token from the environment or a recipe value reaches a report file


def _write_reports(recipe: Recipe, report: dict[str, Any], build: BuildResult, out_dir: Path) -> list[Path]:
    """Render every format the recipe asks for and swap them in together: the old report stays whole until then."""

    check_report(report, f"the report for {str(out_dir)!r}")  # never write what compare would refuse
    paths = []
    files: dict[Path, str] = {}  # staged together, renamed together: the old report stays whole until then
    if "json" in recipe.report.formats:
        paths.append(out_dir / "report.json")
        files[paths[-1]] = json.dumps(report, indent=2, sort_keys=False, default=str) + "\n"
    if "md" in recipe.report.formats:
        paths.append(out_dir / "report.md")
        files[paths[-1]] = render_markdown(report)
    if "html" in recipe.report.formats:
        paths.append(out_dir / "report.html")
        files[paths[-1]] = render_html(report)
    if "junit" in recipe.report.formats:
        paths.append(out_dir / "gates.xml")
        files[paths[-1]] = gates_junit(report)
    try:
        check()  # not after a Ctrl-C, even one Python swallowed: the old report stays
        write_files_atomic(files, before_replace=lambda: pause_point("report"))
    except KeyboardInterrupt:
        raise _interrupted("report writing", build, out_dir) from None
    return paths


def _stage_packages(report: dict[str, Any], build: BuildResult, out_dir: Path, progress: Progress) -> dict[Path, Path]:
    """Every package the report lists, staged whole beside its folder; installed with the report."""
    staged: dict[Path, Path] = {}
    try:
        for name, rel in report["packages"].items():
            progress.log(f"  package {name} …")
            dest = out_dir / rel
            staged[dest] = stage_package(report, name, build.artifacts[name].path, dest, report_dir=out_dir)
    except BaseException as e:
        for tmp in staged.values():
            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, KeyboardInterrupt):
            raise _interrupted("packaging", build, out_dir) from None
        raise
    return staged


def _interrupted(stage: str, build: BuildResult, out_dir: Path) -> Exception:
    """Ctrl-C after the build: say where it stopped, what is kept, and how to resume."""

    previous = out_dir / "report.json"
    kept = f"the previous report in {str(out_dir)!r} is unchanged" if previous.exists() else "no report was written"
    return RunInterrupted(
        f"interrupted during {stage}; all {len(build.steps)} step(s) are built and cached, {kept}. "
        f"Run the same command again to resume: built steps and cached predictions are reused, and speed "
        f"and memory are measured again"
    )

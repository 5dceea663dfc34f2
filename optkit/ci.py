"""CI as one command: run a recipe, compare it with a stored baseline report, say so in words.

``run_against_baseline`` is ``optkit run RECIPE --baseline BASE.json``: the run (reports written
as usual), then ``compare`` with the recipe's ``report.compare`` limits (or the caller's), then
``comparison.json``, ``comparison.md`` and ``comparison.xml`` (JUnit) beside the report, staged and
renamed together. The exit code is decided here, once:

* 0: every gate passed and nothing regressed against the baseline;
* 1: a gate failed, or a figure regressed beyond its limit and beyond the measured noise;
* 2: bad input: the baseline is missing or unreadable (checked before minutes of running), or it
  was measured on another kind of machine. That last one is a refusal, not a failure: speed from
  another CPU says nothing about this one. The run's report is still written, so it can become
  the baseline for this machine type.

``promote_report`` / ``update_baseline`` make a report the stored baseline, refusing one whose
gates failed: a baseline that fails its own gates would make every later comparison meaningless.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optkit.api import RunOutcome, run_recipe
from optkit.cache import write_atomic, write_files_atomic
from optkit.compare import CompareError, EnvironmentMismatch, Thresholds, compare_reports, load_report
from optkit.errors import OptkitError
from optkit.progress import Progress
from optkit.recipe import Recipe, load_recipe
from optkit.reports.junit import checks_junit
from optkit.reports.summary import render_ci_markdown, render_ci_summary, render_step_summary

__all__ = [
    "BaselineError",
    "BaselineOutcome",
    "append_summary",
    "default_baseline_path",
    "promote_report",
    "run_against_baseline",
    "thresholds_for",
    "update_baseline",
]

COMPARISON_FILES = ("comparison.json", "comparison.md", "comparison.xml")


class BaselineError(OptkitError):
    """A baseline cannot be used or written (exit 2)."""


@dataclass
class BaselineOutcome:
    """The run, its comparison with the baseline, the files written, and the exit code they add up to."""

    run: RunOutcome
    comparison: dict[str, Any]
    summary: str  # the short verdict, as printed
    step_summary: str  # the verdict and the folded details, for $GITHUB_STEP_SUMMARY
    paths: list[Path] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return int(self.comparison["exit_code"])


def default_baseline_path(recipe: Recipe) -> Path:
    """Where ``baseline update`` keeps a recipe's baseline when not told: ``baselines/<name>.json``."""
    return Path("baselines") / f"{recipe.name}.json"


def thresholds_for(recipe: Recipe, overrides: dict[str, float | None] | None = None) -> Thresholds:
    """The limits for this recipe: the caller's where given, else ``report.compare``, else compare's defaults."""
    defaults = Thresholds()
    spec = recipe.report.compare
    chosen = {}
    for name in ("max_accuracy_drop", "max_latency_regression", "max_memory_regression"):
        given = (overrides or {}).get(name)
        from_recipe = getattr(spec, name)
        chosen[name] = (
            given if given is not None else from_recipe if from_recipe is not None else getattr(defaults, name)
        )
    return Thresholds(**chosen)


def run_against_baseline(
    recipe_path: str | Path,
    baseline: str | Path,
    *,
    output: str | Path = "reports",
    workspace: str | Path = ".optkit",
    force: bool = False,
    progress: Progress | None = None,
    strict_providers: bool = False,
    overrides: dict[str, float | None] | None = None,
    allow_env_mismatch: bool = False,
) -> BaselineOutcome:
    """Run the recipe, compare it with ``baseline``, and write the comparison beside the report.

    Example:
        >>> outcome = run_against_baseline("recipes/bert-int8.yaml", "baselines/bert-int8.json")  # doctest: +SKIP
        >>> outcome.exit_code
        0
    """
    base = _load_baseline(baseline)  # a missing or broken baseline fails now, not after the run
    recipe = load_recipe(recipe_path)
    limits = thresholds_for(recipe, overrides)
    run = run_recipe(
        recipe_path,
        output=output,
        workspace=workspace,
        force=force,
        progress=progress,
        strict_providers=strict_providers,
    )
    comparison = _compare(base, run.report, limits, allow_env_mismatch)
    comparison.update(
        baseline=str(baseline),
        report=str(Path(output) / recipe.name / "report.json"),
        recipe=recipe.name,
        recipe_changed=base.get("recipe_sha256") not in (None, run.report.get("recipe_sha256")),
        gates_passed=run.passed,
    )
    comparison["exit_code"] = _exit_code(comparison)
    paths = _write_comparison(Path(output) / recipe.name, run.report, comparison)
    return BaselineOutcome(
        run=run,
        comparison=comparison,
        summary=render_ci_summary(run.report, comparison),
        step_summary=render_step_summary(run.report, comparison),
        paths=paths,
    )


def _load_baseline(path: str | Path) -> dict[str, Any]:
    if not Path(path).is_file():
        raise BaselineError(
            f"baseline {str(path)!r} does not exist; run the recipe once on this machine type and promote its "
            f"report (optkit baseline update RECIPE), then commit or cache that file"
        )
    return load_report(path)


def _compare(base: dict[str, Any], new: dict[str, Any], limits: Thresholds, allow_env_mismatch: bool) -> dict[str, Any]:
    """compare's result with a status; another machine's baseline is refused, and the refusal recorded."""
    try:
        result = compare_reports(base, new, limits, allow_env_mismatch=allow_env_mismatch)
    except EnvironmentMismatch as e:
        return {
            "status": "refused",
            "refused": str(e),
            "thresholds": limits.__dict__,
            "checks": [],
            "notes": [],
            "passed": False,
        }
    result["status"] = "passed" if result["passed"] else "failed"
    result["refused"] = None
    return result


def _exit_code(comparison: dict[str, Any]) -> int:
    """A failed gate is a failure whatever the baseline says; a refused baseline is bad input; then regressions."""
    if not comparison["gates_passed"]:
        return 1
    if comparison["status"] == "refused":
        return 2
    return 0 if comparison["passed"] else 1


def _write_comparison(out_dir: Path, report: dict[str, Any], comparison: dict[str, Any]) -> list[Path]:
    """comparison.json / .md / .xml, staged and renamed together like the report itself."""
    name = comparison["recipe"]
    cases = [
        {
            "classname": f"optkit.{name}.{g['variant']}",
            "name": g["gate"],
            "passed": g["passed"],
            "message": g["message"],
        }
        for g in report.get("gates", [])
    ]
    cases += [
        {
            "classname": f"optkit.compare.{c['item']}",
            "name": c["metric"],
            "passed": c["passed"],
            "message": c["message"],
        }
        for c in comparison["checks"]
    ]
    if comparison["status"] == "refused":
        cases.append(
            {"classname": "optkit.compare", "name": "baseline", "passed": False, "message": comparison["refused"]}
        )
    files: dict[Path, str] = {
        out_dir / "comparison.json": json.dumps(comparison, indent=2, default=str) + "\n",
        out_dir / "comparison.md": render_ci_markdown(report, comparison),
        out_dir / "comparison.xml": checks_junit(
            f"optkit run {name} vs {comparison['baseline']}", cases, timestamp=report.get("finished")
        ),
    }
    write_files_atomic(files)
    return list(files)


def append_summary(path: str | Path, text: str) -> None:
    """Append ``text`` to a step-summary file (``$GITHUB_STEP_SUMMARY``), creating it if needed.

    An append, not an atomic replace: the file belongs to the CI runner and earlier steps may have
    written to it. One write call keeps the block whole.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")
    except OSError as e:
        raise BaselineError(f"summary file {str(path)!r} cannot be appended to: {e.strerror}") from None


def promote_report(report_path: str | Path, dest: str | Path) -> dict[str, Any]:
    """Copy a passing report to ``dest`` byte for byte, atomically; refuse one whose gates failed."""
    report_path, dest = Path(report_path), Path(dest)
    report = _load_for_promotion(report_path)
    failed = [g for g in report.get("gates", []) if not g["passed"]]
    if failed or report.get("passed") is False:
        listed = "; ".join(g["message"] for g in failed) or "the report says it did not pass"
        raise BaselineError(
            f"refusing to promote {str(report_path)!r}: {len(failed)} gate(s) failed ({listed}). A baseline must "
            f"be a run that passed its gates; fix the variant or the gate, run again, then promote"
        )
    if report_path.resolve() == dest.resolve():
        raise BaselineError(f"report and baseline are the same file {str(dest)!r}; give another destination")
    write_atomic(dest, report_path.read_bytes())
    return report


def _load_for_promotion(path: Path) -> dict[str, Any]:
    try:
        return load_report(path)
    except CompareError as e:
        raise BaselineError(f"cannot promote: {e}") from None


def update_baseline(
    recipe_path: str | Path, *, output: str | Path = "reports", dest: str | Path | None = None
) -> tuple[Path, Path, dict[str, Any]]:
    """Promote the recipe's latest report (``OUTPUT/<name>/report.json``) to its baseline.

    Refused when that report was made from another version of the recipe file: the baseline must
    describe the recipe that CI will run. Returns (report path, baseline path, report).
    """
    recipe = load_recipe(recipe_path)
    report_path = Path(output) / recipe.name / "report.json"
    if not report_path.is_file():
        formats = "" if "json" in recipe.report.formats else " (and add json to report.formats: it is not there)"
        raise BaselineError(
            f"no report to promote: {str(report_path)!r} does not exist; run {str(recipe_path)!r} first{formats}"
        )
    sha = hashlib.sha256(Path(recipe_path).read_bytes()).hexdigest()
    made_from = _load_for_promotion(report_path).get("recipe_sha256")
    if made_from != sha:
        raise BaselineError(
            f"refusing to promote {str(report_path)!r}: it was made from another version of {str(recipe_path)!r} "
            f"(recipe sha256 {str(made_from)[:12]}, the file now {sha[:12]}); run the recipe again, then promote"
        )
    target = Path(dest) if dest is not None else default_baseline_path(recipe)
    return report_path, target, promote_report(report_path, target)

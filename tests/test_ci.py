"""The CI layer without a run: limits, the summary a reviewer reads, promoting a baseline, the CLI's refusals."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from optkit.ci import BaselineError, append_summary, promote_report, thresholds_for, update_baseline
from optkit.cli import cli
from optkit.compare import Thresholds, compare_reports
from optkit.recipe import recipe_from_dict
from optkit.reports.summary import check_line, render_ci_markdown, render_ci_summary, render_step_summary

REPORT = Path(__file__).resolve().parents[1] / "reports" / "bert-int8" / "report.json"


def _report() -> dict[str, Any]:
    """The committed sample, without its recommendation: the tests that need one add their own."""
    report = json.loads(REPORT.read_text())
    report.pop("recommended", None)
    return report


def _slower(report: dict[str, Any], variant: str, batch: int, factor: float) -> dict[str, Any]:
    """A copy where one row's every timing (samples, p50, its interval) is ``factor`` times slower."""
    new = copy.deepcopy(report)
    for row in new["results"]:
        if row["variant"] == variant and row["batch"] == batch and row["status"] == "measured":
            lat = row["latency"]
            for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "max_ms"):
                lat[k] *= factor
            lat["p50_ci95_ms"] = [x * factor for x in lat["p50_ci95_ms"]]
            row["samples_ms"] = [x * factor for x in row["samples_ms"]]
    return new


def _comparison(base: dict[str, Any], new: dict[str, Any], **extra: Any) -> dict[str, Any]:
    result = compare_reports(base, new, Thresholds())
    result.update(status="passed" if result["passed"] else "failed", refused=None, baseline="baselines/b.json")
    result.update(gates_passed=all(g["passed"] for g in new["gates"]), **extra)
    return result


def test_limits_come_from_the_flags_then_the_recipe_then_compare(recipe_dict: dict[str, Any]) -> None:
    assert thresholds_for(recipe_from_dict(recipe_dict)) == Thresholds()
    recipe_dict["report"]["compare"] = {"max_latency_regression": 0.5, "max_memory_regression": 0.2}
    recipe = recipe_from_dict(recipe_dict)
    assert thresholds_for(recipe) == Thresholds(0.01, 0.5, 0.2)
    assert thresholds_for(recipe, {"max_latency_regression": 0.05, "max_accuracy_drop": None}) == Thresholds(
        0.01, 0.05, 0.2
    )


def test_a_negative_recipe_limit_is_refused_naming_the_field(recipe_dict: dict[str, Any]) -> None:
    from optkit.errors import RecipeError

    recipe_dict["report"]["compare"] = {"max_latency_regression": -0.1}
    with pytest.raises(RecipeError, match="max_latency_regression"):
        recipe_from_dict(recipe_dict)


def test_a_slower_variant_gets_one_line_with_both_figures_and_the_allowance() -> None:
    base = _report()
    result = _comparison(base, _slower(base, "int8-dynamic", 1, 1.5))
    failed = [c for c in result["checks"] if not c["passed"]]
    assert [c["variant"] for c in failed] == ["int8-dynamic"]
    line = check_line(failed[0])
    p_b = next(r for r in base["results"] if r["variant"] == "int8-dynamic" and r["batch"] == 1)["latency"]["p50_ms"]
    assert line == (
        f"int8-dynamic: p50 at b1×s128 {p_b * 1.5:.1f} ms vs {p_b:.1f} ms, +50% (allowed +10% beyond noise)"
    )
    summary = render_ci_summary(_slower(base, "int8-dynamic", 1, 1.5), result)
    first, *rest = summary.splitlines()
    assert first == "### optkit bert-int8: FAIL: 1 regression(s) vs the baseline"
    assert f"- **regression**: {line}" in rest
    assert len(summary.splitlines()) < 10  # a summary, not the table
    assert "fp32-onnx" not in summary


def test_accuracy_memory_and_missing_rows_read_in_words() -> None:
    base = _report()
    new = copy.deepcopy(base)
    new["variants"]["int8-static"]["accuracy"] -= 0.03
    for row in new["results"]:
        if row["variant"] == "int8-dynamic" and row["batch"] == 8 and row.get("memory"):
            row["memory"]["peak_rss_mb"] *= 1.5
    new["results"] = [r for r in new["results"] if not (r["variant"] == "baseline" and r["batch"] == 8)]
    lines = {check_line(c) for c in _comparison(base, new)["checks"] if not c["passed"]}
    acc = base["variants"]["int8-static"]["accuracy"]
    assert f"int8-static: accuracy {acc - 0.03:.4f} vs {acc:.4f}, -3.00 points (allowed −1.00)" in lines
    assert any(
        re.fullmatch(r"int8-dynamic: peak RSS at b8×s128 \d+ MB vs \d+ MB, \+50% \(allowed \+10%\)", x) for x in lines
    )
    assert "baseline cpu b8×s128: measured in the baseline but missing from this run" in lines


def test_small_and_mid_figures_keep_their_digits() -> None:
    tiny = {"variant": "v", "item": "v cpu b1×s16", "metric": "p50 latency", "batch": 1, "seq": 16}
    tiny.update(base=0.0803, new=24.0, change=24.0 / 0.0803 - 1, allowed=2.0, passed=False)
    assert check_line(tiny) == "v: p50 at b1×s16 24.0 ms vs 0.080 ms, +29788% (allowed +200% beyond noise)"
    tiny.update(base=4.712, new=5.5, change=5.5 / 4.712 - 1, provider="cuda")
    assert check_line(tiny, show_provider=True).startswith("v: p50 at b1×s16 on cuda 5.50 ms vs 4.71 ms, +17%")


def test_an_unchanged_run_passes_and_the_details_follow_the_summary() -> None:
    base = _report()
    result = _comparison(base, base)
    summary = render_ci_summary(base, result)
    assert summary.startswith("### optkit bert-int8: PASS: no regression vs the baseline\n")
    assert re.search(r"(\d+) of \1 checks passed against `baselines/b.json`", summary)
    full = render_ci_markdown(base, result)
    assert full.startswith(summary) and "#### Every check" in full and "| ok | int8-dynamic cpu b1×s128 |" in full
    step = render_step_summary(base, result)
    assert step.startswith(summary) and "<details>" in step and step.rstrip().endswith("</details>")


def test_the_recommended_variant_is_named_when_the_report_has_one() -> None:
    base = _report()
    result = _comparison(base, base)
    assert "ecommended" not in render_ci_summary(base, result)  # older reports have none: nothing said
    new = dict(base, recommended={"variant": "int8-dynamic", "package": "packages/int8-dynamic", "reason": "fastest"})
    assert "Recommended: **int8-dynamic** (package `packages/int8-dynamic`): fastest." in render_ci_summary(new, result)
    none = dict(base, recommended={"variant": None, "package": None, "reason": "every variant failed a gate"})
    assert "No variant recommended: every variant failed a gate." in render_ci_summary(none, result)


def test_a_failed_gate_and_a_refused_baseline_are_said_first() -> None:
    base = _report()
    new = copy.deepcopy(base)
    new["gates"][0].update(passed=False, message="int8-dynamic: accuracy drop 2.00 points (allowed 1.00)")
    refused = {"status": "refused", "refused": "BASE was measured on 'Intel'", "checks": [], "notes": []}
    refused.update(baseline="b.json", thresholds=Thresholds().__dict__, gates_passed=False)
    summary = render_ci_summary(new, refused)
    assert summary.splitlines()[0] == "### optkit bert-int8: FAIL: 1 gate(s) failed, baseline refused"
    assert "Not compared with `b.json`: BASE was measured on 'Intel'." in summary
    assert "- **gate failed**: int8-dynamic: accuracy drop 2.00 points (allowed 1.00)" in summary
    refused["gates_passed"] = True
    assert render_ci_summary(base, refused).splitlines()[0] == "### optkit bert-int8: NOT COMPARED: baseline refused"


def test_promote_copies_a_passing_report_byte_for_byte(tmp_path: Path) -> None:
    dest = tmp_path / "baselines" / "b.json"
    promote_report(REPORT, dest)
    assert dest.read_bytes() == REPORT.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["b.json"]  # no temp file left beside it


def test_promote_refuses_a_report_whose_gates_failed(tmp_path: Path) -> None:
    report = _report()
    report["gates"][1].update(passed=False, message="int8-dynamic: speed-up 1.05× (needs 1.20×)")
    report["passed"] = False
    bad = tmp_path / "report.json"
    bad.write_text(json.dumps(report))
    dest = tmp_path / "b.json"
    dest.write_text("old")
    with pytest.raises(BaselineError, match=r"refusing to promote .*1 gate\(s\) failed \(int8-dynamic: speed-up"):
        promote_report(bad, dest)
    assert dest.read_text() == "old"
    done = CliRunner().invoke(cli, ["baseline", "promote", str(bad), "--to", str(dest)])
    assert done.exit_code == 2 and "refusing to promote" in done.output


def test_update_promotes_the_latest_report_of_this_recipe_only(
    tmp_path: Path, recipe_dict: dict[str, Any], write_recipe
) -> None:  # type: ignore[no-untyped-def]
    recipe_dict["name"] = "bert-int8"
    path = write_recipe(recipe_dict)
    with pytest.raises(BaselineError, match=r"no report to promote: .*report.json' does not exist; run"):
        update_baseline(path, output=tmp_path / "reports")
    report = _report()
    report["recipe_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / "reports" / "bert-int8").mkdir(parents=True)
    (tmp_path / "reports" / "bert-int8" / "report.json").write_text(json.dumps(report))
    _, target, _ = update_baseline(path, output=tmp_path / "reports", dest=tmp_path / "b.json")
    assert json.loads(target.read_text())["recipe_sha256"] == report["recipe_sha256"]
    path.write_text(path.read_text() + "\n# edited\n")
    with pytest.raises(BaselineError, match="made from another version of"):
        update_baseline(path, output=tmp_path / "reports", dest=tmp_path / "b.json")


def test_the_summary_file_is_appended_to(tmp_path: Path) -> None:
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    append_summary(summary, "### optkit x: PASS")
    assert summary.read_text() == "earlier step\n### optkit x: PASS\n"


def test_run_refuses_comparison_flags_without_a_baseline_and_a_missing_baseline_before_running(
    tmp_path: Path, recipe_dict: dict[str, Any], write_recipe
) -> None:  # type: ignore[no-untyped-def]
    path = write_recipe(recipe_dict)
    done = CliRunner().invoke(cli, ["run", str(path), "--max-latency-regression", "20%"])
    assert done.exit_code == 2 and "--max-latency-regression only make(s) sense with --baseline" in done.output
    ws = tmp_path / "ws"
    done = CliRunner().invoke(cli, ["run", str(path), "--workspace", str(ws), "--baseline", str(tmp_path / "no.json")])
    assert done.exit_code == 2
    assert "baseline" in done.output and "no.json' does not exist" in done.output and "baseline update" in done.output
    assert not ws.exists()  # refused before any step ran
    done = CliRunner().invoke(
        cli, ["run", str(path), "--baseline", str(REPORT), "--max-memory-regression", "lots", "--workspace", str(ws)]
    )
    assert done.exit_code == 2 and "'lots' is not a number" in done.output and not ws.exists()

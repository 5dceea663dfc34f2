"""Markdown for CI: a verdict a reviewer reads in a pull request, the details after it.

A GitHub step summary or a merge-request comment is read in seconds, so the first lines say what
happened in words: the verdict, one line per regression with both figures and the allowance
("int8-dynamic: p50 at b1×s128 38.2 ms vs 29.1 ms, +31% (allowed +10% beyond noise)"), the gates
that failed, and the variant the report recommends. The full comparison table, the notes and the
gates follow for whoever wants to dig.
"""

from __future__ import annotations

from typing import Any

from optkit.compare import render_comparison

__all__ = ["check_line", "render_ci_markdown", "render_ci_summary", "render_step_summary"]

_UNITS = {"p50 latency": "ms", "peak RSS": "MB", "GPU memory": "MB"}


def check_line(check: dict[str, Any], *, show_provider: bool = False) -> str:
    """One failed (or notable) compare check in words, with both figures, the change and the allowance."""
    variant = check.get("variant") or check["item"]
    if check["base"] is None:
        return f"{check['item']}: measured in the baseline but missing from this run"
    if "batch" not in check:  # the task's quality metric (accuracy, k-NN accuracy, ...), not a timed row
        return (
            f"{variant}: {check['metric']} {check['new']:.4f} vs {check['base']:.4f}, "
            f"{check['change'] * 100:+.2f} points "
            f"(allowed −{check['allowed'] * 100:.2f})"
        )
    where = f"b{check['batch']}×s{check['seq']}" if "batch" in check else check["item"]
    if show_provider and "provider" in check:
        where += f" on {check['provider']}"
    unit = _UNITS.get(check["metric"], "")
    metric = "p50" if check["metric"] == "p50 latency" else check["metric"]
    beyond = " beyond noise" if check["metric"] == "p50 latency" else ""
    return (
        f"{variant}: {metric} at {where} {_figure(check['new'], unit)} vs {_figure(check['base'], unit)}, "
        f"{check['change'] * 100:+.0f}% (allowed +{check['allowed'] * 100:.0f}%{beyond})"
    )


def _figure(value: float, unit: str) -> str:
    """Three significant digits or so: 38.2 ms, 4.71 ms, 0.083 ms (a tiny model's 0.08 ms is not "0.1"); whole MB."""
    if unit != "ms":
        return f"{value:.0f} {unit}".rstrip()
    digits = 1 if value >= 10 else 2 if value >= 1 else 3
    return f"{value:.{digits}f} ms"


def render_ci_summary(report: dict[str, Any], comparison: dict[str, Any]) -> str:
    """The short part: verdict, regressions, failed gates, recommendation; a few lines for a step summary."""
    name = report.get("recipe", {}).get("name", "report")
    failed_gates = [g for g in report.get("gates", []) if not g["passed"]]
    checks = comparison.get("checks", [])
    regressions = [c for c in checks if not c["passed"]]
    lines = [f"### optkit {name}: {_verdict(comparison['status'], failed_gates, regressions)}", ""]
    if comparison["status"] == "refused":
        lines += [f"Not compared with `{comparison['baseline']}`: {comparison['refused']}.", ""]
    multi = len({c.get("provider") for c in checks if "provider" in c}) > 1
    lines += [f"- **gate failed**: {g['message']}" for g in failed_gates]
    lines += [f"- **regression**: {check_line(c, show_provider=multi)}" for c in regressions]
    if failed_gates or regressions:
        lines.append("")
    lines += _recommendation(report)
    lines += _counts(comparison, checks, regressions)
    return "\n".join(lines).rstrip() + "\n"


def render_ci_markdown(report: dict[str, Any], comparison: dict[str, Any]) -> str:
    """comparison.md: the summary, then every check, the notes and the run's gates."""
    parts = [render_ci_summary(report, comparison), "", "#### Every check", ""]
    parts.append(render_comparison(comparison) if comparison.get("checks") else "No check was made.\n")
    notes = comparison.get("notes", [])
    if notes:
        parts += ["#### Notes", "", *[f"- {n}" for n in notes], ""]
    gates = report.get("gates", [])
    if gates:
        parts += ["#### Gates of this run", ""]
        parts += [f"- {'PASS' if g['passed'] else 'FAIL'} {g['message']}" for g in gates]
    return "\n".join(parts).rstrip() + "\n"


def render_step_summary(report: dict[str, Any], comparison: dict[str, Any]) -> str:
    """For ``$GITHUB_STEP_SUMMARY`` or a merge-request note: the summary open, the details folded away."""
    summary = render_ci_summary(report, comparison)
    details = render_ci_markdown(report, comparison).removeprefix(summary).strip()
    return f"{summary}\n<details><summary>Every check, notes and gates</summary>\n\n{details}\n\n</details>\n\n"


def _verdict(status: str, failed_gates: list[dict[str, Any]], regressions: list[dict[str, Any]]) -> str:
    problems = []
    if failed_gates:
        problems.append(f"{len(failed_gates)} gate(s) failed")
    if regressions:
        problems.append(f"{len(regressions)} regression(s) vs the baseline")
    if status == "refused":
        head = "FAIL" if failed_gates else "NOT COMPARED"
        return f"{head}: {', '.join([*problems, 'baseline refused'])}"
    if problems:
        return f"FAIL: {', '.join(problems)}"
    return "PASS: no regression vs the baseline"


def _recommendation(report: dict[str, Any]) -> list[str]:
    """The report's recommended variant, where the report has one (older reports do not)."""
    rec = report.get("recommended")
    if not isinstance(rec, dict):
        return []
    reason = rec.get("reason") or ""
    if not rec.get("variant"):
        return [f"No variant recommended{': ' + reason if reason else ''}.", ""]
    package = f" (package `{rec['package']}`)" if rec.get("package") else ""
    return [f"Recommended: **{rec['variant']}**{package}{': ' + reason if reason else ''}.", ""]


def _counts(comparison: dict[str, Any], checks: list[dict[str, Any]], regressions: list[dict[str, Any]]) -> list[str]:
    """How many checks passed, against what, under which limits; changes within noise are counted, not hidden."""
    if comparison["status"] == "refused":
        return []
    t = comparison["thresholds"]
    noisy = [c for c in checks if c["passed"] and c["metric"] == "p50 latency" and c["change"] > c["allowed"]]
    line = (
        f"{len(checks) - len(regressions)} of {len(checks)} checks passed against `{comparison['baseline']}` "
        f"(limits: accuracy −{t['max_accuracy_drop'] * 100:.2f} points, p50 +{t['max_latency_regression'] * 100:.0f}% "
        f"beyond noise, memory +{t['max_memory_regression'] * 100:.0f}%)."
    )
    if noisy:
        line += f" {len(noisy)} p50 change(s) above the limit but within the measured noise passed."
    if comparison.get("recipe_changed"):
        line += " The recipe changed since the baseline was made."
    return [line]

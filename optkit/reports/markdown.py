"""report.md and the terminal table: the same rows, rendered twice."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from optkit.envinfo import onnxruntime_build
from optkit.recipe import LatencySpec, shape_label
from optkit.reports.changes import changes_markdown
from optkit.reports.charts import label_of
from optkit.reports.compression import structure_markdown
from optkit.reports.metrics import metric_cells, metric_headers
from optkit.reports.recommend import recommendation_text
from optkit.reports.traffic import fusion_lines, traffic_markdown
from optkit.reports.trials import trials_markdown

__all__ = ["provider_options_lines", "render_markdown", "summary_table"]


def summary_table(report: dict[str, Any], provider: str) -> tuple[list[str], list[list[str]]]:
    """Headers and rows for one provider: one row per variant, latency columns per shape."""
    variants = report["variants"]
    ref = report["reference"]
    shapes = [(s["batch"], s["seq"]) for s in report["recipe"]["evaluate"]["shapes"]]
    headers = ["variant", "runtime", *metric_headers(report), "agree"]
    for b, s in shapes:
        label = label_of(report, b, s)
        headers += [f"p50 {label} (ms)", f"speed-up {label}"]
    headers += ["peak RSS (MB)", "size (MB)"]
    rows = []
    for name, v in variants.items():
        row = [
            name + (" (ref)" if name == ref else ""),
            v["runtime"],
            *metric_cells(report, name, v),
            f"{v['agreement_with_baseline']:.3f}",
        ]
        peak = None
        for b, s in shapes:
            r = _result(report, name, provider, b, s)
            if r is None or r["status"] != "measured":
                row += ["not measured", ""]
                continue
            row += [f"{r['latency']['p50_ms']:.2f}", _x(r.get("speedup_vs_reference"))]
            mem = r.get("memory") or {}
            if "peak_rss_mb" in mem and peak is None:
                peak = mem["peak_rss_mb"]
        row += ["–" if peak is None else f"{peak:.0f}", f"{v['size_bytes'] / 1e6:.1f}"]
        rows.append(row)
    return headers, rows


def render_markdown(report: dict[str, Any]) -> str:
    recipe, env = report["recipe"], report["environment"]
    lines = [f"# optkit report: {recipe['name']}", ""]
    cpu = env["cpu"]
    lines += [
        f"Run {report['finished']} on **{cpu['model']}** ({env['cpus_available']} CPUs, "
        f"{', '.join(cpu['isa']) or 'no AVX2/AVX-512'}; int8 VNNI: {'yes' if cpu['int8_vnni'] else 'no'}), "
        f"{report['threads']} threads, onnxruntime {onnxruntime_build(env['libraries'])}, "
        f"torch {env['libraries'].get('torch', '?')}. Seed {recipe['seed']}. "
        f"Eval rows: {report['data']['eval_rows']}. Speed-ups are p50 ratios against "
        f"**{report['reference']}** measured in this run; variants were timed interleaved.",
        "",
    ]
    if rec := recommendation_text(report):
        lines += [f"**{rec[0]}.** {rec[1]}", ""]
    for provider in recipe["evaluate"]["providers"]:
        headers, rows = summary_table(report, provider)
        lines += [f"## Provider: {provider}", ""]
        if all(all(c in ("not measured", "") for c in r[6:-2]) for r in rows):
            reasons = {r["status"] for r in report["results"] if r["provider"] == provider}
            lines += [f"{provider}: {'; '.join(sorted(reasons))}", ""]
            continue
        lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
        lines += provider_options_lines([r for r in report["results"] if r["provider"] == provider])
    lines += traffic_markdown(report)
    lines += changes_markdown(report)
    lines += structure_markdown(report)
    lines += fusion_lines(report)
    lines += _latency_detail(report)
    lines += trials_markdown(report)
    if report.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in report["notes"]] + [""]
    if report["gates"]:
        lines += ["## Gates", ""]
        for g in report["gates"]:
            lines.append(f"- {'PASS' if g['passed'] else '**FAIL**'} {g['message']}")
        lines.append("")
    lines += ["## Steps", "", "| variant | step | status | seconds | key |", "|---|---|---|---|---|"]
    for s in report["steps"]:
        lines.append(
            f"| {s['variant']} | {s['index']}: {s['kind']} | {s['status']} | {s['seconds']:.1f} | `{s['key'][:12]}` |"
        )
    lines.append("")
    return "\n".join(lines)


def _latency_detail(report: dict[str, Any]) -> list[str]:
    rows = [r for r in report["results"] if r["status"] == "measured"]
    if not rows:
        return []
    lat = report["recipe"]["evaluate"]["latency"]
    lines = [
        "## Latency detail",
        "",
        f"{_runs_sentence(lat)}, after {lat['warmup']} warm-up runs, in rounds of "
        f"{lat['block']} per variant (each turn after one untimed settling run).",
        "",
        "| variant | provider | shape | p50 ms | ± (95% CI) | runs | stopped by | p90 ms | p99 ms | mean ms | std ms "
        "| CV | rows/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r["latency"]
        half = s.get("p50_ci95_half_width")
        lines.append(
            f"| {r['variant']} | {r['provider']} | {shape_label(r)} | {s['p50_ms']:.2f} "
            f"| {'–' if half is None else f'{half:.1%}'} | {s['runs']} | {s.get('stopped_by', '–')} "
            f"| {s['p90_ms']:.2f} | {s['p99_ms']:.2f} | {s['mean_ms']:.2f} | {s['std_ms']:.2f} | {s['cv']:.2f} "
            f"| {s['throughput_per_s']:.1f} |"
        )
    return [*lines, ""]


def _runs_sentence(lat: dict[str, Any]) -> str:
    """'100 timed runs', or the adaptive rule the runs column then follows (defaults from the recipe model)."""
    try:
        spec = LatencySpec.model_validate(lat)
    except ValidationError:  # a report from another optkit version: say what it says
        return f"{lat.get('runs')} timed runs per variant and shape"
    if not spec.adaptive:
        return f"{spec.cap} timed runs per variant and shape"
    budget = f" (or until {spec.time_budget_s:g} s of timing per shape are spent)" if spec.time_budget_s else ""
    return (
        f"Adaptive timing: rounds until every variant's median is known to ±{spec.target:.1%} (95% CI), "
        f"at least {spec.floor} and at most {spec.cap} timed runs per variant and shape{budget}"
    )


def provider_options_lines(results: list[dict[str, Any]]) -> list[str]:
    """One line per provider naming the options its sessions got, so a figure says what produced it."""
    seen: dict[str, dict[str, str]] = {}
    for r in results:
        if r.get("provider_options"):
            seen.setdefault(r["provider"], r["provider_options"])
    lines: list[str] = []
    for p, opts in seen.items():
        lines += [f"{p} options: {', '.join(f'{k}={v}' for k, v in opts.items())}", ""]
    return lines


def _result(report: dict[str, Any], name: str, provider: str, b: int, s: int) -> dict[str, Any] | None:
    for r in report["results"]:
        if (r["variant"], r["provider"], r["batch"], r["seq"]) == (name, provider, b, s):
            return r
    return None


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"

"""report.html: one self-contained page (inline CSS and SVG, no scripts, no network) for people.

It shows what report.md shows, plus the charts: accuracy vs latency with the Pareto front,
size and memory bars, latency distributions, and the graph facts behind each int8 figure.
"""

from __future__ import annotations

import html
from typing import Any

from optkit.envinfo import onnxruntime_build
from optkit.reports.changes import changes_html
from optkit.reports.charts import (
    accuracy_latency_svg,
    class_change_svg,
    label_of,
    latency_distribution_svg,
    measured_rows,
    size_memory_svg,
)
from optkit.reports.metrics import metric_cells, metric_headers, metric_label, primary_metric
from optkit.reports.pareto import pareto_front
from optkit.reports.recommend import recommendation_text
from optkit.reports.traffic import traffic_html
from optkit.reports.trials import trials_html

__all__ = ["render_html"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1280px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}tr.front td:first-child{font-weight:bold;color:#d62728}
.pass{color:#2a7d2a;font-weight:bold}.fail{color:#c00;font-weight:bold}.muted{color:#777}
.env{display:grid;grid-template-columns:max-content auto;gap:2px 16px}.chart svg{max-width:100%;height:auto}
code{background:#f4f4f4;padding:0 3px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(headers: list[str], rows: list[list[str]], classes: list[str] | None = None, left: int = 1) -> str:
    head = "".join(f'<th class="l">{_e(h)}</th>' if i < left else f"<th>{_e(h)}</th>" for i, h in enumerate(headers))
    body = []
    for k, row in enumerate(rows):
        cls = f' class="{classes[k]}"' if classes and classes[k] else ""
        cells = "".join(f'<td class="l">{c}</td>' if i < left else f"<td>{c}</td>" for i, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _variant_table(report: dict[str, Any], provider: str) -> str:
    variants, ref = report["variants"], report["reference"]
    shapes = list(dict.fromkeys((r["batch"], r["seq"]) for r in report["results"] if r["provider"] == provider))
    first = measured_rows(report, provider, *shapes[0]) if shapes else {}
    metric = primary_metric(report)
    front = set(
        pareto_front(
            {n: (r["latency"]["p50_ms"], variants[n][metric]) for n, r in first.items() if metric in variants[n]}
        )
    )
    headers = ["variant", "runtime", *metric_headers(report, secondary=False), "agree"]
    for b, s in shapes:
        label = label_of(report, b, s)
        headers += [f"p50 {label} ms [95% CI]", f"speed-up {label}", f"rows/s {label}"]
    headers += ["peak RSS MB", "size MB", "on provider"]
    rows, classes = [], []
    for name, v in variants.items():
        row = [
            _e(name) + (" (ref)" if name == ref else "") + (" ★" if name in front else ""),
            _e(v["runtime"]),
            *metric_cells(report, name, v, secondary=False),
            f"{v['agreement_with_baseline']:.3f}" if "agreement_with_baseline" in v else "–",
        ]
        peak, placed = None, ""
        for b, s in shapes:
            r = next(
                (
                    x
                    for x in report["results"]
                    if (x["variant"], x["provider"], x["batch"], x["seq"]) == (name, provider, b, s)
                ),
                None,
            )
            if r is None or r["status"] != "measured":
                why = r["status"] if r else "not measured"
                row += [f'<span class="muted">{_e(why)}</span>', "", ""]
            else:
                lat = r["latency"]
                ci = lat.get("p50_ci95_ms")
                noisy = ' <span class="fail" title="noisy timing">~</span>' if lat.get("noisy") else ""
                row += [
                    f"{lat['p50_ms']:.2f}" + (f" [{ci[0]:.2f}–{ci[1]:.2f}]" if ci else "") + noisy,
                    "–" if r.get("speedup_vs_reference") is None else f"{r['speedup_vs_reference']:.2f}×",
                    f"{lat['throughput_per_s']:.1f}",
                ]
                mem = r.get("memory") or {}
                peak = mem.get("peak_rss_mb") if peak is None else peak
            pl = (r or {}).get("placement")
            if pl and pl.get("fallback_share") is not None and not placed:
                placed = f"{1 - pl['fallback_share']:.0%} of {pl['total_nodes']} nodes"
        row += ["–" if peak is None else f"{peak:.0f}", f"{v['size_bytes'] / 1e6:.1f}", placed or "–"]
        rows.append(row)
        classes.append("front" if name in front else "")
    note = (
        f'<p class="muted">★ on the {_e(metric_label(metric))}/latency Pareto front '
        f"at {label_of(report, *shapes[0])}; "
        f"~ noisy timing (robust CV above 0.10). Speed-ups are p50 ratios against {_e(ref)}.</p>"
        if shapes
        else ""
    )
    return _table(headers, rows, classes) + note


def _explain_table(report: dict[str, Any]) -> str:
    rows = []
    for name, v in report["variants"].items():
        ex = v.get("explain")
        if not ex:
            continue
        g = ex["optimized"] if "ops" in ex.get("optimized", {}) else ex["source"]
        conv = ", ".join(f"{k} {n}" for k, n in g["conversions"].items()) or "none"
        top = ", ".join(f"{k} {n}" for k, n in list(g["ops"].items())[:6])
        rows.append(
            [_e(name), str(g["quantized_compute"]), str(g["float_compute"]), _e(conv), str(g["q_dq_pairs"]), _e(top)]
        )
    if not rows:
        return ""
    headers = ["variant", "int8 compute nodes", "float MatMul-class", "Q/DQ left", "Q→DQ pairs", "most common ops"]
    return (
        "<h2>Why is it fast or slow?</h2><p>Counts from the graph ONNX Runtime runs after its own fusion.</p>"
        + _table(headers, rows, left=6)
    )


def _env(report: dict[str, Any]) -> str:
    env = report["environment"]
    cpu = env["cpu"]
    items = [
        ("CPU", f"{cpu['model']} ({env['cpus_available']} CPUs available, affinity {env.get('cpu_affinity', '?')})"),
        ("ISA", f"{', '.join(cpu['isa']) or 'none detected'}; int8 VNNI: {'yes' if cpu['int8_vnni'] else 'no'}"),
        ("threads", report.get("threads")),
        ("memory", f"{env['memory_total_gb']} GB"),
        ("onnxruntime", f"{onnxruntime_build(env['libraries'])} ({', '.join(env['onnxruntime_providers'])})"),
        ("libraries", ", ".join(f"{k} {v}" for k, v in env["libraries"].items())),
        ("python", f"{env['python']} on {env['platform']}"),
    ]
    return '<div class="env">' + "".join(f"<b>{_e(k)}</b><span>{_e(v)}</span>" for k, v in items) + "</div>"


def render_html(report: dict[str, Any]) -> str:
    """The whole page as one string."""
    title = report.get("recipe", {}).get("name") or report.get("model", "optkit")
    providers = list(dict.fromkeys(r["provider"] for r in report["results"]))
    parts = [f"<h1>optkit report: {_e(title)}</h1>", f"<p class='muted'>finished {_e(report.get('finished', ''))}</p>"]
    if rec := recommendation_text(report):
        parts.append(f"<p class='rec'><strong>{_e(rec[0])}.</strong> {_e(rec[1])}</p>")
    for provider in providers:
        parts.append(f"<h2>Provider: {_e(provider)}</h2>")
        measured = any(r["status"] == "measured" for r in report["results"] if r["provider"] == provider)
        if not measured:
            reasons = sorted({r["status"] for r in report["results"] if r["provider"] == provider})
            parts.append(f"<p>{_e(provider)}: {_e('; '.join(reasons))}</p>")
            continue
        parts.append(_variant_table(report, provider))
        for chart in (
            accuracy_latency_svg(report, provider),
            size_memory_svg(report, provider),
            latency_distribution_svg(report, provider),
        ):
            if chart:
                parts.append(f'<div class="chart">{chart}</div>')
    parts.append(traffic_html(report))
    parts.append(changes_html(report, class_change_svg(report)))
    if report.get("gates"):
        items = "".join(
            f"<li><span class='{'pass' if g['passed'] else 'fail'}'>{'PASS' if g['passed'] else 'FAIL'}</span> "
            f"{_e(g['message'])}</li>"
            for g in report["gates"]
        )
        parts.append(f"<h2>Gates</h2><ul>{items}</ul>")
    if report.get("notes"):
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in report["notes"]) + "</ul>")
    parts.append(trials_html(report))
    parts.append(_explain_table(report))
    parts.append("<h2>Environment</h2>" + _env(report))
    body = "\n".join(p for p in parts if p)
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>optkit: {_e(title)}</title>'
        f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n"
    )

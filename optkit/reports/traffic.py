"""The report's "latency on real traffic" section (MD and HTML), and what graph fusion fused.

Traffic groups (``report["traffic"]``) are kept apart from the fixed-shape ``results``: their
rows are per request of varying length, so their p50 answers another question than b1×s128's.
"""

from __future__ import annotations

import html
from typing import Any

from optkit.evaluate.contention import busy_note

__all__ = ["fusion_lines", "traffic_html", "traffic_markdown", "traffic_notes"]

_WHY = (
    "Eval rows replayed at their natural token lengths (each request padded only to its longest row), every "
    "variant the same requests in the same order, interleaved in rounds. A fixed shape pads every row to its "
    "seq; short rows make the per-call overhead weigh more and the matrix products less, so speed-ups differ."
)


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _paired(row: dict[str, Any]) -> str:
    paired = row.get("paired_speedup")
    if not paired:
        return "–"
    lo, hi = paired["ci95"]
    return f"{paired['median']:.2f}× ({lo:.2f}–{hi:.2f})"


def _lengths_sentence(lengths: dict[str, Any]) -> str:
    hist = ", ".join(f"{k}: {v}" for k, v in lengths["histogram"].items())
    return (
        f"{lengths['requests']} requests, {lengths['rows']} rows; tokens per row mean {lengths['mean']:.1f}, "
        f"p50 {lengths['p50']:.0f}, p90 {lengths['p90']:.0f}, p99 {lengths['p99']:.0f}, max {lengths['max']} "
        f"({lengths['truncated_rows']} rows cut at {lengths['max_length']}); histogram {hist}; padding overhead "
        f"{lengths['padding_overhead']:.2f}×"
    )


def _table_rows(group: dict[str, Any]) -> list[list[str]]:
    out = []
    for r in group["rows"]:
        if r["status"] != "measured":
            out.append([r["variant"], r["status"], "", "", "", "", "", ""])
            continue
        s = r["latency"]
        lo, hi = s["p50_ci95_ms"]
        out.append(
            [
                r["variant"] + (" (ref)" if r["variant"] == group.get("reference") else ""),
                f"{s['p50_ms']:.2f}",
                f"{lo:.2f}–{hi:.2f}",
                f"{s['p90_ms']:.2f}",
                f"{s['p99_ms']:.2f}",
                f"{s['mean_ms']:.2f}",
                _x(r.get("speedup_vs_reference")),
                _paired(r),
            ]
        )
    return out


_HEADERS = [
    "variant",
    "p50 ms/request",
    "p50 95% CI",
    "p90 ms",
    "p99 ms",
    "mean ms",
    "speed-up (p50s)",
    "paired speed-up (95% CI)",
]


def _not_measured(group: dict[str, Any]) -> str | None:
    """One line for a group with no measured row (a missing provider), instead of a table of reasons."""
    if any(r["status"] == "measured" for r in group["rows"]):
        return None
    reasons = sorted({r["status"] for r in group["rows"]}) or ["not measured: no variant to time"]
    return f"{group['provider']} {group['label']}: {'; '.join(reasons)}"


def traffic_notes(report: dict[str, Any]) -> list[str]:
    """A busy timing window on traffic, said as for the fixed shapes."""
    notes = []
    for g in report.get("traffic") or []:
        busy = busy_note(g.get("contention"))
        if busy:
            notes.append(
                f"latency at {g['provider']} {g['label']}: {busy}, so its milliseconds are slower than on a quiet "
                f"machine; the speed-ups within this run stay comparable (every variant replayed the same requests, "
                f"interleaved)."
            )
    return notes


def traffic_markdown(report: dict[str, Any]) -> list[str]:
    """``## Latency on real traffic``: per provider and traffic shape, the lengths replayed and a row per variant."""
    groups = report.get("traffic") or []
    if not groups:
        return []
    lines = ["## Latency on real traffic", "", _WHY, ""]
    for g in groups:
        lines += [f"### {g['provider']} {g['label']}", ""]
        if missing := _not_measured(g):
            lines += [missing, ""]
            continue
        if "lengths" in g:
            lines += [_lengths_sentence(g["lengths"]) + f"; {g.get('rounds', '?')} rounds.", ""]
        lines += ["| " + " | ".join(_HEADERS) + " |", "|" + "---|" * len(_HEADERS)]
        lines += ["| " + " | ".join(r) + " |" for r in _table_rows(g)]
        lines.append("")
    return lines


def traffic_html(report: dict[str, Any]) -> str:
    groups = report.get("traffic") or []
    if not groups:
        return ""
    e = html.escape
    parts = [f"<h2>Latency on real traffic</h2><p>{e(_WHY)}</p>"]
    for g in groups:
        parts.append(f"<h3>{e(g['provider'])} {e(g['label'])}</h3>")
        if missing := _not_measured(g):
            parts.append(f"<p>{e(missing)}</p>")
            continue
        if "lengths" in g:
            parts.append(f"<p class='muted'>{e(_lengths_sentence(g['lengths']))}</p>")
        head = "".join(f"<th>{e(h)}</th>" for h in _HEADERS)
        body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in _table_rows(g))
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    return "".join(parts)


def fusion_lines(report: dict[str, Any]) -> list[str]:
    """One line per step that fused graph nodes: which variant, and how many of each fused op."""
    lines = []
    seen: set[str] = set()
    for s in report.get("steps", []):
        fused = (s.get("meta") or {}).get("fused_ops")
        if fused is None or s["key"] in seen:
            continue
        seen.add(s["key"])
        counts = ", ".join(f"{op} {n}" for op, n in fused.items()) or "nothing fused"
        check = (s.get("meta") or {}).get("validation") or {}
        diff = f"; max |logit diff| vs {check['against']} {check['max_abs_diff']:.1e}" if check else ""
        lines.append(f"- {s['variant']} step {s['index']} ({s['kind']}): {counts}{diff}")
    return ["## Graph fusion", "", *lines, ""] if lines else []

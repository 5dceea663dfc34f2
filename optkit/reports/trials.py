"""The search trials a step recorded (``meta.trials``), as a Markdown and an HTML table.

Generic over passes: any step whose meta holds a ``trials`` list (today the accuracy-aware search)
gets its table, so the report layer never names a pass. Shared steps (one search feeding two
variants) are shown once, by cache key.
"""

from __future__ import annotations

import html
from typing import Any

__all__ = ["trial_rows", "trials_html", "trials_markdown"]

_HEADERS = ["#", "configuration", "from", "val. acc", "drop (pt)", "agree", "speed-up (95% CI)", "size MB", "s", "ok"]


def _searches(report: dict[str, Any]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for step in report.get("steps", []):
        if isinstance(step.get("meta", {}).get("trials"), list) and step["key"] not in seen:
            seen[step["key"]] = step
    return list(seen.values())


def trial_rows(step: dict[str, Any]) -> list[list[str]]:
    """One row per trial, in the order they ran; the chosen one marked."""
    summary = step["meta"].get("search", {})
    chosen = summary.get("chosen_trial")
    rows = []
    for t in step["meta"]["trials"]:
        speed = "—" if t.get("speedup") is None else f"{t['speedup']:.2f}×"
        if t.get("speedup_ci95"):
            speed += f" ({t['speedup_ci95'][0]:.2f}–{t['speedup_ci95'][1]:.2f})"
        if t.get("error"):
            ok = f"error: {t['error'][:80]}"
        else:
            ok = ("**chosen** " if t["trial"] == chosen else "") + ("yes" if t["within_tolerance"] else "no")
        size = t.get("size_bytes")
        rows.append(
            [
                str(t["trial"]),
                t["label"],
                t["origin"] + (" (cached)" if t.get("cached") else ""),
                f"{t['validation_accuracy']:.4f}",
                f"{t['accuracy_drop'] * 100:+.2f}",
                f"{t['agreement_with_reference']:.3f}",
                speed,
                "—" if size is None else f"{size / 1e6:.1f}",
                f"{t['seconds']:.1f}",
                ok,
            ]
        )
    return rows


def _intro(step: dict[str, Any]) -> str:
    s = step["meta"].get("search", {})
    text = s.get("sentence", "")
    if s.get("final_round"):
        f = s["final_round"]
        joint = "; ".join(f"{r['label']} {r['speedup']:.2f}× (p50 {r['p50_ms']:.2f} ms)" for r in f["finalists"])
        text += f" Joint round ({f['rounds']} interleaved rounds, fp32 p50 {f['reference_p50_ms']:.2f} ms): {joint}."
    return text


def trials_markdown(report: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for step in _searches(report):
        lines += [f"## Search trials: {step['variant']} (step {step['index']}: {step['kind']})", "", _intro(step), ""]
        lines += ["| " + " | ".join(_HEADERS) + " |", "|" + "---|" * len(_HEADERS)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in trial_rows(step)]
        lines.append("")
    return lines


def trials_html(report: dict[str, Any]) -> str:
    parts = []
    for step in _searches(report):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in _HEADERS)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c).replace('**', '')}</td>" for c in row) + "</tr>"
            for row in trial_rows(step)
        )
        parts.append(
            f"<h2>Search trials: {html.escape(step['variant'])}</h2><p>{html.escape(_intro(step))}</p>"
            f"<table><tr>{head}</tr>{body}</table>"
        )
    return "".join(parts)

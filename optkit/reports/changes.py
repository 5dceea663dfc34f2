"""What each variant's change against the baseline is worth, for report.md and report.html.

The primary metric's change with its paired 95% interval and a verdict ("within noise"), McNemar's
p and the rows that changed; per class, precision, recall and F1 with the change of recall and F1
and their intervals, the worst-hit class named; and a few of the changed rows themselves. Reports
written before these figures existed simply have no such section.
"""

from __future__ import annotations

import html
from typing import Any

from optkit.reports.metrics import primary_metric

__all__ = ["change_text", "changes_html", "changes_markdown", "interval_text"]

_IN_POINTS = {"accuracy", "macro_f1", "recall", "f1", "precision", "knn_accuracy", "knn_macro_f1"}
_WORDS = {"f1": "F1", "recall": "recall", "accuracy": "accuracy", "knn_accuracy": "k-NN accuracy"}
_MD_TEXT = 140  # characters of a changed row's text in the Markdown table


def _num(metric: str, x: float) -> str:
    return f"{x * 100:+.2f}" if metric in _IN_POINTS else f"{x:+.4f}"


def interval_text(metric: str, ci: list[float] | None) -> str:
    """``-0.61…+0.15`` (points for fractions of 1), or '' without an interval."""
    return f"{_num(metric, ci[0])}…{_num(metric, ci[1])}" if ci else ""


def change_text(metric: str, delta: float, ci: list[float] | None, verdict: str | None) -> str:
    """``-0.23 pts (95% CI -0.61…+0.15, within noise)``; just the change where no interval was computed."""
    unit = " pts" if metric in _IN_POINTS else ""
    head = f"{_num(metric, delta + 0.0)}{unit}"
    if not ci:
        return head
    return f"{head} (95% CI {interval_text(metric, ci)}{', ' + verdict if verdict else ''})"


def _compared(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Variants that carry paired figures (every variant but the baseline, in reports that have them)."""
    return [(n, v) for n, v in report["variants"].items() if n != "baseline" and "changed_rows" in v]


def _summary_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    primary = primary_metric(report)
    headers = ["variant", f"Δ {_WORDS.get(primary, primary)} vs baseline", "McNemar p", "rows changed", "worst class"]
    rows = []
    for name, v in _compared(report):
        p = v.get("mcnemar_p")
        worst = v.get("worst_class")
        rows.append(
            [
                name,
                change_text(
                    primary, v[f"{primary}_delta"], v.get(f"{primary}_delta_ci95"), v.get(f"{primary}_delta_verdict")
                ),
                "–" if p is None else f"{p:.3g}",
                f"{v['changed_rows']} ({v['changed_share']:.1%})",
                _worst_text(worst) if worst else "–",
            ]
        )
    return headers, rows


def _worst_text(worst: dict[str, Any]) -> str:
    if worst["delta"] >= 0:
        return "no class lost recall or F1"
    metric = worst["metric"]
    change = change_text(metric, worst["delta"], worst.get("ci95"), worst.get("verdict"))
    return f"{worst['class']}: {_WORDS.get(metric, metric)} {change}"


def _class_rows(v: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    headers = ["class", "support", "precision", "recall", "F1", "Δ recall (95% CI)", "Δ F1 (95% CI)"]
    rows = []
    for c, m in v["per_class"].items():
        rows.append(
            [
                c,
                str(m["support"]),
                f"{m['precision']:.3f}",
                f"{m['recall']:.3f}",
                f"{m['f1']:.3f}",
                *(
                    "–"
                    if m.get(f"{k}_delta") is None
                    else change_text(k, m[f"{k}_delta"], m.get(f"{k}_delta_ci95"), None)
                    for k in ("recall", "f1")
                ),
            ]
        )
    return headers, rows


def changes_markdown(report: dict[str, Any]) -> list[str]:
    """The section's Markdown lines (none for reports without paired figures)."""
    compared = _compared(report)
    if not compared:
        return []
    headers, rows = _summary_rows(report)
    lines = [
        "## Change against the baseline",
        "",
        "Paired bootstrap over the eval rows (2,000 resamples, seeded from the recipe): a change whose 95% "
        "interval holds zero is within noise. McNemar's exact test asks whether the rows only one model gets "
        "right lean one way.",
        "",
        *_md_table(headers, rows),
        "",
    ]
    for name, v in compared:
        if v.get("per_class") and v["changed_rows"]:
            lines += [f"### Per class: {name}", "", *_md_table(*_class_rows(v)), ""]
    for slice_name, headers, rows in _slice_tables(report):
        lines += [f"### Slice: {slice_name}", "", *_md_table(headers, rows), ""]
    for name, v in compared:
        examples = v.get("changed_examples") or []
        if examples:
            lines += [f"### Rows that changed: {name} ({v['changed_rows']}, first {len(examples)})", ""]
            lines += _md_table(*_example_rows(examples, _MD_TEXT))
            lines.append("")
    return lines


def _slice_tables(report: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """One table per slice: a row per group, the baseline's metric and each changed variant's change."""
    primary = primary_metric(report)
    base = report["variants"].get("baseline", {}).get("slices") or {}
    shown = [(n, v) for n, v in _compared(report) if v.get("slices") and v["changed_rows"]]
    tables = []
    for slice_name, groups in base.items():
        headers = [slice_name, "rows", f"baseline {_WORDS.get(primary, primary)}"] + [f"Δ {n}" for n, _ in shown]
        rows = []
        for group, g in groups.items():
            row = [group, str(g["rows"]), f"{g[primary]:.4f}"]
            for _, v in shown:
                c = v["slices"].get(slice_name, {}).get(group)
                if c is None:
                    row.append("–")
                    continue
                flag = " (too few rows to conclude)" if c.get("inconclusive") else ""
                row.append(change_text(primary, c["delta"], c.get("delta_ci95"), c.get("verdict")) + flag)
            rows.append(row)
        tables.append((slice_name, headers, rows))
    return tables


def _example_rows(examples: list[dict[str, Any]], chars: int) -> tuple[list[str], list[list[str]]]:
    headers = ["row", "label", "baseline", "variant", "text"]
    rows = []
    for e in examples:
        text = e["text"] if len(e["text"]) <= chars else e["text"][: chars - 1] + "…"
        rows.append([str(e["row"]), e["label"], _with_conf(e, "baseline"), _with_conf(e, "variant"), text])
    return headers, rows


def _with_conf(example: dict[str, Any], side: str) -> str:
    conf = example.get(f"{side}_confidence")
    return str(example[side]) + ("" if conf is None else f" ({conf:.2f})")


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    def cell(x: str) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)] + [
        "| " + " | ".join(cell(c) for c in r) + " |" for r in rows
    ]


def changes_html(report: dict[str, Any], chart: str | None) -> str:
    """The section as HTML: summary table, the per-class chart, per-class tables and changed rows."""
    compared = _compared(report)
    if not compared:
        return ""
    parts = [
        "<h2>Change against the baseline</h2>",
        "<p>Paired bootstrap over the eval rows (2,000 resamples, seeded from the recipe): a change whose 95% "
        "interval holds zero is within noise. McNemar's exact test asks whether the rows only one model gets "
        "right lean one way.</p>",
        _html_table(*_summary_rows(report)),
    ]
    if chart:
        parts.append(f'<div class="chart">{chart}</div>')
    for name, v in compared:
        if v.get("per_class") and v["changed_rows"]:
            parts += [f"<h3>Per class: {html.escape(name)}</h3>", _html_table(*_class_rows(v))]
    for slice_name, headers, rows in _slice_tables(report):
        parts += [f"<h3>Slice: {html.escape(slice_name)}</h3>", _html_table(headers, rows)]
    for name, v in compared:
        examples = v.get("changed_examples") or []
        if examples:
            parts.append(
                f"<h3>Rows that changed: {html.escape(name)} ({v['changed_rows']}, first {len(examples)})</h3>"
            )
            parts.append(_html_table(*_example_rows(examples, 10_000), left=5))
    return "\n".join(parts)


def _html_table(headers: list[str], rows: list[list[str]], left: int = 1) -> str:
    def td(i: int, x: str) -> str:
        return f'<td class="l">{html.escape(str(x))}</td>' if i < left else f"<td>{html.escape(str(x))}</td>"

    head = "".join(
        f'<th class="l">{html.escape(h)}</th>' if i < left else f"<th>{html.escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join("<tr>" + "".join(td(i, c) for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"

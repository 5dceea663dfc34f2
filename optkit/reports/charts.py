"""Charts for report.html, drawn with matplotlib into inline SVG (text as paths: no fonts, no network).

Each function takes the report dict and returns an ``<svg>`` string, or ``None`` when there is
nothing measured to draw, so the HTML can say so instead of showing an empty frame.
"""

from __future__ import annotations

import io
import re
from typing import Any

from optkit.recipe import shape_label
from optkit.reports.metrics import metric_label, primary_metric
from optkit.reports.pareto import pareto_front

__all__ = [
    "accuracy_latency_svg",
    "class_change_svg",
    "label_of",
    "latency_distribution_svg",
    "measured_rows",
    "size_memory_svg",
]

_FRONT = "#d62728"
_OTHER = "#1f77b4"


def label_of(report: dict[str, Any], batch: int, seq: int) -> str:
    """The (batch, seq) key of a report's rows as readers know it (b1×28×28 for an image shape)."""
    for shape in [*(report.get("recipe") or {}).get("evaluate", {}).get("shapes", []), *report.get("results", [])]:
        if shape.get("batch") == batch and shape.get("seq") == seq:
            return shape_label(shape)
    return f"b{batch}×s{seq}"


def measured_rows(report: dict[str, Any], provider: str, batch: int, seq: int) -> dict[str, dict[str, Any]]:
    """Measured result rows of one provider and shape, by variant name."""
    return {
        r["variant"]: r
        for r in report["results"]
        if r["provider"] == provider and r["batch"] == batch and r["seq"] == seq and r["status"] == "measured"
    }


def _shapes(report: dict[str, Any]) -> list[tuple[int, int]]:
    return list(dict.fromkeys((r["batch"], r["seq"]) for r in report["results"]))


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    # matplotlib's RDF metadata block only names namespaces and a timestamp; dropping it keeps the
    # page free of URLs and the same figures byte-identical.
    return re.sub(r"<metadata>.*?</metadata>", "", text[text.index("<svg") :], flags=re.S)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display, no GUI toolkit
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "path", "font.size": 10, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def accuracy_latency_svg(report: dict[str, Any], provider: str) -> str | None:
    """The task's primary metric (accuracy for a classifier) vs p50 latency, one panel per shape; the Pareto
    front is drawn as a line and its points in red."""
    metric = primary_metric(report)
    shapes = [s for s in _shapes(report) if measured_rows(report, provider, *s)]
    if not shapes or not any(metric in v for v in report["variants"].values()):
        return None  # a bench report has no accuracy
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(shapes), figsize=(5.2 * len(shapes), 4.0), squeeze=False)
    variants = report["variants"]
    labels: list[tuple[Any, dict[str, tuple[float, float]]]] = []
    for ax, (b, s) in zip(axes[0], shapes, strict=True):
        rows = measured_rows(report, provider, b, s)
        points = {
            n: (r["latency"]["p50_ms"], variants[n][metric]) for n, r in rows.items() if metric in variants.get(n, {})
        }
        if not points:
            ax.set_axis_off()
            continue
        front = pareto_front(points)
        ax.plot([points[n][0] for n in front], [points[n][1] for n in front], "--", color=_FRONT, lw=1.2, zorder=1)
        for n, (lat, acc) in points.items():
            on = n in front
            lo, hi = rows[n]["latency"].get("p50_ci95_ms", [lat, lat])
            ax.errorbar(lat, acc, xerr=[[lat - lo], [hi - lat]], fmt="none", ecolor="#888", lw=1, zorder=2)
            ax.scatter(
                lat, acc, s=90 if on else 50, color=_FRONT if on else _OTHER, marker="*" if on else "o", zorder=3
            )
        ax.set_xlabel(f"p50 latency, ms ({label_of(report, b, s)}, {provider}); bar: 95% CI")
        ax.set_ylabel(f"{metric_label(metric)} (eval split)")
        ax.set_title(f"{metric_label(metric)} vs latency, {label_of(report, b, s)}")
        ax.grid(alpha=0.3)
        ax.margins(x=0.25, y=0.25)
        labels.append((ax, {n + (" (front)" if n in front else ""): xy for n, xy in points.items()}))
    fig.tight_layout()  # before labelling: it moves the axes, and with them the points' screen positions
    for ax, named in labels:
        _label_points(fig, ax, named)
    return _svg(fig)


def _label_points(fig: Any, ax: Any, named: dict[str, tuple[float, float]]) -> None:
    """Label each point beside it, moving a label up or down until it overlaps no label placed before.

    Variants often sit close together (two int8 flavours at nearly the same latency and accuracy);
    fixed offsets then print one name over the other.
    """
    renderer = fig.canvas.get_renderer()
    placed: list[Any] = []
    for text, xy in sorted(named.items(), key=lambda kv: kv[1]):
        for dy in (4, -14, 16, -26, 28, -38, 40, -50):
            label = ax.annotate(text, xy, textcoords="offset points", xytext=(7, dy), fontsize=9)
            box = label.get_window_extent(renderer).padded(1)
            if not any(box.overlaps(p) for p in placed):
                break
            label.remove()
        else:
            label = ax.annotate(text, xy, textcoords="offset points", xytext=(7, 4), fontsize=9)
            box = label.get_window_extent(renderer)
        placed.append(box)


def size_memory_svg(report: dict[str, Any], provider: str) -> str | None:
    """Size on disk and peak RSS per variant; RSS split into the process before loading and the model's share."""
    names = list(report["variants"])
    first = _shapes(report)[0] if report["results"] else None
    rows = measured_rows(report, provider, *first) if first else {}
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 0.55 * len(names) + 1.6))
    sizes = [report["variants"][n]["size_bytes"] / 1e6 for n in names]
    ax1.barh(names, sizes, color=_OTHER)
    for i, v in enumerate(sizes):
        ax1.text(v, i, f" {v:.1f}", va="center", fontsize=9)
    ax1.set_xlabel("size on disk, MB (weights)")
    ax1.invert_yaxis()
    ax1.margins(x=0.2)
    before = [(rows.get(n, {}).get("memory") or {}).get("rss_before_load_mb", 0.0) for n in names]
    model = [(rows.get(n, {}).get("memory") or {}).get("model_rss_mb", 0.0) for n in names]
    ax2.barh(names, before, color="#bbbbbb", label="process before loading")
    ax2.barh(names, model, left=before, color="#ff7f0e", label="model load + runs")
    for i, (a, m) in enumerate(zip(before, model, strict=True)):
        ax2.text(a + m, i, f" {a + m:.0f}" if a + m else " not measured", va="center", fontsize=9)
    ax2.set_xlabel(f"peak RSS, MB ({provider}" + (f", {label_of(report, *first)})" if first else ")"))
    ax2.invert_yaxis()
    ax2.margins(x=0.2)
    ax2.legend(loc="lower right", fontsize=8, frameon=False)
    fig.tight_layout()
    return _svg(fig)


def latency_distribution_svg(report: dict[str, Any], provider: str) -> str | None:
    """Box plots of every timed run per variant, one panel per shape, with the p50 and its 95% CI marked."""
    shapes = [s for s in _shapes(report) if measured_rows(report, provider, *s)]
    if not shapes:
        return None
    plt = _pyplot()
    n_var = max(len(measured_rows(report, provider, *s)) for s in shapes)
    fig, axes = plt.subplots(len(shapes), 1, figsize=(10, (0.5 * n_var + 1.3) * len(shapes)), squeeze=False)
    for ax, (b, s) in zip(axes[:, 0], shapes, strict=True):
        rows = measured_rows(report, provider, b, s)
        names = [n for n in rows if rows[n].get("samples_ms")]
        if not names:
            ax.set_axis_off()
            continue
        ax.boxplot(
            [rows[n]["samples_ms"] for n in names],
            orientation="horizontal",
            tick_labels=names,
            showfliers=True,
            flierprops={"markersize": 3, "alpha": 0.5},
            medianprops={"color": _FRONT},
        )
        for i, n in enumerate(names, start=1):
            lo, hi = rows[n]["latency"]["p50_ci95_ms"]
            ax.plot([lo, hi], [i + 0.32, i + 0.32], color="black", lw=2)
            ax.text(hi, i + 0.32, f" p50 {rows[n]['latency']['p50_ms']:.2f} ms", va="center", fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(f"latency per run, ms ({label_of(report, b, s)}, {provider}); black bar: 95% CI of the median")
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _svg(fig)


def class_change_svg(report: dict[str, Any]) -> str | None:
    """Each class's change of recall and F1 against the baseline, in points, one bar per variant with its
    95% interval: a bar whose whisker crosses zero is noise, one left of zero is a class that paid.

    Variants that changed no eval prediction are left out (all their bars would be zero); None when
    no variant has per-class figures or changed anything.
    """
    variants = [
        (n, v)
        for n, v in report["variants"].items()
        if n != "baseline" and v.get("per_class") and v.get("changed_rows")
    ]
    if not variants:
        return None
    classes = list(variants[0][1]["per_class"])
    plt = _pyplot()
    height = 0.8 / len(variants)
    fig, axes = plt.subplots(1, 2, figsize=(11, max(2.2, (0.32 * len(variants) + 0.25) * len(classes) + 1.2)))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric, title in zip(axes, ("recall", "f1"), ("recall", "F1"), strict=True):
        for j, (name, v) in enumerate(variants):
            ys = [i - 0.4 + height * (j + 0.5) for i in range(len(classes))]
            rows = [v["per_class"][c] for c in classes]
            deltas = [100 * (r.get(f"{metric}_delta") or 0.0) for r in rows]
            cis = [r.get(f"{metric}_delta_ci95") or [0.0, 0.0] for r in rows]
            err = [
                [d - 100 * ci[0] for d, ci in zip(deltas, cis, strict=True)],
                [100 * ci[1] - d for d, ci in zip(deltas, cis, strict=True)],
            ]
            ax.barh(ys, deltas, height=height * 0.9, color=colors[j % len(colors)], label=name)
            ax.errorbar(deltas, ys, xerr=err, fmt="none", ecolor="black", lw=1, capsize=2)
        ax.axvline(0, color="#444", lw=0.8)
        ax.set_yticks(range(len(classes)), [f"{c} (n={variants[0][1]['per_class'][c]['support']})" for c in classes])
        ax.invert_yaxis()
        ax.set_xlabel(f"change of {title} vs baseline, points; whisker: 95% CI")
        ax.grid(axis="x", alpha=0.3)
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)  # beside, not over, the bars
    fig.tight_layout()
    return _svg(fig)

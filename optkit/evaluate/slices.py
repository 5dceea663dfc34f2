"""Slices of the eval rows (text-length terciles, the target, any data column) and each variant's change on them.

An average hides who pays for a smaller model: a variant can hold its overall accuracy while long
reviews, or one source, lose several points. Each slice group gets the primary metric, its change
against the baseline and the paired 95% interval of that change; a group too small for its interval
to say anything is flagged rather than read as a finding.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from optkit.evaluate.stats import paired_bootstrap_delta, verdict
from optkit.sources.data import display_text
from optkit.tasks import Task

__all__ = ["INCONCLUSIVE_ROWS", "INCONCLUSIVE_WIDTH", "MAX_GROUPS", "slice_changes", "slice_groups", "worst_slice"]

# A group with fewer rows, or whose interval holds zero and is wider than this (in the metric's units: 10
# points of accuracy), is flagged "too small to conclude": a few rows flipping move its metric by whole points.
INCONCLUSIVE_ROWS = 30
INCONCLUSIVE_WIDTH = 0.10
MAX_GROUPS = 20  # per data column; rarer values are pooled as '(other)' so a free-text column stays readable


def slice_groups(
    name: str, texts: Sequence[str], targets: Sequence[Any], names: Sequence[str], task: Task, column: Sequence[str]
) -> dict[str, list[int]]:
    """Eval row indices per group of one slice: 'length', 'label', or a data column's values."""
    if name == "length":
        return _length_groups(texts)
    values = [task.prediction_label(t, names) for t in targets] if name == "label" else list(column)
    counts = Counter(values)
    kept = {v for v, _ in counts.most_common(MAX_GROUPS)}
    groups: dict[str, list[int]] = {}
    for i, v in enumerate(values):
        groups.setdefault(v if v in kept else "(other)", []).append(i)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0] == "(other)", -len(kv[1]), kv[0])))


def _length_groups(texts: Sequence[str]) -> dict[str, list[int]]:
    """Terciles of the eval texts' word counts, named by their bounds."""
    import numpy as np

    words = [len(display_text(t).split()) for t in texts]  # a text pair counts both texts' words
    a, b = (int(x) for x in np.quantile(words, [1 / 3, 2 / 3], method="lower"))  # edges are real counts
    bounds = [(f"short (≤{a} words)", a), (f"medium ({a + 1}–{b} words)", b), (f"long (>{b} words)", max(words))]
    groups: dict[str, list[int]] = {label: [] for label, _ in bounds}  # short to long, whatever comes first
    for i, n in enumerate(words):
        groups[next(label for label, top in bounds if n <= top)].append(i)
    return {label: rows for label, rows in groups.items() if rows}


def slice_changes(
    task: Task,
    groups: dict[str, dict[str, list[int]]],
    reference: Sequence[Any],
    candidate: Sequence[Any] | None,
    targets: Sequence[Any],
    names: Sequence[str],
    *,
    seed: int,
) -> dict[str, dict[str, dict[str, Any]]]:
    """{slice: {group: figures}}: rows and the primary metric, and (with a ``candidate``) its change against
    ``reference``, the paired 95% interval, a verdict and whether the group is too small to conclude."""
    primary = task.primary_metric
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for slice_name, by_group in groups.items():
        table: dict[str, dict[str, Any]] = {}
        for group, rows in by_group.items():
            ys = [targets[i] for i in rows]
            ref = [reference[i] for i in rows]
            figures: dict[str, Any] = {"rows": len(rows)}
            if candidate is None:
                figures[primary] = task.scores(ref, ys, names)[primary]
                table[group] = figures
                continue
            cand = [candidate[i] for i in rows]
            value = task.scores(cand, ys, names)[primary]
            figures |= {primary: value, "delta": value - task.scores(ref, ys, names)[primary]}
            ref_scores, cand_scores = task.row_scores(ref, ys), task.row_scores(cand, ys)
            wide = False
            if ref_scores is not None and cand_scores is not None:
                ci = paired_bootstrap_delta(ref_scores, cand_scores, seed=seed)
                figures |= {"delta_ci95": list(ci), "verdict": verdict(ci, higher_is_better=task.metrics[primary])}
                wide = (
                    ci[1] - ci[0] > INCONCLUSIVE_WIDTH and ci[0] <= 0 <= ci[1]
                )  # a wide interval off zero still tells
            figures["inconclusive"] = len(rows) < INCONCLUSIVE_ROWS or wide
            table[group] = figures
        out[slice_name] = table
    return out


def worst_slice(
    changes: dict[str, dict[str, dict[str, Any]]], *, higher_is_better: bool = True
) -> dict[str, Any] | None:
    """The slice group whose primary metric moved most the wrong way, inconclusive or not (the flag says)."""
    sign = 1 if higher_is_better else -1
    found = [(sign * g["delta"], s, name, g) for s, table in changes.items() for name, g in table.items()]
    if not found:
        return None
    _, s, name, g = min(found, key=lambda t: (t[0], t[1], t[2]))
    return {
        "slice": s,
        "group": name,
        "delta": g["delta"],
        "ci95": g.get("delta_ci95"),
        "rows": g["rows"],
        "inconclusive": g["inconclusive"],
    }

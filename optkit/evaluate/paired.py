"""Two models' predictions on the same eval rows: the change, its 95% interval, and the rows that changed.

Used by the harness (each variant against the baseline) and by ``optkit compare`` (one report's
variant against another report's, when both scored the same rows). Everything that depends on what
a prediction is (correctness, classes, how to show one) is asked of the task; this module only
pairs, resamples and counts, so a task without classes still gets its primary metric's interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from optkit.evaluate.stats import BOOTSTRAP_RESAMPLES, interval, mcnemar_exact_p, resample_weights, verdict
from optkit.sources.data import display_text
from optkit.tasks import Task

__all__ = [
    "CLASS_METRICS",
    "changed_examples",
    "decode_predictions",
    "encode_predictions",
    "paired_change",
    "worst_class",
]

# Per-class metrics that get a paired interval and count towards the worst-hit class and max_class_drop.
CLASS_METRICS = ("recall", "f1")
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_INDEX = {ch: i for i, ch in enumerate(_ALPHABET)}
_TEXT_CHARS = 300  # enough of a review to see why it flipped, without copying the data set into the report


def encode_predictions(values: Sequence[Any]) -> str | list[Any]:
    """Class ids 0-61 as one character each ("0110..."): 2,562 rows take one 2.5 kB line of report.json
    instead of 2,562 lines. Anything else (floats, more classes) is kept as a plain list."""
    if all(type(v) is int and 0 <= v < len(_ALPHABET) for v in values):
        return "".join(_ALPHABET[v] for v in values)
    return list(values)


def decode_predictions(value: str | Sequence[Any]) -> list[Any]:
    """The inverse of ``encode_predictions``; raises ValueError on a character it never writes."""
    if isinstance(value, str):
        try:
            return [_INDEX[ch] for ch in value]
        except KeyError as e:
            raise ValueError(f"unknown prediction code {e.args[0]!r}") from None
    return list(value)


def paired_change(
    task: Task,
    reference: Sequence[Any],
    candidate: Sequence[Any],
    targets: Sequence[Any],
    names: Sequence[str],
    *,
    seed: int,
    resamples: int = BOOTSTRAP_RESAMPLES,
    per_class: bool = True,
) -> dict[str, Any]:
    """``candidate`` against ``reference`` on the same rows, in report fields (primary metric ``m``):

    ``m_delta_ci95`` and ``m_delta_verdict`` (when the task scores rows), ``mcnemar_p`` and
    ``discordant_rows`` (when row scores are 1/0: right or wrong), ``changed_rows`` and
    ``changed_share``, and with ``per_class`` (for tasks with classes) ``per_class`` and ``worst_class``.
    The same seed gives the same resamples, so a report is reproducible from its predictions.
    """
    import numpy as np

    if not len(reference) == len(candidate) == len(targets) > 0:
        raise ValueError(f"paired rows differ: {len(reference)}, {len(candidate)} and {len(targets)} rows")
    primary = task.primary_metric
    out: dict[str, Any] = {}
    diff, binary = _score_diff(task, reference, candidate, targets)
    with_classes = per_class and task.class_metrics(reference[:1], targets[:1], names) is not None
    deltas: list[Any] = []
    class_deltas: dict[str, dict[str, list[Any]]] = {}
    for w in resample_weights(len(targets), resamples=resamples, seed=seed):
        if diff is not None:
            deltas.append(w @ diff / len(targets))
        if with_classes:
            before, after = (
                task.class_metrics(reference, targets, names, w),
                task.class_metrics(candidate, targets, names, w),
            )
            for c in before:  # type: ignore[union-attr]
                for m in CLASS_METRICS:
                    class_deltas.setdefault(c, {}).setdefault(m, []).append(after[c][m] - before[c][m])  # type: ignore[index]
    if diff is not None:
        ci = interval(np.concatenate(deltas))
        higher = task.metrics[primary]
        out[f"{primary}_delta_ci95"] = list(ci)
        out[f"{primary}_delta_verdict"] = verdict(ci, higher_is_better=higher)
        if binary:
            lost, gained = int((diff < 0).sum()), int((diff > 0).sum())
            out["mcnemar_p"] = mcnemar_exact_p(lost, gained)
            out["discordant_rows"] = {"reference_only_right": lost, "variant_only_right": gained}
    changed = sum(a != b for a, b in zip(reference, candidate, strict=True))
    out["changed_rows"] = changed
    out["changed_share"] = changed / len(targets)
    if with_classes:
        out["per_class"] = _class_table(task, reference, candidate, targets, names, class_deltas)
        out["worst_class"] = worst_class(out["per_class"])
    return out


def _score_diff(
    task: Task, reference: Sequence[Any], candidate: Sequence[Any], targets: Sequence[Any]
) -> tuple[Any, bool]:
    """Per-row change of the primary metric's score (candidate minus reference), or None; and whether
    every row score is 0 or 1 (right or wrong), which McNemar's test needs."""
    import numpy as np

    ref, cand = task.row_scores(reference, targets), task.row_scores(candidate, targets)
    if ref is None or cand is None:
        return None, False
    a, b = np.asarray(ref, dtype=float), np.asarray(cand, dtype=float)
    return b - a, bool(np.isin(a, (0.0, 1.0)).all() and np.isin(b, (0.0, 1.0)).all())


def _class_table(
    task: Task,
    reference: Sequence[Any],
    candidate: Sequence[Any],
    targets: Sequence[Any],
    names: Sequence[str],
    class_deltas: dict[str, dict[str, list[Any]]],
) -> dict[str, dict[str, Any]]:
    """Each class's metrics for the candidate, their change, and a paired interval for recall and F1."""
    import numpy as np

    before = task.class_metrics(reference, targets, names) or {}
    after = task.class_metrics(candidate, targets, names) or {}
    table: dict[str, dict[str, Any]] = {}
    for c, values in after.items():
        row: dict[str, Any] = dict(values)
        for m in ("precision", *CLASS_METRICS):
            row[f"{m}_delta"] = _finite(values[m] - before[c][m])
        for m in CLASS_METRICS:
            ci = interval(np.concatenate(class_deltas[c][m]))
            row[f"{m}_delta_ci95"] = list(ci) if not math.isnan(ci[0]) else None
        table[c] = row
    return table


def worst_class(per_class: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The class whose recall or F1 fell most (the largest drop of either), with its interval."""
    candidates = [
        (row[f"{m}_delta"], c, m)
        for c, row in per_class.items()
        for m in CLASS_METRICS
        if row.get(f"{m}_delta") is not None
    ]
    if not candidates:
        return None
    delta, c, m = min(candidates, key=lambda t: (t[0], t[1], t[2]))
    ci = per_class[c].get(f"{m}_delta_ci95")
    return {
        "class": c,
        "metric": m,
        "delta": delta,
        "ci95": ci,
        "verdict": verdict(ci) if ci else "no interval",
        "support": per_class[c].get("support"),
    }


def changed_examples(
    task: Task,
    reference: Sequence[Any],
    candidate: Sequence[Any],
    targets: Sequence[Any],
    names: Sequence[str],
    texts: Sequence[str],
    confidences: tuple[Sequence[float] | None, Sequence[float] | None] = (None, None),
    *,
    limit: int = 10,
) -> list[dict[str, Any]]:
    """Up to ``limit`` eval rows whose prediction changed: first those the reference got right and the
    candidate got wrong (what compression cost), then the rest, each in eval-row order."""
    scores = task.row_scores(reference, targets)
    rows = [i for i, (a, b) in enumerate(zip(reference, candidate, strict=True)) if a != b]
    if scores is not None:
        cand_scores = task.row_scores(candidate, targets) or scores
        rows.sort(key=lambda i: (not scores[i] > cand_scores[i], i))
    ref_conf, cand_conf = confidences
    out = []
    for i in rows[:limit]:
        text = display_text(texts[i])
        example: dict[str, Any] = {
            "row": i,
            "text": text if len(text) <= _TEXT_CHARS else text[: _TEXT_CHARS - 1] + "…",
            "label": task.prediction_label(targets[i], names),
            "baseline": task.prediction_label(reference[i], names),
            "variant": task.prediction_label(candidate[i], names),
        }
        if ref_conf is not None and cand_conf is not None:
            example["baseline_confidence"] = ref_conf[i]
            example["variant_confidence"] = cand_conf[i]
        out.append(example)
    return out


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else float(x)

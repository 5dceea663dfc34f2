"""``text-classification``: one text in, one class out (sentiment, topic, intent).

Targets are class ids in the order of ``data.labels`` (or the sorted distinct values); splits are
stratified by class; the head is ``AutoModelForSequenceClassification``; a prediction is the
argmax of the logits; accuracy is the primary metric, with macro-F1 beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optkit.errors import DataError, EvaluationError, PassError
from optkit.tasks import register_task
from optkit.tasks.base import Targets, Task
from optkit.tasks.hf import head_names, label_maps, load_error, quiet_transformers, require_head

if TYPE_CHECKING:
    from optkit.recipe import DataSpec, Recipe
    from optkit.sources.data import Splits

__all__ = ["TextClassification", "classification_scores", "per_class_metrics"]


@register_task
class TextClassification(Task):
    name = "text-classification"
    metrics = {"accuracy": True, "macro_f1": True}  # noqa: RUF012 - a class-level table, never mutated
    export_name = "text-classification"
    auto_model = "AutoModelForSequenceClassification"
    target_dtype = "long"

    @property
    def data_identity(self) -> dict[str, Any]:
        return {}  # data keys predate tasks; leaving the task out keeps every existing cache entry valid

    def targets(self, column: Any, spec: DataSpec, where: str) -> Targets:
        values = _label_strings(column)
        wanted = spec.label_values or sorted(values.unique())
        missing = [value for value in wanted if value not in set(values)]
        if missing:
            found = ", ".join(sorted(values.unique())[:10])
            raise DataError(f"data.labels: {missing} never occur in column {spec.label!r} of {where} (found: {found})")
        keep = values.isin(wanted)
        if not keep.any():
            raise DataError(f"data.source: {where} has no rows with text and a label in {wanted}")
        if len(wanted) < 2:
            raise DataError(f"data.label: column {spec.label!r} of {where} has a single class {wanted}; need 2 or more")
        names = spec.label_names(wanted)
        ids = values[keep].map({value: i for i, value in enumerate(wanted)}).astype(int).tolist()
        counts = {name: ids.count(i) for i, name in enumerate(names)}
        return Targets(
            values=ids,
            keep=keep,
            names=names,
            strata=ids,
            summary={"class_counts": counts, "summary": ", ".join(f"{k} {v}" for k, v in counts.items())},
            # a mapping renames the values; without one the key stays as it always was, so caches still hit
            identity={"label_values": wanted} if wanted != names else {},
        )

    def check_model(self, recipe: Recipe, config: dict[str, Any], splits: Splits, head_pass: str | None) -> None:
        """``head_pass`` is None when the baseline trains a new head; else the pass to suggest for one."""
        names = splits.label_names
        if head_pass is not None:
            self._check_head(recipe, config, head_pass)
        if recipe.model.num_labels is not None and recipe.model.num_labels != len(names):
            raise DataError(
                f"model.num_labels is {recipe.model.num_labels} but data.labels gives {len(names)} "
                f"classes {names}; make them equal"
            )
        n = len(config.get("id2label") or {}) or config.get("num_labels")
        if head_pass is not None and n and n != len(names):
            raise DataError(
                f"data.labels: the data has {len(names)} classes {names} but the model's head has {n} outputs "
                f"and the baseline has no step that trains one; set data.labels to {n} classes, or add "
                f"'- {head_pass}: {{}}' to the baseline to train a new head"
            )

    def _check_head(self, recipe: Recipe, config: dict[str, Any], head_pass: str) -> None:
        """A head used as it is must be a classifier whose labels and size fit the recipe."""
        require_head(recipe, config, "ForSequenceClassification", "sequence-classification", head_pass)
        id2label = config.get("id2label") or {}
        head = head_names(config)
        wanted = recipe.data.label_names(recipe.data.label_values) if recipe.data.label_values else None
        generic = all(n == f"LABEL_{i}" for i, n in enumerate(head))  # a head nobody named: any names fit
        if wanted and len(head) == len(wanted) and not generic and head != wanted:
            raise PassError(
                f"data.labels {list(wanted)} do not match the model head's labels {head} (id order); "
                f"reorder data.labels to {head}, or fine-tune the head (add '- {head_pass}: {{}}' to the baseline)"
            )
        n = len(id2label) or config.get("num_labels")
        if recipe.model.num_labels is not None and n and n != recipe.model.num_labels:
            raise PassError(
                f"model.num_labels is {recipe.model.num_labels} but the model's head has {n} labels; "
                f"fine-tune it (add a {head_pass} step) or set model.num_labels to {n}"
            )

    def load_model(
        self,
        path: Path,
        names: Sequence[str],
        *,
        trust_remote_code: bool,
        for_training: bool,
        where: str,
        log: Callable[[str], None] = print,
    ) -> tuple[Any, Any]:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            if for_training:
                model = _with_head(path, list(names), trust_remote_code, log)
            else:
                model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=trust_remote_code)
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        except (OSError, ValueError, KeyError) as e:
            raise load_error(for_training)(f"{where}: could not load {str(path)!r} as a classifier: {e}") from e
        return (model if for_training else model.eval()), tokenizer

    def check_outputs(self, outputs: Any, names: Sequence[str], variant: str) -> None:
        if outputs.shape[-1] != len(names):
            raise EvaluationError(
                f"{variant}: the model outputs {outputs.shape[-1]} classes but the data has {len(names)} "
                f"labels {list(names)}; set data.labels or fine-tune the head"
            )

    def predictions(self, outputs: Any) -> list[int]:
        return [int(p) for p in outputs.argmax(-1)]

    def readable(self, outputs: Any, names: Sequence[str]) -> list[dict[str, Any]]:
        """The label, its softmax probability, and every class's, per example."""
        import numpy as np

        logits = np.asarray(outputs, dtype=np.float64)
        e = np.exp(logits - logits.max(-1, keepdims=True))
        probs = e / e.sum(-1, keepdims=True)
        return [
            {
                "label": names[int(row.argmax())],
                "score": float(row.max()),
                "scores": {n: float(x) for n, x in zip(names, row, strict=True)},
            }
            for row in probs
        ]

    def scores(self, predictions: Sequence[Any], targets: Sequence[Any], names: Sequence[str]) -> dict[str, float]:
        return classification_scores(predictions, targets, len(names))

    def agreement(self, predictions: Sequence[Any], reference: Sequence[Any]) -> float:
        return sum(a == b for a, b in zip(predictions, reference, strict=True)) / len(predictions)

    def row_scores(self, predictions: Sequence[Any], targets: Sequence[Any]) -> list[float]:
        return [1.0 if p == y else 0.0 for p, y in zip(predictions, targets, strict=True)]

    def confidences(self, outputs: Any) -> list[float]:
        import numpy as np

        logits = np.asarray(outputs, dtype=np.float64)
        shifted = np.exp(logits - logits.max(-1, keepdims=True))  # softmax without overflow
        return [round(float(p), 4) for p in (shifted / shifted.sum(-1, keepdims=True)).max(-1)]

    def prediction_label(self, prediction: Any, names: Sequence[str]) -> str:
        return names[prediction] if isinstance(prediction, int) and 0 <= prediction < len(names) else str(prediction)

    def class_metrics(
        self, predictions: Sequence[Any], targets: Sequence[Any], names: Sequence[str], weights: Any = None
    ) -> dict[str, dict[str, Any]]:
        return per_class_metrics(predictions, targets, names, weights)


def classification_scores(preds: Sequence[int], labels: Sequence[int], n_classes: int) -> dict[str, float]:
    """Accuracy and macro-F1 (the unweighted mean of per-class F1, so a small class counts as much)."""
    correct = sum(p == y for p, y in zip(preds, labels, strict=True))
    f1s = []
    for c in range(n_classes):
        tp = sum(p == c and y == c for p, y in zip(preds, labels, strict=True))
        fp = sum(p == c and y != c for p, y in zip(preds, labels, strict=True))
        fn = sum(p != c and y == c for p, y in zip(preds, labels, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return {"accuracy": correct / len(labels) if labels else 0.0, "macro_f1": sum(f1s) / n_classes}


def per_class_metrics(
    preds: Sequence[int], labels: Sequence[int], names: Sequence[str], weights: Any = None
) -> dict[str, dict[str, Any]]:
    """Precision, recall, F1 and support of each class; with bootstrap ``weights`` (resamples x rows),
    arrays over the resamples.

    All counts come from one product of the weights with the rows' tp/fp/fn indicators. A class
    absent from a resample (possible for a rare class) has no recall there: NaN, which the interval
    ignores, rather than a made-up 0.
    """
    import numpy as np

    p, y = np.asarray(preds), np.asarray(labels)
    k = len(names)
    onehot_p = p[:, None] == np.arange(k)  # rows x classes
    onehot_y = y[:, None] == np.arange(k)
    indicators = np.concatenate([onehot_p & onehot_y, onehot_p & ~onehot_y, ~onehot_p & onehot_y], axis=1)
    w = np.ones((1, len(p))) if weights is None else np.asarray(weights)
    counts = w @ indicators.astype(w.dtype)  # resamples x 3k
    tp, fp, fn = counts[:, :k], counts[:, k : 2 * k], counts[:, 2 * k :]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)  # never predicted: precision 0, as sklearn
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        f1 = np.where(tp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
    out: dict[str, dict[str, Any]] = {}
    for c, name in enumerate(names):
        values = {"precision": precision[:, c], "recall": recall[:, c], "f1": f1[:, c], "support": tp[:, c] + fn[:, c]}
        if weights is None:
            values = {m: float(v[0]) for m, v in values.items()}
            values["support"] = int(values["support"])
        out[str(name)] = values
    return out


def _with_head(path: Path, names: list[str], trust_remote_code: bool, log: Callable[[str], None]) -> Any:
    """The model with a head of ``len(names)`` outputs named ``names``; a head of another size is re-initialised."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    base = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    had_head = any(a.endswith("ForSequenceClassification") for a in (base.architectures or []))
    if had_head and base.num_labels != len(names):
        log(
            f"  [yellow]note[/]: the model's head has {base.num_labels} labels, the data {len(names)}; "
            f"the head is re-initialised"
        )
    with quiet_transformers():  # "newly initialized classifier" is expected before fine-tuning
        return AutoModelForSequenceClassification.from_pretrained(
            path, **label_maps(names), ignore_mismatched_sizes=True, trust_remote_code=trust_remote_code
        )


def _label_strings(column: Any) -> Any:
    """Label values as text, the way a recipe names them: an integer column with gaps reads as floats in
    pandas (1.0), so whole floats are written as integers ('1')."""
    import pandas as pd

    if pd.api.types.is_float_dtype(column) and (column.dropna() % 1 == 0).all():
        return column.astype("Int64").astype(str)
    return column.astype(str)

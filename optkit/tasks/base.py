"""The Task protocol: every place where optkit needs to know what a model is for asks a Task."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from optkit.recipe import DataSpec, Recipe
    from optkit.sources.data import Splits

__all__ = ["Targets", "Task"]


@dataclass(frozen=True)
class Targets:
    """What a task read from the label column: one target per kept row, and how to describe them."""

    values: list[Any]  # one per kept row: a class id, a number, ...
    keep: Any  # boolean mask over the rows it was given: rows without a usable target are dropped
    names: list[str]  # class names in id order; empty for tasks without classes
    strata: list[int] | None  # split so that each stratum keeps its share (class ids), or None: plain random
    summary: dict[str, Any] = field(default_factory=dict)  # for the report and `optkit validate`
    identity: dict[str, Any] = field(default_factory=dict)  # what else shapes the targets: part of the data key


class Task:
    """What a kind of model does with its data. Subclass it, set the class attributes, register it.

    Every method has the one implementation optkit needs for that task; nothing outside
    ``optkit.tasks`` assumes class logits, argmax or accuracy.
    """

    name: ClassVar[str]
    # Metric names in report order, primary first, each with whether higher is better.
    metrics: ClassVar[dict[str, bool]]
    # What Optimum's exporter calls this kind of model (its ``task=`` argument).
    export_name: ClassVar[str]
    # The transformers Auto class that loads a saved model of this task with its head.
    auto_model: ClassVar[str]
    # dtype of the training targets handed to the model's own loss ("long" class ids, "float" values).
    target_dtype: ClassVar[str] = "long"
    # What a data row holds: "text", or "image" (a reference to an image, read by optkit.sources.images).
    input_kind: ClassVar[str] = "text"

    @property
    def primary_metric(self) -> str:
        return next(iter(self.metrics))

    @property
    def has_classes(self) -> bool:
        """Whether the task reports per-class metrics (it implements ``class_metrics``)."""
        return type(self).class_metrics is not Task.class_metrics

    @property
    def data_identity(self) -> dict[str, Any]:
        """What the task adds to the data's key: the same rows read by two tasks are two data sets."""
        return {"task": self.name}

    def targets(self, column: Any, spec: DataSpec, where: str) -> Targets:
        """Read the label column (a pandas Series, missing values already dropped) into targets."""
        raise NotImplementedError

    def check_model(self, recipe: Recipe, config: dict[str, Any], splits: Splits, head_pass: str | None) -> None:
        """Refuse, before any work, a model whose head cannot serve this data.

        ``head_pass`` is None when the baseline trains a new head, else the pass to suggest for it.
        """

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
        """(torch model, tokenizer or processor) from an HF folder, with this task's head.

        For training, a head that does not fit ``names`` is replaced; for inference the saved one is used.
        """
        raise NotImplementedError

    def check_outputs(self, outputs: Any, names: Sequence[str], variant: str) -> None:
        """Refuse outputs of the wrong shape before they are scored (a head of another size)."""

    def predictions(self, outputs: Any) -> list[Any]:
        """Raw model outputs (numpy, one row per example) to one prediction per example, JSON-serialisable."""
        raise NotImplementedError

    def readable(self, outputs: Any, names: Sequence[str]) -> list[dict[str, Any]]:
        """Raw outputs as a person (or ``optkit predict --json``) reads them, one dict per example."""
        return [{"prediction": p} for p in self.predictions(outputs)]

    def scores(self, predictions: Sequence[Any], targets: Sequence[Any], names: Sequence[str]) -> dict[str, float]:
        """Every metric in ``metrics``, on one split."""
        raise NotImplementedError

    def agreement(self, predictions: Sequence[Any], reference: Sequence[Any]) -> float:
        """Share of examples on which two models agree (a compressed variant and its baseline)."""
        raise NotImplementedError

    # Input hooks: how rows become model inputs. The defaults are a text model's tokenizer; an image task
    # returns an object called like a tokenizer (rows in, named arrays out) that wraps its image processor.

    def input_encoder(self, path: Path) -> Any:
        """What turns rows into the inputs of the model saved at ``path`` (its tokenizer or processor)."""
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path)

    def training_encoder(self, encoder: Any, augment: dict[str, Any] | None, seed: int, where: str) -> Any:
        """The encoder training batches go through: ``augment`` (a fine-tune's options) switched on, seeded."""
        if augment:
            from optkit.errors import RecipeError

            raise RecipeError(f"{where}.augment: task {self.name!r} has no augmentations; remove augment")
        return encoder

    def export_example(self, model: Any, encoder: Any) -> tuple[list[str], tuple[Any, ...], dict[str, Any]] | None:
        """(input names, example tensors, dynamic axes) to trace ``model`` for ONNX, or None: the text inputs."""
        return None

    # Optional hooks: a task that leaves them as they are gets no interval, no per-class table and no
    # confidences in its report, and everything else works the same.

    def row_scores(self, predictions: Sequence[Any], targets: Sequence[Any]) -> list[float] | None:
        """Each eval row's share of the primary metric, whose mean over the rows *is* the primary metric
        (1/0 correctness for accuracy, squared error for MSE); None when the metric is not such a mean.

        This is what the paired bootstrap resamples to put an interval on a variant's change.
        """
        return None

    def confidences(self, outputs: Any) -> list[float] | None:
        """How sure the model was of each prediction (top class probability), or None; shown beside
        the rows whose prediction changed."""
        return None

    def prediction_label(self, prediction: Any, names: Sequence[str]) -> str:
        """One prediction as a reader should see it (a class name rather than its id)."""
        return str(prediction)

    def class_metrics(
        self, predictions: Sequence[Any], targets: Sequence[Any], names: Sequence[str], weights: Any = None
    ) -> dict[str, dict[str, Any]] | None:
        """Per-class metrics ({class: {metric: value}}), or None for tasks without classes.

        ``weights`` is None (each row counted once: plain floats) or a (resamples x rows) matrix of
        bootstrap multiplicities: then every value is an array with one entry per resample, so the
        harness gets intervals without the task knowing about bootstraps.
        """
        return None

"""The Task protocol: every place where optkit needs to know what a model is for asks a Task."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from optkit.recipe import DataSpec, Recipe
    from optkit.sources.data import Splits

__all__ = ["Rows", "Targets", "Task", "TrainingFeatures"]


@dataclass(frozen=True)
class Targets:
    """What a task read from the label column: one target per kept row, and how to describe them."""

    values: list[Any]  # one per kept row: a class id, a number, ...
    keep: Any  # boolean mask over the rows it was given: rows without a usable target are dropped
    names: list[str]  # class names in id order; empty for tasks without classes
    strata: list[int] | None  # split so that each stratum keeps its share (class ids), or None: plain random
    summary: dict[str, Any] = field(default_factory=dict)  # for the report and `optkit validate`
    identity: dict[str, Any] = field(default_factory=dict)  # what else shapes the targets: part of the data key


@dataclass(frozen=True)
class Rows:
    """What a structured task read from a whole table (see ``Task.read_rows``): per usable row, a text
    to show a reader, the model's input (tokens, a question and its context) and the targets."""

    texts: list[str]  # for reports, slices by length and changed examples
    items: list[Any]  # what the task's ``encode`` turns into model inputs
    targets: Targets  # values aligned with ``texts``; ``keep`` is unused (rows are already filtered)


@dataclass(frozen=True)
class TrainingFeatures:
    """Training batches a task builds itself: one feature per training window (a QA context longer
    than ``max_length`` gives several), its length in tokens (for length-bucketed batches), and a
    collate function from feature indices to a batch of tensors with the model's loss targets."""

    lengths: list[int]
    collate: Callable[[list[int]], dict[str, Any]]

    def __len__(self) -> int:
        return len(self.lengths)


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
    # Structured tasks (token tags, question + context) read whole rows with ``read_rows``, tokenise
    # with ``encode``, train on ``training_features`` and predict with ``infer``; the harness, export,
    # calibration and fine-tuning ask them instead of tokenising ``Split.texts`` as one text each.
    structured: ClassVar[bool] = False
    # The model's outputs in order (the ONNX graph's output names when exported with backend torch).
    output_names: ClassVar[tuple[str, ...]] = ("logits",)
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

    def eval_predictions(self, outputs: Any, targets: Sequence[Any]) -> list[Any]:
        """Predictions on the whole eval split, for tasks whose prediction of one row depends on the other
        rows and their targets (a k-nearest-neighbour classifier over sentence embeddings). Default:
        ``predictions(outputs)``, which sees one row at a time."""
        return self.predictions(outputs)

    @property
    def scores_outputs(self) -> bool:
        """Whether the task scores raw outputs against the baseline's (it implements ``output_scores``)."""
        return type(self).output_scores is not Task.output_scores

    def output_scores(self, outputs: Any, reference: Any) -> dict[str, float]:
        """Metrics of a variant's raw eval outputs against the baseline's, row by row (the cosine of two
        embeddings); merged into the variant's figures beside ``scores``. Default: none."""
        return {}

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

    # Hooks of structured tasks (``structured = True``). The defaults are the single-text behaviour,
    # so a classifier never needs them.

    def read_rows(self, frame: Any, spec: DataSpec, where: str) -> Rows | None:
        """Read the whole table (a pandas DataFrame) into rows; None: the text column plus ``targets``."""
        return None

    def encode(
        self, tokenizer: Any, items: Sequence[Any], max_length: int, *, padding: bool | str = True
    ) -> dict[str, Any]:
        """Model inputs (numpy, one row per item) for ``items``: calibration batches and latency shapes.

        ``padding="max_length"`` pads every row to exactly ``max_length`` tokens (a latency shape).
        """
        enc = tokenizer(list(items), truncation=True, max_length=max_length, padding=padding, return_tensors="np")
        return dict(enc)

    def training_features(
        self, tokenizer: Any, items: Sequence[Any], targets: Sequence[Any], max_length: int
    ) -> TrainingFeatures | None:
        """Batches for the model's own loss; None: one text and one target per row (the classifier path)."""
        return None

    def infer(
        self,
        forward: Callable[[dict[str, Any]], list[Any]],
        tokenizer: Any,
        items: Sequence[Any],
        max_length: int,
        batch_size: int,
        on_batch: Callable[[int], None] | None = None,
    ) -> Any:
        """Raw outputs over ``items`` (what ``predictions`` reads): ``forward`` maps a numpy encoding to the
        model's outputs (numpy, in ``output_names`` order), from ONNX Runtime or PyTorch alike."""
        raise NotImplementedError

    def item_from_text(self, text: str, where: str) -> Any:
        """One input line of ``optkit predict`` as a model input (words split on spaces; a question and its
        context); a line that cannot be one is a DataError naming ``where``."""
        return text

    def output_diff(self, reference: Any, candidate: Any) -> float:
        """Largest absolute difference between two models' raw outputs (export validation)."""
        import numpy as np

        return float(np.abs(np.asarray(reference) - np.asarray(candidate)).max()) if len(reference) else 0.0

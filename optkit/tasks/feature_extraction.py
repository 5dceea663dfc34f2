"""``feature-extraction``: one text in, one sentence embedding out (semantic search, retrieval, clustering).

The model is the folder's encoder with its sentence-transformers pooling (see ``sentence_encoder``);
its output, and the exported ONNX graph's, is the pooled and (where the folder says so) L2-normalised
vector. Quality is measured two ways, because neither alone is enough:

- **cosine to the baseline**, row by row on the eval split (mean and 5th percentile): how far a
  compressed variant moved the vectors an index was built with; the percentile catches the few rows
  that moved a lot, which a mean hides;
- **a downstream measure on labelled rows no variant trained on**: a leave-one-out k-nearest-neighbour
  classifier over the eval split's own embeddings (each row's label voted by its ``KNN_K`` most similar
  other rows). This is the primary metric: a variant can keep a high mean cosine and still reorder
  neighbours, and reordered neighbours are what a user of the embeddings sees.

The label column is needed for the downstream measure only; nothing trains on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optkit.errors import EvaluationError, PassError
from optkit.tasks import register_task
from optkit.tasks.base import Targets, Task
from optkit.tasks.hf import load_error, quiet_transformers
from optkit.tasks.text_classification import TextClassification, classification_scores, per_class_metrics

if TYPE_CHECKING:
    from optkit.recipe import DataSpec, Recipe
    from optkit.sources.data import Splits

__all__ = ["KNN_K", "FeatureExtraction", "cosine_rows", "knn_labels", "nearest_rows"]

# Neighbours that vote for a row's label. 10 is the usual choice for k-NN probes of embeddings (MTEB's
# classification uses k-NN with k=3..10 beside logistic regression); odd/even ties are broken by the
# summed similarity of each class's voters, so the vote is deterministic.
KNN_K = 10


@register_task
class FeatureExtraction(Task):
    name = "feature-extraction"
    metrics = {  # noqa: RUF012 - a class-level table, never mutated
        "knn_accuracy": True,
        "knn_macro_f1": True,
        "cosine_mean": True,
        "cosine_p5": True,
    }
    export_name = "feature-extraction"
    auto_model = "AutoModel"
    target_dtype = "long"
    output_names = ("sentence_embedding",)

    def targets(self, column: Any, spec: DataSpec, where: str) -> Targets:
        """Class labels for the k-NN measure, read as a classifier reads them (data.labels filters them)."""
        return TextClassification().targets(column, spec, where)

    def check_model(self, recipe: Recipe, config: dict[str, Any], splits: Splits, head_pass: str | None) -> None:
        """An embedding model has no head: a head size in the recipe is a mistake worth naming."""
        from optkit.errors import RecipeError

        if recipe.model.num_labels is not None:
            raise RecipeError(
                "model.num_labels: task 'feature-extraction' has no classification head (it outputs embeddings); "
                "remove model.num_labels"
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
        from transformers import AutoModel, AutoTokenizer

        from optkit.tasks.sentence_encoder import SentenceEncoder

        error = load_error(for_training)
        pooling = _pooling(path, where, error)
        try:
            with quiet_transformers():  # a classifier's folder loads into AutoModel with its head unused
                try:
                    encoder = AutoModel.from_pretrained(
                        path, trust_remote_code=trust_remote_code, add_pooling_layer=False
                    )
                except TypeError:  # an encoder class without BERT's pooler takes no add_pooling_layer
                    encoder = AutoModel.from_pretrained(path, trust_remote_code=trust_remote_code)
                tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        except (OSError, ValueError, KeyError) as e:
            raise error(f"{where}: could not load {str(path)!r} as an encoder: {e}") from e
        model = SentenceEncoder(encoder, pooling)
        return (model if for_training else model.eval()), tokenizer

    def check_outputs(self, outputs: Any, names: Sequence[str], variant: str) -> None:
        if getattr(outputs, "ndim", 0) != 2:
            raise EvaluationError(
                f"{variant}: the model outputs shape {tuple(getattr(outputs, 'shape', ()))}, not one vector per "
                f"row; export it with optkit's export pass (backend: torch), which puts the pooling in the graph"
            )

    def predictions(self, outputs: Any) -> list[int]:
        """Without targets, a row's prediction is its nearest other row (what a search returns first):
        two models agree on a row when their top hit is the same one."""
        return [int(i) for i in nearest_rows(outputs, 1)[:, 0]] if len(outputs) > 1 else [0] * len(outputs)

    def eval_predictions(self, outputs: Any, targets: Sequence[Any]) -> list[int]:
        """On the eval split: the label voted by each row's ``KNN_K`` nearest other rows."""
        return knn_labels(outputs, targets, KNN_K)

    def readable(self, outputs: Any, names: Sequence[str]) -> list[dict[str, Any]]:
        return [{"embedding": [float(x) for x in row], "dim": len(row)} for row in outputs]

    def scores(self, predictions: Sequence[Any], targets: Sequence[Any], names: Sequence[str]) -> dict[str, float]:
        m = classification_scores(predictions, targets, len(names))
        return {"knn_accuracy": m["accuracy"], "knn_macro_f1": m["macro_f1"]}

    def agreement(self, predictions: Sequence[Any], reference: Sequence[Any]) -> float:
        return sum(a == b for a, b in zip(predictions, reference, strict=True)) / len(predictions)

    def row_scores(self, predictions: Sequence[Any], targets: Sequence[Any]) -> list[float]:
        return [1.0 if p == y else 0.0 for p, y in zip(predictions, targets, strict=True)]

    def prediction_label(self, prediction: Any, names: Sequence[str]) -> str:
        return names[prediction] if isinstance(prediction, int) and 0 <= prediction < len(names) else str(prediction)

    def class_metrics(
        self, predictions: Sequence[Any], targets: Sequence[Any], names: Sequence[str], weights: Any = None
    ) -> dict[str, dict[str, Any]]:
        return per_class_metrics(predictions, targets, names, weights)

    def output_scores(self, outputs: Any, reference: Any) -> dict[str, float]:
        import numpy as np

        cos = cosine_rows(outputs, reference)
        return {"cosine_mean": float(cos.mean()), "cosine_p5": float(np.percentile(cos, 5))}


def _pooling(path: Path, where: str, error: type[Exception] = PassError) -> Any:
    from optkit.tasks.sentence_encoder import read_pooling

    try:
        return read_pooling(Path(path))
    except ValueError as e:
        raise error(f"{where}: {e}") from None


def _unit(x: Any) -> Any:
    import numpy as np

    a = np.asarray(x, dtype=np.float64)
    return a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)


def cosine_rows(a: Any, b: Any) -> Any:
    """Cosine similarity of row i of ``a`` with row i of ``b`` (vectors need not be normalised)."""
    if a.shape != b.shape:
        raise EvaluationError(f"embeddings of shape {a.shape} and {b.shape} cannot be paired row by row")
    return (_unit(a) * _unit(b)).sum(-1)


def nearest_rows(outputs: Any, k: int) -> Any:
    """Indices of each row's ``k`` most cosine-similar *other* rows, most similar first (ties: lower index)."""
    import numpy as np

    unit = _unit(outputs)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    k = min(k, len(unit) - 1)
    order = np.argsort(-sims, axis=1, kind="stable")
    return order[:, :k]


def knn_labels(outputs: Any, targets: Sequence[Any], k: int) -> list[int]:
    """Leave-one-out k-NN: each row's label voted by its ``k`` nearest other rows; a tie goes to the class
    whose voters are more similar in sum, then to the lower class id."""
    import numpy as np

    if len(outputs) < 2:
        raise EvaluationError(f"the k-NN measure needs at least 2 eval rows, got {len(outputs)}")
    unit = _unit(outputs)
    y = np.asarray(targets)
    neighbours = nearest_rows(unit, k)
    sims = np.take_along_axis(unit @ unit.T, neighbours, axis=1)
    out = []
    for row, nb in enumerate(neighbours):
        votes: dict[int, tuple[int, float]] = {}
        for j, s in zip(nb, sims[row], strict=True):
            count, total = votes.get(int(y[j]), (0, 0.0))
            votes[int(y[j])] = (count + 1, total + float(s))
        out.append(min(votes, key=lambda c: (-votes[c][0], -votes[c][1], c)))
    return out

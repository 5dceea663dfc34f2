"""What every pass shares: its config base, the artifact it maps, and the context it runs in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from pydantic import BaseModel, ConfigDict

from optkit.artifact import ONNX_FILE, Artifact, ArtifactFormat
from optkit.guards import ModelDims
from optkit.progress import Progress, SilentProgress

if TYPE_CHECKING:
    from optkit.cache import ArtifactCache
    from optkit.recipe import Recipe
    from optkit.sources.data import Splits

__all__ = [
    "ONNX_FILE",
    "SEED_MAX",
    "Artifact",
    "ArtifactFormat",
    "MemoryDemand",
    "PassConfig",
    "PassContext",
    "Plan",
    "RunSettings",
]


SEED_MAX = 2**32 - 1  # numpy's and torch's seeds must be non-negative and fit their generators


@dataclass(frozen=True)
class Plan:
    """What a pass may look at before any work starts, to refuse a recipe in seconds rather than after a fine-tune."""

    model_config: dict[str, Any]  # the source model's config.json
    weights_bytes: int  # its weights on disk: the unit of most memory estimates
    splits: Splits
    max_length: int  # data.max_length, the truncation length a step uses unless it sets its own

    @property
    def dims(self) -> ModelDims:
        """The source model's sizes, what every memory estimate scales with."""
        return ModelDims.from_config(self.model_config)


class MemoryDemand(NamedTuple):
    """One memory-heavy thing a step will do: the recipe field that sizes it, in words, and the bytes estimated."""

    field: str
    what: str
    bytes: int


class PassConfig(BaseModel):
    """Base of every pass config: frozen, and a typo in YAML fails naming the field.

    Besides its options, a config answers what the layers above would otherwise have to know
    about each pass by name: what to check before any work, what memory it will need, what a
    report should say about variants it built. The defaults below fit a pass with nothing to add.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str
    # Its output carries a classification head trained on the recipe's data (a fine-tune does).
    trains_head: ClassVar[bool] = False
    # Libraries whose version changes this pass's output, besides optkit's common ones; part of its cache key.
    key_libraries: ClassVar[tuple[str, ...]] = ()
    # The tasks (model.task) this pass makes sense for; None: every task.
    tasks: ClassVar[frozenset[str] | None] = None
    # It reads the validation or eval rows (not only train and calibration): its cache key then follows
    # the full data fingerprint, which changes with data.splits.validation.
    reads_held_out: ClassVar[bool] = False

    @property
    def uses_calibration(self) -> bool:
        """Reads the calibration split (static quantisation does)."""
        return False

    @property
    def trains(self) -> bool:
        """Runs the shared training loop (``passes.training``): in a multi-process run every rank takes part
        in this step, while rank 0 alone builds the steps that do not train."""
        return False

    def check(self, where: str, model: dict[str, Any] | None, plan: Plan) -> dict[str, Any] | None:
        """Raise an ``OptkitError`` naming ``where`` for what cannot work on ``model``.

        ``model`` is the config of the model this step will receive (``None`` once an earlier step
        made one whose shape is known only at run time); return the config of the model it hands on.
        """
        return model

    def memory_demands(self, where: str, plan: Plan) -> list[MemoryDemand]:
        """What this step will hold in memory at its peak, for the guard that runs before any work.

        Estimated from the source model (``plan.model_config``): a bound for every model cut from it.
        """
        return []

    def report_notes(self, variant: str, report: dict[str, Any]) -> list[str]:
        """Plain-language notes on ``variant``'s results that a deployment engineer would otherwise dig for."""
        return []


@dataclass(frozen=True)
class RunSettings:
    """The few recipe values a pass may read; the rest of the recipe is none of its business."""

    seed: int  # a pass's own seed option wins over this
    max_length: int  # data.max_length: truncation unless the step sets its own
    num_labels: int | None = None  # model.num_labels: the head size the recipe asks for, if it says
    trust_remote_code: bool = False  # model.trust_remote_code, for every model a pass loads
    task: str = "text-classification"  # model.task: which head a model gets, how its outputs are read

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> RunSettings:
        model = recipe.model
        return cls(recipe.seed, recipe.data.max_length, model.num_labels, model.trust_remote_code, model.task)


@dataclass
class PassContext:
    """Everything a pass may read besides its input artifact; it writes only under ``out_dir``."""

    out_dir: Path
    step: str  # "variant[index] kind", for messages
    settings: RunSettings
    splits: Callable[[], Splits]  # loaded lazily: export and dynamic quantisation need no data
    progress: Progress = field(default_factory=SilentProgress)
    meta: dict[str, Any] = field(default_factory=dict)  # what the pass measured; stored in meta.json
    cache: ArtifactCache | None = None  # for derived data worth sharing between passes (teacher logits)
    # The artifacts the input was made from, oldest (the source model) first: an ONNX-side pass that
    # validates against PyTorch finds the last torch one here.
    lineage: tuple[Artifact, ...] = ()
    # False on ranks other than 0 of a multi-process training: they compute what rank 0 computes and
    # throw it away, so they must not write shared files (teacher logits) into the workspace.
    main_process: bool = True

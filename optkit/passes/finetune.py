"""``finetune``: train the classification head and encoder on the train split (torch -> torch)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from optkit.errors import DataError
from optkit.guards import training_bytes
from optkit.passes.base import Artifact, MemoryDemand, PassConfig, PassContext, Plan
from optkit.passes.heldout import schedule
from optkit.passes.options import BatchSize, Epochs, LearningRate, MaxLength, MaxSteps, Seed, WarmupRatio, WeightDecay
from optkit.passes.registry import register_pass
from optkit.passes.training import planned_steps, train_classifier
from optkit.tasks import get_task

__all__ = ["FinetuneConfig", "finetune", "load_for_training"]


class AugmentSpec(BaseModel):
    """Random augmentations of training images, drawn from the step's seed (image tasks only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    hflip: bool = Field(False, description="Mirror half of the images left-right (not for digits or text).")
    crop_padding: int = Field(0, ge=0, le=64, description="Pad by this many pixels, then crop back at a random offset.")
    rotate: float = Field(0.0, ge=0, le=180, description="Rotate by a random angle within ± this many degrees.")
    brightness: float = Field(0.0, ge=0, lt=1, description="Scale brightness by a random factor within 1 ± this.")


class FinetuneConfig(PassConfig):
    """Fine-tune for sequence classification with AdamW and a linear schedule."""

    kind: Literal["finetune"] = "finetune"
    epochs: Epochs = 1.0
    learning_rate: LearningRate = 5e-5
    batch_size: BatchSize = 32
    max_length: MaxLength = None
    weight_decay: WeightDecay = 0.01
    warmup_ratio: WarmupRatio = 0.06
    max_steps: MaxSteps = None
    seed: Seed = None
    augment: AugmentSpec | None = Field(
        None, description="Image tasks: training augmentations, seeded; off unless set."
    )

    trains_head: ClassVar[bool] = True

    @property
    def trains(self) -> bool:
        return True

    @model_serializer(mode="wrap")
    def _without_unset_augment(self, handler: Any) -> Any:
        """No augment dumps as before it existed, so the cache keys of every earlier fine-tune stay valid."""
        out = handler(self)
        if isinstance(out, dict) and self.augment is None:
            out.pop("augment", None)
        return out

    def report_notes(self, variant: str, report: dict[str, Any]) -> list[str]:
        model = (report.get("recipe") or {}).get("model") or {}
        if not model.get("from_config") or variant != "baseline":
            return []
        return [
            f"{variant}: no pretrained weights were installable here, so the model was built from "
            f"{model.get('source')!r}'s config with random weights and trained from scratch by this recipe"
        ]

    def memory_demands(self, where: str, plan: Plan) -> list[MemoryDemand]:
        seq = self.max_length or plan.max_length
        need = training_bytes(plan.dims, self.batch_size, seq, plan.weights_bytes)
        return [MemoryDemand(f"{where}.batch_size", f"training at batch {self.batch_size} x {seq} tokens", need)]


@register_pass(FinetuneConfig, version=2, input_format="torch", output_format="torch", uses_data=True)
def finetune(src: Artifact, config: FinetuneConfig, ctx: PassContext) -> Artifact:
    """Fine-tune ``src`` on the recipe's train split; writes an HF folder to ``ctx.out_dir``."""
    from accelerate.utils import set_seed

    splits = ctx.splits()
    seed = ctx.settings.seed if config.seed is None else config.seed
    set_seed(seed)  # before loading: the new classifier head is initialised randomly
    model, tokenizer = load_for_training(src, splits.label_names, ctx)
    augment = config.augment.model_dump() if config.augment is not None else None
    batches = get_task(ctx.settings.task).training_encoder(tokenizer, augment, seed, ctx.step)
    max_length = config.max_length or ctx.settings.max_length
    task = get_task(ctx.settings.task)
    features = task.training_features(tokenizer, splits.train.inputs, splits.train.labels, max_length)
    rows = len(features) if features is not None else len(splits.train)
    total = planned_steps(rows, config.batch_size, config.epochs, config.max_steps)
    with ctx.progress.task(f"{ctx.step}: training", total=total) as advance:
        result = train_classifier(
            model,
            batches,
            splits.train.texts,
            splits.train.labels,
            **schedule(config, max_length, seed, advance),
            label_dtype=task.target_dtype,
            features=features,
        )
    model.save_pretrained(ctx.out_dir, safe_serialization=True)
    tokenizer.save_pretrained(ctx.out_dir)
    ctx.meta.update(
        train_rows=len(splits.train),
        steps=result.steps,
        epochs=round(result.epochs, 3),
        final_loss=round(result.final_loss, 4),
        mean_loss_last_50=round(result.mean_loss_last_50, 4),
        train_seconds=round(result.seconds, 1),
        seed=seed,
    )
    if getattr(model.config, "optkit_from_config", False):
        ctx.meta["initialised"] = "from config.json with random weights (no pretrained weights)"
    if augment:
        ctx.meta["augment"] = augment
    ctx.progress.log(
        f"  trained {result.steps} steps on {len(splits.train)} rows in {result.seconds:.0f} s "
        f"(mean loss of last 50 steps {result.mean_loss_last_50:.3f})"
    )
    return Artifact(ctx.out_dir, "torch", key="")


def load_for_training(src: Artifact, names: list[str], ctx: PassContext) -> tuple[Any, Any]:
    """``src`` with the recipe task's head for ``names`` (re-initialised if it does not fit), and its tokenizer."""
    if ctx.settings.num_labels is not None and ctx.settings.num_labels != len(names):
        raise DataError(
            f"model.num_labels is {ctx.settings.num_labels} but data.labels gives {len(names)} classes "
            f"{names}; make them equal"
        )
    return get_task(ctx.settings.task).load_model(
        src.path,
        names,
        trust_remote_code=ctx.settings.trust_remote_code,
        for_training=True,
        where=ctx.step,
        log=ctx.progress.log,
    )

"""``distill_embeddings``: a smaller student learns to reproduce its teacher's sentence embeddings (torch -> torch).

The embedding counterpart of ``distill`` (which matches class logits): the student is cut from the
teacher the same way (``student.layers``, ``intermediate_size``, ``num_attention_heads``) or is any
HF encoder (``student.model``), and is trained so that its pooled embedding of each train text
matches the teacher's, by cosine (``1 - cos``) or mean squared error, as sentence-transformers'
``MSELoss`` distillation does. No labels are used: the teacher's embeddings of the train texts are the
targets, computed once and cached. Early stopping watches the mean cosine to the teacher on train rows
held out of training, never the eval split the report scores.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from optkit.errors import PassError
from optkit.evaluate.predict import torch_logits
from optkit.guards import training_bytes
from optkit.passes.base import Artifact, MemoryDemand, PassConfig, PassContext, Plan
from optkit.passes.distill import DistillConfig, StudentSpec, start
from optkit.passes.heldout import HeldOutBest, loss_means, schedule
from optkit.passes.kd import train_logits
from optkit.passes.options import BatchSize, Epochs, LearningRate, MaxLength, MaxSteps, Seed, WarmupRatio, WeightDecay
from optkit.passes.registry import register_pass
from optkit.passes.training import planned_steps, train_classifier

__all__ = ["DistillEmbeddingsConfig", "distill_embeddings", "embedding_loss"]


class DistillEmbeddingsConfig(PassConfig):
    """Distil a sentence-embedding model into a smaller student that matches its embeddings."""

    kind: Literal["distill_embeddings"] = "distill_embeddings"
    # Embeddings are what it matches; a classifier has class logits instead (use 'distill').
    tasks: ClassVar[frozenset[str] | None] = frozenset({"feature-extraction"})
    student: StudentSpec
    loss: Literal["cosine", "mse"] = Field(
        "cosine", description="'cosine': 1 - cos(student, teacher); 'mse': squared error of the embeddings."
    )
    epochs: Epochs = 2.0
    learning_rate: LearningRate = 1e-4
    batch_size: BatchSize = 32
    max_length: MaxLength = None
    weight_decay: WeightDecay = 0.01
    warmup_ratio: WarmupRatio = 0.1
    max_steps: MaxSteps = None
    validation: float = Field(
        0.1, ge=0, lt=0.5, description="Share of train rows held out for early stopping; 0 turns it off."
    )
    patience: int = Field(1, ge=1, description="Epochs without a better held-out cosine before stopping.")
    seed: Seed = None

    def check(self, where: str, model: dict[str, Any] | None, plan: Plan) -> dict[str, Any] | None:
        """Layers, widths and heads the student keeps must exist in the teacher (as for ``distill``)."""
        return DistillConfig(student=self.student).check(where, model, plan)

    def memory_demands(self, where: str, plan: Plan) -> list[MemoryDemand]:
        dims, seq, bs = plan.dims, self.max_length or plan.max_length, self.batch_size
        need = plan.weights_bytes + training_bytes(dims, bs, seq, plan.weights_bytes)
        return [MemoryDemand(f"{where}.batch_size", f"embedding distillation at batch {bs} x {seq} tokens", need)]


def embedding_loss(student: Any, teacher: Any, kind: str) -> Any:
    """Mean over the batch of ``1 - cos`` or of the squared error summed over dimensions / dims."""
    import torch.nn.functional as F

    teacher = teacher.to(student.device, student.dtype)
    if kind == "cosine":
        return (1 - F.cosine_similarity(student, teacher, dim=-1)).mean()
    return F.mse_loss(student, teacher)


@register_pass(DistillEmbeddingsConfig, version=1, input_format="torch", output_format="torch", uses_data=True)
def distill_embeddings(src: Artifact, config: DistillEmbeddingsConfig, ctx: PassContext) -> Artifact:
    """Train a student on the teacher ``src``'s embeddings of the train texts; writes the student's folder."""
    import torch
    from accelerate import PartialState

    pair = start(src, config, ctx)
    seed, teacher, t_tok, student, s_tok = pair.seed, pair.teacher, pair.t_tok, pair.student, pair.s_tok
    teacher_info, student_info, max_length = pair.teacher_info, pair.student_info, pair.max_length
    texts, labels, train_idx, val_idx = pair.texts, pair.labels, pair.train_idx, pair.val_idx

    teacher.to(PartialState().device).eval()
    targets = train_logits(src, teacher, t_tok, max_length, ctx)  # the teacher's embedding of every train row
    del teacher  # the targets are all the student needs from it
    _check_dims(student, s_tok, targets, ctx.step)
    idx = torch.tensor(train_idx, dtype=torch.long)
    train_targets = targets[idx]

    def loss_fn(model: Any, batch: dict[str, Any]) -> Any:
        inputs = {k: v for k, v in batch.items() if k not in ("idx", "labels")}
        return embedding_loss(model(**inputs).logits, train_targets[batch["idx"].cpu()], config.loss)

    val_texts = [texts[i] for i in val_idx]
    stopper = _held_out_cosine(
        student, s_tok, val_texts, targets[val_idx], max_length, config.patience, ctx.progress.log
    )
    total = planned_steps(len(train_idx), config.batch_size, config.epochs, config.max_steps)
    with ctx.progress.task(f"{ctx.step}: distilling embeddings (seed {seed})", total=total) as advance:
        result = train_classifier(
            student,
            s_tok,
            [texts[i] for i in train_idx],
            [labels[i] for i in train_idx],
            **schedule(config, max_length, seed, advance, digits=4),
            loss_fn=loss_fn,
            on_epoch_end=stopper.on_epoch_end,
        )
    stopper.finish(result.epochs, result.steps)
    student.to("cpu").save_pretrained(ctx.out_dir, safe_serialization=True)
    s_tok.save_pretrained(ctx.out_dir)
    ctx.meta.update(
        teacher=teacher_info,
        student=student_info,
        loss=config.loss,
        steps=result.steps,
        epochs=round(result.epochs, 3),
        final_loss=round(result.final_loss, 6),
        **loss_means(result.losses, 6),
        train_seconds=round(result.seconds, 1),
        train_rows=len(train_idx),
        heldout_rows=len(val_idx),
        heldout_history=stopper.history,
        kept_epoch=stopper.best["epoch"],
        seed=seed,
    )
    ctx.progress.log(
        f"  student: {student_info['layers']} layers, {student_info['params'] / 1e6:.1f}M params (teacher "
        f"{teacher_info['params'] / 1e6:.1f}M); {result.steps} steps in {result.seconds:.0f} s"
    )
    return Artifact(ctx.out_dir, "torch", key="")


def _check_dims(student: Any, tokenizer: Any, targets: Any, step: str) -> None:
    """A student whose embedding has another width cannot match the teacher's (no projection is learnt)."""
    import torch

    sample = tokenizer(["optkit"], return_tensors="pt")
    with torch.inference_mode():
        dim = student.eval()(**dict(sample)).logits.shape[-1]
    student.train()
    if dim != targets.shape[-1]:
        raise PassError(
            f"{step}: the student's embeddings have {dim} dimensions but the teacher's {targets.shape[-1]}; "
            f"cut the student from the teacher (student.layers) or pick a student.model of the same width"
        )


def _held_out_cosine(
    student: Any, tokenizer: Any, texts: list[Any], targets: Any, max_length: int, patience: int, log: Any
) -> HeldOutBest:
    """Early stopping on the mean cosine to the teacher's embeddings of held-out train rows."""

    def cosine() -> float:
        import torch
        import torch.nn.functional as F

        got = torch.from_numpy(torch_logits(student, tokenizer, texts, max_length, 64))
        return float(F.cosine_similarity(got, targets.to(got.dtype), dim=-1).mean())

    return HeldOutBest(
        student,
        cosine,
        len(texts),
        patience,
        log,
        key="heldout_cosine",
        what="held-out cosine to the teacher",
        rows_note="train rows",
        digits=5,
    )

"""``distill``: a smaller student learns from the incoming model, its teacher (torch -> torch).

The student is cut from the teacher (``layers``, ``intermediate_size``, ``num_attention_heads``:
it starts from the teacher's own weights, which is what makes a few epochs on a CPU enough)
or is any HF model given by ``student.model``. The loss mixes KL on temperature-softened logits,
cross-entropy on the labels and, optionally, hidden-state and attention MSE through a layer map.
Early stopping watches accuracy on rows held out of the *train* split, never the eval split
the report scores.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from optkit.errors import PassError, RecipeError
from optkit.evaluate.predict import torch_logits
from optkit.guards import forward_bytes, training_bytes
from optkit.passes import surgery
from optkit.passes.base import Artifact, MemoryDemand, PassConfig, PassContext, Plan
from optkit.passes.finetune import load_for_training
from optkit.passes.heldout import HeldOutBest, loss_means, schedule
from optkit.passes.kd import soft_kl, train_logits
from optkit.passes.options import BatchSize, Epochs, LearningRate, MaxLength, MaxSteps, Seed, WarmupRatio, WeightDecay
from optkit.passes.registry import register_pass
from optkit.passes.training import planned_steps, train_classifier
from optkit.recipe import ModelSpec
from optkit.sources.model import resolve_model
from optkit.structure import describe_model

__all__ = ["DistillConfig", "Start", "StudentSpec", "distill", "make_student", "start"]


class StudentSpec(BaseModel):
    """The student: cut from the teacher, or another HF model."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    layers: list[int] | None = Field(
        None, min_length=1, description="Teacher encoder layers the student keeps, in order (e.g. [0, 2, 4])."
    )
    intermediate_size: int | None = Field(
        None, ge=1, description="Student FFN width; the teacher's strongest neurons (by weight norm) are kept."
    )
    num_attention_heads: int | None = Field(
        None, ge=1, description="Heads per layer the student keeps; the teacher's strongest heads (by weight norm)."
    )
    model: str | None = Field(
        None, description="Any HF model (hub id, local folder or 'package:DIST/path') as the student instead."
    )
    from_config: bool = Field(
        False, description="With 'model': a folder with a config but no weights, built with seeded random weights."
    )

    @model_serializer(mode="wrap")
    def _as_before_unless_from_config(self, handler: Any) -> Any:
        """Without from_config the student dumps as before the field existed: earlier cache keys stay valid."""
        out = handler(self)
        if isinstance(out, dict) and not self.from_config:
            out.pop("from_config", None)
        return out

    @model_validator(mode="after")
    def _one_kind(self) -> StudentSpec:
        cut = [f for f in ("layers", "intermediate_size", "num_attention_heads") if getattr(self, f) is not None]
        if self.model is not None and cut:
            raise ValueError(f"student.model cannot be combined with {', '.join(cut)}; those cut the teacher")
        if self.from_config and self.model is None:
            raise ValueError("student.from_config needs student.model: the folder whose config.json builds the student")
        if self.model is None and not cut:
            raise ValueError(
                "student needs 'layers' (teacher layers to keep, e.g. [0, 2, 4]), 'intermediate_size', "
                "'num_attention_heads', or 'model'"
            )
        return self


class DistillConfig(PassConfig):
    """Knowledge distillation into a smaller student, with early stopping on held-out train rows."""

    kind: Literal["distill"] = "distill"
    # Class logits are what it distils from and ranks by; other heads have no such outputs.
    tasks: ClassVar[frozenset[str] | None] = frozenset({"text-classification", "image-classification"})
    student: StudentSpec
    temperature: float = Field(2.0, gt=0, description="Softmax temperature of the KL term.")
    kd_weight: float = Field(0.5, ge=0, description="Weight of KL(teacher || student) on softened logits.")
    ce_weight: float = Field(0.5, ge=0, description="Weight of cross-entropy on the labels.")
    hidden_weight: float = Field(0.0, ge=0, description="Weight of hidden-state MSE through layer_map.")
    attention_weight: float = Field(0.0, ge=0, description="Weight of attention-probability MSE through layer_map.")
    layer_map: list[int] | None = Field(
        None, description="Teacher layer matched to each student layer; default student.layers or evenly spaced."
    )
    epochs: Epochs = 3.0
    learning_rate: LearningRate = 1e-4
    batch_size: BatchSize = 32
    max_length: MaxLength = None
    weight_decay: WeightDecay = 0.01
    warmup_ratio: WarmupRatio = 0.06
    max_steps: MaxSteps = None
    validation: float = Field(
        0.1, ge=0, lt=0.5, description="Share of train rows held out for early stopping; 0 turns it off."
    )
    patience: int = Field(1, ge=1, description="Epochs without a better held-out accuracy before stopping.")
    seed: Seed = None

    @property
    def trains(self) -> bool:
        return True

    @model_validator(mode="after")
    def _some_loss(self) -> DistillConfig:
        if self.kd_weight + self.ce_weight + self.hidden_weight + self.attention_weight == 0:
            raise ValueError("all loss weights are 0; set kd_weight and/or ce_weight above 0")
        return self

    def check(self, where: str, model: dict[str, Any] | None, plan: Plan) -> dict[str, Any] | None:
        """Layers, widths and heads the student keeps must exist in the teacher it is cut from."""
        spec = self.student
        if spec.model is not None or model is None or not model.get("num_hidden_layers"):
            return None  # another model, or not a BERT-style config: known only once it is loaded
        layers, ffn, heads = (int(model.get(k) or 0) for k in _SHAPE_KEYS)
        asked = {
            "layers": (max(spec.layers or [0]), layers - 1, "layer index"),
            "intermediate_size": (spec.intermediate_size or 0, ffn, "FFN width"),
            "num_attention_heads": (spec.num_attention_heads or 0, heads, "heads per layer"),
        }
        for field, (value, limit, what) in asked.items():
            if value > limit:
                raise RecipeError(
                    f"{where}.student.{field}: {what} {value} does not exist in the teacher "
                    f"(it has {layers} layers, FFN {ffn}, {heads} heads); use at most {limit}"
                )
        student = (len(spec.layers) if spec.layers else layers, spec.intermediate_size or ffn)
        return {**model, **dict(zip(_SHAPE_KEYS, (*student, spec.num_attention_heads or heads), strict=True))}

    def memory_demands(self, where: str, plan: Plan) -> list[MemoryDemand]:
        # The teacher stays loaded beside the student; with hidden/attention losses it also runs
        # forward every step. The student is bounded by the teacher's size (a cut of it).
        dims, seq, bs = plan.dims, self.max_length or plan.max_length, self.batch_size
        need = plan.weights_bytes + training_bytes(dims, bs, seq, plan.weights_bytes)
        if self.hidden_weight or self.attention_weight:
            need += forward_bytes(dims, bs, seq) + dims.layers * 4 * bs * seq * (dims.hidden + dims.heads * seq)
        return [MemoryDemand(f"{where}.batch_size", f"distillation at batch {bs} x {seq} tokens", need)]


_SHAPE_KEYS = ("num_hidden_layers", "intermediate_size", "num_attention_heads")


@register_pass(DistillConfig, version=1, input_format="torch", output_format="torch", uses_data=True)
def distill(src: Artifact, config: DistillConfig, ctx: PassContext) -> Artifact:
    """Train a student on the teacher ``src``'s softened outputs; writes the student's HF folder."""
    import torch
    from accelerate import PartialState

    pair = start(src, config, ctx)
    seed, teacher, t_tok, student, s_tok = pair.seed, pair.teacher, pair.t_tok, pair.student, pair.s_tok
    teacher_info, student_info, max_length = pair.teacher_info, pair.student_info, pair.max_length
    layer_map = _layer_map(config, teacher.config.num_hidden_layers, student.config.num_hidden_layers)
    _check_matchable(config, teacher, student, t_tok, s_tok)

    texts, labels, train_idx, val_idx = pair.texts, pair.labels, pair.train_idx, pair.val_idx
    train_texts, train_labels = [texts[i] for i in train_idx], [labels[i] for i in train_idx]
    val_texts, val_labels = [texts[i] for i in val_idx], [labels[i] for i in val_idx]

    device = PartialState().device
    teacher.to(device).eval()
    t_logits = train_logits(src, teacher, t_tok, max_length, ctx)[torch.tensor(train_idx, dtype=torch.long)]

    loss_fn = _DistillLoss(config, teacher, t_logits, layer_map)
    stopper = HeldOutBest(
        student,
        lambda: _accuracy(student, s_tok, val_texts, val_labels, max_length),
        len(val_texts),
        config.patience,
        ctx.progress.log,
        key="heldout_accuracy",
        what="held-out accuracy",
        rows_note="train rows held out",
        digits=4,
    )
    total = planned_steps(len(train_texts), config.batch_size, config.epochs, config.max_steps)
    with ctx.progress.task(f"{ctx.step}: distilling (seed {seed})", total=total) as advance:
        result = train_classifier(
            student,
            s_tok,
            train_texts,
            train_labels,
            **schedule(config, max_length, seed, advance),
            loss_fn=loss_fn,
            on_epoch_end=stopper.on_epoch_end,
        )
    stopper.finish(result.epochs, result.steps)
    student.to("cpu").save_pretrained(ctx.out_dir, safe_serialization=True)
    s_tok.save_pretrained(ctx.out_dir)
    ctx.meta.update(
        teacher=teacher_info,
        student=student_info,
        layer_map=layer_map,
        steps=result.steps,
        epochs=round(result.epochs, 3),
        final_loss=round(result.final_loss, 4),
        **loss_means(result.losses, 4),
        mean_loss_last_50=round(result.mean_loss_last_50, 4),
        loss_terms={name: _first_last(values) for name, values in loss_fn.terms.items()},
        train_seconds=round(result.seconds, 1),
        train_rows=len(train_texts),
        heldout_rows=len(val_texts),
        heldout_history=stopper.history,
        kept_epoch=stopper.best["epoch"],
        seed=seed,
    )
    ctx.progress.log(
        f"  student: {student_info['layers']} layers, {student_info['heads']} heads, FFN {student_info['ffn']}, "
        f"{student_info['params'] / 1e6:.1f}M params (teacher {teacher_info['params'] / 1e6:.1f}M); "
        f"{result.steps} steps in {result.seconds:.0f} s"
    )
    return Artifact(ctx.out_dir, "torch", key="")


class _DistillLoss:
    """KL on softened logits + CE + optional hidden-state and attention MSE through ``layer_map``.

    Each term is recorded unweighted, per step: what a reader needs to see that the hidden-state
    and attention terms are really in the loss and fall, not just the weighted total.
    """

    def __init__(self, config: DistillConfig, teacher: Any, t_logits: Any, layer_map: list[int]) -> None:
        self.config, self.teacher, self.t_logits, self.layer_map = config, teacher, t_logits, layer_map
        self.terms: dict[str, list[float]] = {}

    def _record(self, name: str, value: Any) -> Any:
        self.terms.setdefault(name, []).append(float(value.detach()))
        return value

    def __call__(self, model: Any, batch: dict[str, Any]) -> Any:
        config = self.config
        idx = batch["idx"]
        inputs = {k: v for k, v in batch.items() if k != "idx"}
        out = model(
            **inputs, output_hidden_states=config.hidden_weight > 0, output_attentions=config.attention_weight > 0
        )
        loss = config.ce_weight * self._record("ce", out.loss) if config.ce_weight else 0.0
        if config.kd_weight:
            kd = soft_kl(out.logits, self.t_logits[idx.cpu()], config.temperature)
            loss = loss + config.kd_weight * self._record("kd", kd)
        if config.hidden_weight > 0 or config.attention_weight > 0:
            loss = loss + self._state_terms(inputs, out)
        return loss

    def _state_terms(self, inputs: dict[str, Any], out: Any) -> Any:
        """Hidden-state MSE (over real tokens) and attention MSE, each the mean over the mapped layers."""
        import torch
        import torch.nn.functional as F

        config = self.config
        with torch.no_grad():
            t_out = self.teacher(
                **{k: v for k, v in inputs.items() if k != "labels"},
                output_hidden_states=config.hidden_weight > 0,
                output_attentions=config.attention_weight > 0,
            )
        attention_mask = inputs.get("attention_mask")  # images have none: every patch is real
        if attention_mask is None:
            attention_mask = torch.ones(out.hidden_states[0].shape[:2], device=out.logits.device)
        mask = attention_mask.unsqueeze(-1).to(out.logits.dtype)
        hidden, attention = [], []
        for s_layer, t_layer in enumerate(self.layer_map):
            if config.hidden_weight:
                diff = (out.hidden_states[s_layer + 1] - t_out.hidden_states[t_layer + 1]) ** 2 * mask
                hidden.append(diff.sum() / (mask.sum() * diff.shape[-1]))
            if config.attention_weight:
                attention.append(F.mse_loss(out.attentions[s_layer], t_out.attentions[t_layer]))
        loss = 0.0
        if hidden:
            loss = loss + config.hidden_weight * self._record("hidden", sum(hidden) / len(self.layer_map))
        if attention:
            loss = loss + config.attention_weight * self._record("attention", sum(attention) / len(self.layer_map))
        return loss


@dataclass
class Start:
    """What both distillation passes begin with: the seed, teacher and student, and the held-out split."""

    seed: int
    teacher: Any
    t_tok: Any
    student: Any
    s_tok: Any
    teacher_info: dict[str, Any]
    student_info: dict[str, Any]
    max_length: int
    texts: list[Any]
    labels: list[Any]
    train_idx: list[int]
    val_idx: list[int]


def start(src: Artifact, config: Any, ctx: PassContext) -> Start:
    """Seed, then load the teacher and cut (or load) the student: seeding first makes a new head reproducible.

    ``config`` is a DistillConfig or another pass config with the same ``student``, ``max_length``,
    ``validation`` and ``seed`` fields (distill_embeddings).
    """
    from accelerate.utils import set_seed

    splits = ctx.splits()
    seed = ctx.settings.seed if config.seed is None else config.seed
    set_seed(seed)
    teacher, t_tok = load_for_training(src, splits.label_names, ctx)
    student, s_tok = _make_student(teacher, t_tok, config, splits.label_names, ctx)
    texts, labels = splits.train.texts, splits.train.labels
    train_idx, val_idx = _hold_out(len(texts), config.validation, seed)
    return Start(
        seed,
        teacher,
        t_tok,
        student,
        s_tok,
        describe_model(teacher),
        describe_model(student),
        config.max_length or ctx.settings.max_length,
        texts,
        labels,
        train_idx,
        val_idx,
    )


def _make_student(
    teacher: Any, t_tok: Any, config: DistillConfig, label_names: list[str], ctx: PassContext
) -> tuple[Any, Any]:
    spec = config.student
    if spec.model is not None:
        trust = ctx.settings.trust_remote_code
        source = resolve_model(ModelSpec(source=spec.model, trust_remote_code=trust, from_config=spec.from_config))
        return load_for_training(source, label_names, ctx)
    student = copy.deepcopy(teacher)
    if spec.layers is not None:
        surgery.keep_layers(student, spec.layers)
    if spec.num_attention_heads is not None or spec.intermediate_size is not None:
        head_score, ffn_score = surgery.magnitude_importance(student)
        if spec.num_attention_heads is not None:
            drop = {}
            for i, scores in enumerate(head_score):
                live = surgery.live_heads(student, i)
                if spec.num_attention_heads > len(live):
                    raise PassError(
                        f"{ctx.step}: student.num_attention_heads {spec.num_attention_heads} exceeds the "
                        f"{len(live)} heads of teacher layer {i}"
                    )
                order = scores.argsort().tolist()  # weakest first
                drop[i] = [live[j] for j in order[: len(live) - spec.num_attention_heads]]
            surgery.remove_heads(student, drop)
        if spec.intermediate_size is not None:
            width = surgery.ffn_width(student)
            if spec.intermediate_size > width:
                raise PassError(
                    f"{ctx.step}: student.intermediate_size {spec.intermediate_size} exceeds the teacher's {width}"
                )
            keep = {i: s.argsort(descending=True)[: spec.intermediate_size] for i, s in enumerate(ffn_score)}
            surgery.shrink_ffn(student, keep)
    return student, t_tok


# Public for passes that cut a student the same way and train it with another loss (distill_embeddings).
make_student = _make_student


def _layer_map(config: DistillConfig, teacher_layers: int, student_layers: int) -> list[int]:
    if config.layer_map is not None:
        lm = list(config.layer_map)
    elif config.student.layers is not None:
        lm = list(config.student.layers)
    else:
        lm = [round((i + 1) * teacher_layers / student_layers) - 1 for i in range(student_layers)]
    if len(lm) != student_layers or not all(0 <= t < teacher_layers for t in lm):
        raise PassError(
            f"layer_map {lm} must name one teacher layer (0..{teacher_layers - 1}) for each of the "
            f"student's {student_layers} layers"
        )
    return lm


def _check_matchable(config: DistillConfig, teacher: Any, student: Any, t_tok: Any, s_tok: Any) -> None:
    """Hidden and attention MSE compare tensors position by position: shapes and tokens must line up."""
    if not (config.hidden_weight or config.attention_weight):
        return
    if s_tok is not t_tok and s_tok.get_vocab() != t_tok.get_vocab():
        raise PassError(
            "hidden_weight/attention_weight need the student to share the teacher's tokenizer; this student has "
            "another vocabulary. Use kd_weight/ce_weight only, or cut the student from the teacher"
        )
    if config.hidden_weight and student.config.hidden_size != teacher.config.hidden_size:
        raise PassError(
            f"hidden_weight needs equal hidden sizes (student {student.config.hidden_size}, teacher "
            f"{teacher.config.hidden_size}); set hidden_weight: 0"
        )
    if config.attention_weight:
        s_heads, t_heads = surgery.head_counts(student), surgery.head_counts(teacher)
        lm = _layer_map(config, len(t_heads), len(s_heads))
        if any(s_heads[i] != t_heads[t] for i, t in enumerate(lm)):
            raise PassError(
                f"attention_weight needs equal head counts in matched layers (student {s_heads}, teacher "
                f"{t_heads}); set attention_weight: 0"
            )


def _first_last(values: list[float], n: int = 10) -> dict[str, float]:
    """Mean of an unweighted loss term over the first and the last ``n`` steps."""
    first, last = values[:n], values[-n:]
    return {"first_10": round(sum(first) / len(first), 6), "last_10": round(sum(last) / len(last), 6)}


def _hold_out(n: int, share: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded random ``share`` of train rows for early stopping; the rest train."""
    k = int(n * share)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return sorted(order[k:]), sorted(order[:k])


def _accuracy(model: Any, tok: Any, texts: list[str], labels: list[int], max_length: int) -> float:
    """Held-out accuracy for early stopping, on whatever device the model sits."""
    preds = torch_logits(model, tok, texts, max_length, 64).argmax(-1)
    return sum(int(p == y) for p, y in zip(preds.tolist(), labels, strict=True)) / len(texts)

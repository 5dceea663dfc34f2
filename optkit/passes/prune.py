"""``prune``: structured removal, unstructured magnitude or N:M masks (torch -> torch).

Only structured pruning (whole heads, FFN neurons, layers) makes a dense runtime faster,
because only it shrinks the matrices. Unstructured and N:M pruning leave the shapes alone and
write real zeros; ONNX Runtime's CPU kernels are dense, so those variants are reported with
their measured sparsity and latency, and a note that no speed-up is expected.

Recovery training (optionally distilling from the unpruned input) can follow, and
``iterations`` > 1 prunes gradually: a share of the target, recover, re-score, repeat.
"""

from __future__ import annotations

import random
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from optkit.errors import PassError, RecipeError
from optkit.guards import training_bytes
from optkit.passes import surgery
from optkit.passes.base import Artifact, MemoryDemand, PassConfig, PassContext, Plan
from optkit.passes.finetune import load_for_training
from optkit.passes.kd import soft_kl, train_logits
from optkit.passes.options import BatchSize, LearningRate, MaxLength, Seed, WarmupRatio, WeightDecay
from optkit.passes.registry import register_pass
from optkit.passes.training import planned_steps, train_classifier
from optkit.structure import describe_model

__all__ = ["PruneConfig", "prune"]

_ONLY = {
    "structured": {"heads", "ffn", "drop_layers", "importance", "importance_batches"},
    "unstructured": {"sparsity", "scope"},
    "nm": {"n", "m"},
}


class PruneConfig(PassConfig):
    """What to remove, how to rank it, and how to recover afterwards."""

    kind: Literal["prune"] = "prune"
    # Class logits are what it distils from and ranks by; other heads have no such outputs.
    tasks: ClassVar[frozenset[str] | None] = frozenset({"text-classification", "image-classification"})
    method: Literal["structured", "unstructured", "nm"] = Field(
        "structured", description="structured: remove heads/neurons/layers; unstructured: zero weights; nm: N:M."
    )
    heads: float = Field(0.0, ge=0, lt=1, description="structured: share of attention heads removed, ranked globally.")
    ffn: float = Field(0.0, ge=0, lt=1, description="structured: share of FFN neurons removed in every layer.")
    drop_layers: list[int] = Field(default_factory=list, description="structured: encoder layers removed whole.")
    importance: Literal["gradient", "magnitude"] = Field(
        "gradient", description="structured: rank by |dLoss/dmask| on train rows (Michel et al.) or weight norm."
    )
    importance_batches: int = Field(16, ge=1, description="structured: train batches used for gradient importance.")
    sparsity: float = Field(0.5, gt=0, lt=1, description="unstructured: share of encoder weights set to zero.")
    scope: Literal["global", "layer"] = Field(
        "global", description="unstructured: rank weights across the whole encoder, or within each matrix."
    )
    n: int = Field(2, ge=1, description="nm: weights kept in every group of m.")
    m: int = Field(4, ge=2, description="nm: group size along each row's input dimension.")
    iterations: int = Field(1, ge=1, le=20, description="Prune in this many equal steps, recovering after each.")
    recovery_epochs: float = Field(0.0, ge=0, le=100, description="Training after pruning (0: none), in epochs.")
    recovery_learning_rate: LearningRate = 5e-5
    recovery_batch_size: BatchSize = 32
    recovery_weight_decay: WeightDecay = 0.01
    recovery_warmup_ratio: WarmupRatio = 0.06
    recovery_distill: bool = Field(
        True, description="Recover by distilling from the unpruned input (KL + CE) rather than CE alone."
    )
    temperature: float = Field(2.0, gt=0, description="Temperature of the recovery distillation.")
    max_length: MaxLength = None
    seed: Seed = None

    @property
    def trains(self) -> bool:
        """Recovery training runs the shared loop; pruning alone (and gradient importance) does not."""
        return self.recovery_epochs > 0

    @model_validator(mode="after")
    def _fits_method(self) -> PruneConfig:
        other = set().union(*(v for k, v in _ONLY.items() if k != self.method))
        stray = sorted(self.model_fields_set & other)
        if stray:
            raise ValueError(f"{', '.join(stray)} do(es) not apply to method {self.method!r}")
        if self.method == "structured" and not (self.heads or self.ffn or self.drop_layers):
            raise ValueError("method 'structured' removes nothing; set heads, ffn and/or drop_layers")
        if self.method == "nm":
            if self.n >= self.m:
                raise ValueError(f"n ({self.n}) must be smaller than m ({self.m}), e.g. n: 2, m: 4")
            if self.iterations > 1:
                raise ValueError("an N:M pattern is applied at once; set iterations: 1")
        return self

    def check(self, where: str, model: dict[str, Any] | None, plan: Plan) -> dict[str, Any] | None:
        """Layers named in drop_layers must exist, and one must be left."""
        if model is None or not self.drop_layers or not model.get("num_hidden_layers"):
            return model
        layers = int(model["num_hidden_layers"])
        bad = [x for x in self.drop_layers if not 0 <= x < layers]
        if bad or len(set(self.drop_layers)) >= layers:
            raise RecipeError(
                f"{where}.drop_layers: {list(self.drop_layers)} must name distinct layers in 0..{layers - 1} "
                f"and leave at least one"
            )
        return {**model, "num_hidden_layers": layers - len(set(self.drop_layers))}

    def memory_demands(self, where: str, plan: Plan) -> list[MemoryDemand]:
        if not self.recovery_epochs and (self.method, self.importance) != ("structured", "gradient"):
            return []
        seq, bs = self.max_length or plan.max_length, self.recovery_batch_size
        need = training_bytes(plan.dims, bs, seq, plan.weights_bytes)
        # gradient importance and recovery both run backward
        what = f"pruning's backward passes at batch {bs} x {seq} tokens"
        return [MemoryDemand(f"{where}.recovery_batch_size", what, need)]


@register_pass(PruneConfig, version=1, input_format="torch", output_format="torch", uses_data=True)
def prune(src: Artifact, config: PruneConfig, ctx: PassContext) -> Artifact:
    """Prune ``src`` and save a plain HF folder whose config describes the new shapes."""
    from accelerate.utils import set_seed

    splits = ctx.splits()
    seed = ctx.settings.seed if config.seed is None else config.seed
    set_seed(seed)
    model, tok = load_for_training(src, splits.label_names, ctx)
    before = describe_model(model)
    max_length = config.max_length or ctx.settings.max_length
    recover = _recovery(src, model, tok, config, ctx, seed, max_length) if config.recovery_epochs else None

    if config.method == "structured" and config.drop_layers:
        n = len(surgery.encoder_layers(model))
        surgery.keep_layers(model, [i for i in range(n) if i not in set(config.drop_layers)])
        ctx.progress.log(f"  dropped encoder layers {sorted(config.drop_layers)}")
    removed_heads: dict[int, list[int]] = {}
    start = {"heads": sum(surgery.head_counts(model)), "ffn": surgery.ffn_width(model)}  # gradual targets
    history = []
    for it in range(1, config.iterations + 1):
        share = it / config.iterations
        if config.method == "structured":
            _structured_step(model, tok, config, share, start, removed_heads, ctx, seed + it, max_length)
        elif config.method == "unstructured":
            surgery.make_permanent(model)  # zeros of earlier iterations are the smallest weights: they stay
            surgery.mask_unstructured(model, config.sparsity * share, config.scope)
        else:
            surgery.mask_nm(model, config.n, config.m)
        if recover is not None:
            history.append(recover(it))
    surgery.make_permanent(model)
    after = describe_model(model)

    model.save_pretrained(ctx.out_dir, safe_serialization=True)
    tok.save_pretrained(ctx.out_dir)
    if config.method == "nm":
        _check_nm(model, config.n, config.m)
    ctx.meta.update(
        method=config.method,
        before=before,
        after=after,
        removed_heads={str(k): sorted(v) for k, v in removed_heads.items()},
        encoder_params_removed=1 - after["encoder_params"] / before["encoder_params"],
        recovery=history,
        seed=seed,
    )
    msg = (
        f"  encoder params {before['encoder_params'] / 1e6:.2f}M -> {after['encoder_params'] / 1e6:.2f}M "
        f"({ctx.meta['encoder_params_removed']:.1%} fewer); layers {after['layers']}, heads {after['heads']}, "
        f"FFN {after['ffn']}; zeros in encoder weights {after['encoder_weight_sparsity']:.1%}"
    )
    ctx.progress.log(msg)
    return Artifact(ctx.out_dir, "torch", key="")


def _structured_step(
    model: Any,
    tok: Any,
    config: PruneConfig,
    share: float,
    start: dict[str, int],
    removed: dict[int, list[int]],
    ctx: PassContext,
    seed: int,
    max_length: int,
) -> None:
    """Re-score what is left and remove up to ``share`` of the final target of heads and FFN neurons."""

    if not (config.heads or config.ffn):
        return
    if config.importance == "gradient":
        batches = _importance_batches(tok, ctx, config, seed, max_length)
        with ctx.progress.task(f"{ctx.step}: importance on {len(batches)} batches", total=1) as adv:
            head_score, ffn_score = surgery.gradient_importance(model, batches)
            adv(1)
    else:
        head_score, ffn_score = surgery.magnitude_importance(model)

    if config.heads:
        n_layers = len(surgery.encoder_layers(model))
        target = round(start["heads"] * config.heads * share) - sum(len(v) for v in removed.values())
        ranked = sorted(
            (float(head_score[i][j]), i, h) for i in range(n_layers) for j, h in enumerate(surgery.live_heads(model, i))
        )
        drop: dict[int, list[int]] = {}
        left = {i: len(surgery.live_heads(model, i)) for i in range(n_layers)}
        for _, i, h in ranked:
            if target <= 0:
                break
            if left[i] > 1:  # every layer keeps at least one head
                drop.setdefault(i, []).append(h)
                left[i] -= 1
                target -= 1
        surgery.remove_heads(model, drop)
        for i, hs in drop.items():
            removed.setdefault(i, []).extend(hs)
    if config.ffn:
        keep_n = max(1, round(start["ffn"] * (1 - config.ffn * share)))
        if keep_n < surgery.ffn_width(model):
            surgery.shrink_ffn(model, {i: s.argsort(descending=True)[:keep_n] for i, s in enumerate(ffn_score)})


def _importance_batches(
    tok: Any, ctx: PassContext, config: PruneConfig, seed: int, max_length: int
) -> list[dict[str, Any]]:
    import torch

    train = ctx.splits().train
    n = min(len(train), config.importance_batches * config.recovery_batch_size)
    rows = random.Random(seed).sample(range(len(train)), n)
    out = []
    for start in range(0, n, config.recovery_batch_size):
        idx = rows[start : start + config.recovery_batch_size]
        enc = tok(
            [train.texts[i] for i in idx], truncation=True, max_length=max_length, padding=True, return_tensors="pt"
        )
        enc["labels"] = torch.tensor([train.labels[i] for i in idx])
        out.append(dict(enc))
    return out


def _recovery(
    src: Artifact, model: Any, tok: Any, config: PruneConfig, ctx: PassContext, seed: int, max_length: int
) -> Any:
    """A closure that trains ``model`` for its share of ``recovery_epochs``; teacher logits are taken now,
    from the unpruned model, before any pruning."""
    from accelerate import PartialState

    train = ctx.splits().train
    t_logits = None
    if config.recovery_distill:
        model.to(PartialState().device)  # recovery trains there anyway; the logits come faster
        t_logits = train_logits(src, model, tok, max_length, ctx)  # from the unpruned model

    def loss_fn(m: Any, batch: dict[str, Any]) -> Any:
        out = m(**{k: v for k, v in batch.items() if k != "idx"})
        if t_logits is None:
            return out.loss
        return 0.5 * out.loss + 0.5 * soft_kl(out.logits, t_logits[batch["idx"].cpu()], config.temperature)

    def recover(iteration: int) -> dict[str, Any]:
        epochs = config.recovery_epochs / config.iterations
        total = planned_steps(len(train), config.recovery_batch_size, epochs, None)
        label = f"{ctx.step}: recovery {iteration}/{config.iterations}"
        with ctx.progress.task(label, total=total) as advance:
            res = train_classifier(
                model,
                tok,
                train.texts,
                train.labels,
                epochs=epochs,
                learning_rate=config.recovery_learning_rate,
                batch_size=config.recovery_batch_size,
                max_length=max_length,
                weight_decay=config.recovery_weight_decay,
                warmup_ratio=config.recovery_warmup_ratio,
                seed=seed + iteration,
                on_step=lambda step, total, loss: advance(1, info=f"loss {loss:.3f}"),
                loss_fn=loss_fn,
            )
        return {
            "iteration": iteration,
            "steps": res.steps,
            "mean_loss_last_50": round(res.mean_loss_last_50, 4),
            "seconds": round(res.seconds, 1),
        }

    return recover


def _check_nm(model: Any, n: int, m: int) -> None:
    """Belt and braces: every group of m weights holds at most n non-zeros after recovery and saving."""

    for name, lin in surgery.prunable_linears(model):
        nz = (lin.weight.detach().reshape(-1, m) != 0).sum(1)
        if int(nz.max()) > n:
            raise PassError(f"{name}: a group of {m} holds {int(nz.max())} non-zeros after N:M pruning (max {n})")

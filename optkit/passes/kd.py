"""Knowledge-distillation pieces shared by ``distill`` and pruning recovery."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from optkit.cache import cache_key
from optkit.evaluate.predict import torch_logits

if TYPE_CHECKING:
    from optkit.passes.base import Artifact, PassContext

__all__ = ["soft_kl", "teacher_logits", "train_logits"]


def train_logits(src: Artifact, model: Any, tok: Any, max_length: int, ctx: PassContext) -> Any:
    """The teacher ``src``'s logits on every train row, shared through the workspace cache.

    Distillation and every pruning recovery from the same model need the same numbers; on a
    2-core CPU each pass over the train split costs minutes, so it is paid once per model and
    data, keyed by the artifact's content key (never by path).
    """
    import torch

    splits = ctx.splits()
    name = (
        "teacher-logits-"
        + cache_key({"model": src.key, "data": splits.fingerprint, "max_length": max_length})[:32]
        + ".json"
    )
    texts = splits.train.texts
    cached = ctx.cache.read_json(name) if ctx.cache is not None and src.key else None
    if isinstance(cached, list) and len(cached) == len(texts):
        ctx.progress.log(f"  teacher logits: reused ({len(texts)} train rows)")
        return torch.tensor(cached, dtype=torch.float32)
    with ctx.progress.task(f"{ctx.step}: teacher logits on {len(texts)} train rows", total=len(texts)) as adv:
        out = teacher_logits(model, tok, texts, max_length, adv)
    if ctx.cache is not None and src.key and ctx.main_process:
        ctx.cache.write_json(name, out.tolist())
    return out


def teacher_logits(model: Any, tok: Any, texts: list[str], max_length: int, advance: Callable[[int], Any]) -> Any:
    """The teacher's logits for every row, computed once rather than every epoch, batched by length."""
    import torch

    return torch.from_numpy(torch_logits(model, tok, texts, max_length, 64, advance, by_length=True))


def soft_kl(student_logits: Any, teacher_logits: Any, temperature: float) -> Any:
    """KL(teacher || student) on temperature-softened distributions, scaled by T² (Hinton et al., 2015)
    so that its gradients keep their size as the temperature changes."""
    import torch.nn.functional as F

    soft_t = F.softmax(teacher_logits.to(student_logits.device) / temperature, -1)
    kl = F.kl_div(F.log_softmax(student_logits / temperature, -1), soft_t, reduction="batchmean")
    return kl * temperature**2

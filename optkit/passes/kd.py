"""Knowledge-distillation pieces shared by ``distill`` and pruning recovery."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

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

    from optkit.cache import cache_key

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
    if ctx.cache is not None and src.key:
        ctx.cache.write_json(name, out.tolist())
    return out


def teacher_logits(model: Any, tok: Any, texts: list[str], max_length: int, advance: Callable[[int], Any]) -> Any:
    """The teacher's logits for every row, computed once rather than every epoch, batched by length.

    Padding does not change a BERT-style model's logits (the attention mask hides it), so
    rows can be grouped by length here and looked up by index during training.
    """
    import torch

    lengths = [len(x) for x in tok(texts, truncation=True, max_length=max_length)["input_ids"]]
    order = sorted(range(len(texts)), key=lengths.__getitem__)
    out = torch.empty(len(texts), model.config.num_labels)
    device = next(model.parameters()).device  # wherever the caller put the teacher (a GPU if there is one)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), 64):
            idx = order[start : start + 64]
            enc = tok(
                [texts[i] for i in idx], truncation=True, max_length=max_length, padding=True, return_tensors="pt"
            ).to(device)
            out[idx] = model(**enc).logits.float().cpu()
            advance(len(idx))
    return out


def soft_kl(student_logits: Any, teacher_logits: Any, temperature: float) -> Any:
    """KL(teacher || student) on temperature-softened distributions, scaled by T² (Hinton et al., 2015)
    so that its gradients keep their size as the temperature changes."""
    import torch.nn.functional as F

    soft_t = F.softmax(teacher_logits.to(student_logits.device) / temperature, -1)
    kl = F.kl_div(F.log_softmax(student_logits / temperature, -1), soft_t, reduction="batchmean")
    return kl * temperature**2

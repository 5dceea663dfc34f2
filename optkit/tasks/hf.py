"""Loading and checking Hugging Face models, the same way for every task.

Each task loads its own ``AutoModelFor...`` class, but the steps around it are shared: refusing a
model without the task's head, reading the head's label names, silencing the "newly initialized"
warning that is expected before fine-tuning, naming a load failure by stage, demanding a fast
tokenizer where offsets are needed, and padding pre-tokenised training features into a batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from optkit.errors import EvaluationError, OptkitError, PassError

if TYPE_CHECKING:
    from optkit.recipe import Recipe

__all__ = [
    "head_names",
    "label_maps",
    "load_error",
    "need_fast_tokenizer",
    "pad_rows",
    "quiet_transformers",
    "require_head",
]


def require_head(recipe: Recipe, config: dict[str, Any], suffix: str, kind: str, head_pass: str) -> None:
    """Refuse a model whose ``architectures`` has no ``...{suffix}`` class when nothing trains one."""
    archs = config.get("architectures") or []
    if not any(a.endswith(suffix) for a in archs):
        raise PassError(
            f"model.source {recipe.model.source!r} has no {kind} head (architectures: {archs}) "
            f"and the baseline has no step that trains one; add '- {head_pass}: {{}}' to the baseline"
        )


def head_names(config: dict[str, Any]) -> list[str]:
    """The head's label names in id order, from a config.json's ``id2label`` (keys are strings there)."""
    id2label = config.get("id2label") or {}
    return [str(id2label[k]) for k in sorted(id2label, key=int)]


def label_maps(names: Sequence[str]) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments for a head of ``len(names)`` outputs named ``names``."""
    id2label = dict(enumerate(names))
    return {"num_labels": len(names), "id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}


def load_error(for_training: bool) -> type[OptkitError]:
    """A model that fails to load while a pass trains it is a PassError; while evaluating, an EvaluationError."""
    return PassError if for_training else EvaluationError


@contextmanager
def quiet_transformers(quiet: bool = True) -> Iterator[None]:
    """Silence transformers' warnings (a "newly initialized" head is expected before fine-tuning), then restore."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    if quiet:
        hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)


def need_fast_tokenizer(tokenizer: Any, where: str, why: str) -> None:
    """Refuse a slow (Python) tokenizer where offsets or word ids are needed; ``why`` says what for."""
    if not getattr(tokenizer, "is_fast", False):
        raise EvaluationError(
            f"{where}: {why}; {type(tokenizer).__name__} is not one (save the model with its tokenizer.json)"
        )


def pad_rows(enc: Any, keys: Sequence[str], idx: list[int], pad: int) -> dict[str, Any]:
    """Rows ``idx`` of a list-of-lists encoding as tensors padded to the longest (``pad`` for input ids, 0 else),
    with ``idx`` itself: the start of a structured task's training batch."""
    import torch

    width = max(len(enc["input_ids"][i]) for i in idx)
    batch = {
        k: torch.tensor([enc[k][i] + [pad if k == "input_ids" else 0] * (width - len(enc[k][i])) for i in idx])
        for k in keys
    }
    batch["idx"] = torch.tensor(idx, dtype=torch.long)
    return batch

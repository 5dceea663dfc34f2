"""Transforms a torch model folder asks for when it is loaded: the hook behind non-HF torch variants.

A pass whose output cannot be written as a plain Hugging Face checkpoint (a model quantised by
neural-compressor, whose int8 layers have no ``from_pretrained`` form) writes the float checkpoint
plus ``optkit-transform.json`` naming a transform it registered here; every loader of torch
variants (accuracy, latency, memory) calls ``finish_loading`` after ``from_pretrained``. Folders
without the file load unchanged, so every existing variant behaves as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optkit.errors import EvaluationError

__all__ = ["TRANSFORM_FILE", "finish_loading", "register_transform"]

TRANSFORM_FILE = "optkit-transform.json"
_TRANSFORMS: dict[str, Callable[[Any, dict[str, Any]], Any]] = {}


def register_transform(name: str, fn: Callable[[Any, dict[str, Any]], Any]) -> None:
    _TRANSFORMS[name] = fn


def finish_loading(path: Path, model: Any) -> Any:
    """``model`` as the folder at ``path`` means it: transformed if the folder names a transform."""
    spec_file = Path(path) / TRANSFORM_FILE
    if not spec_file.is_file():
        return model
    spec = json.loads(spec_file.read_text(encoding="utf-8"))
    from optkit.passes.registry import list_passes

    list_passes()  # importing the passes registers their transforms
    fn = _TRANSFORMS.get(spec.get("transform", ""))
    if fn is None:
        raise EvaluationError(
            f"{str(spec_file)!r} names the load transform {spec.get('transform')!r}, which no installed pass "
            f"provides (known: {', '.join(sorted(_TRANSFORMS)) or 'none'}); install the package that built it"
        )
    try:
        return fn(model, dict(spec.get("options", {}))).eval()
    except ImportError as e:
        raise EvaluationError(
            f"{str(path)!r} needs {e.name or e} to load (transform {spec['transform']!r}); install the optkit "
            f"extra that provides it"
        ) from None

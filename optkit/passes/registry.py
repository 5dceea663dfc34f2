"""Pass registry: kind name -> (config class, function, formats, version)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from optkit.errors import RecipeError
from optkit.passes.base import Artifact, ArtifactFormat, PassConfig, PassContext

__all__ = ["PassSpec", "get_pass", "list_passes", "register_pass"]

PassFn = Callable[[Artifact, PassConfig, PassContext], Artifact]


@dataclass(frozen=True)
class PassSpec:
    kind: str
    config_cls: type[PassConfig]
    fn: PassFn
    version: int
    input_format: ArtifactFormat
    output_format: ArtifactFormat
    uses_data: bool  # if true, the data fingerprint is part of the cache key


_REGISTRY: dict[str, PassSpec] = {}


def register_pass(
    config_cls: type[PassConfig],
    *,
    version: int,
    input_format: ArtifactFormat,
    output_format: ArtifactFormat,
    uses_data: bool,
) -> Callable[[PassFn], PassFn]:
    """Register a pass under its config's ``kind``; bump ``version`` whenever its output changes."""
    kind = config_cls.model_fields["kind"].default

    def decorate(fn: PassFn) -> PassFn:
        if kind in _REGISTRY:
            raise ValueError(f"pass kind {kind!r} is registered twice")
        _REGISTRY[kind] = PassSpec(kind, config_cls, fn, version, input_format, output_format, uses_data)
        return fn

    return decorate


def get_pass(kind: str) -> PassSpec:
    _load_builtin_passes()
    try:
        return _REGISTRY[kind]
    except KeyError:
        close = difflib.get_close_matches(kind, _REGISTRY, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise RecipeError(f"unknown pass {kind!r}.{hint} Known passes: {', '.join(sorted(_REGISTRY))}.") from None


def list_passes() -> dict[str, PassSpec]:
    _load_builtin_passes()
    return dict(_REGISTRY)


def _load_builtin_passes() -> None:
    # Importing the modules registers them; they import torch/onnx only inside functions.
    from optkit.passes import distill, finetune, onnx_export, ort_quantize, prune  # noqa: F401

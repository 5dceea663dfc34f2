"""Pass catalogue: kind name -> (config class, function, formats, version).

Built-in passes register when their modules are imported. A pass from another package registers
through the entry-point group ``optkit.passes`` (the entry point names a module that calls
``register_pass`` on import, or a function without arguments that does), or by calling
``register_pass`` itself before the recipe is read. The recipe schema asks the catalogue on first
use, so a pass registered late is validated like a built-in one.
"""

from __future__ import annotations

import difflib
import importlib.metadata as md
import inspect
from collections.abc import Callable
from dataclasses import dataclass

from optkit.errors import PassError, RecipeError
from optkit.passes.base import Artifact, ArtifactFormat, PassConfig, PassContext

__all__ = ["ENTRY_POINT_GROUP", "PassSpec", "catalogue_generation", "get_pass", "list_passes", "register_pass"]

ENTRY_POINT_GROUP = "optkit.passes"

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
_STATE = {"generation": 0, "plugins_loaded": False}


def register_pass(
    config_cls: type[PassConfig],
    *,
    version: int,
    input_format: ArtifactFormat,
    output_format: ArtifactFormat,
    uses_data: bool,
) -> Callable[[PassFn], PassFn]:
    """Register a pass under its config's ``kind``; bump ``version`` whenever its output changes.

    Example (a pass defined outside optkit):
        >>> @register_pass(MyConfig, version=1, input_format="onnx", output_format="onnx", uses_data=False)
        ... def my_pass(src, config, ctx): ...  # doctest: +SKIP
    """
    kind = config_cls.model_fields["kind"].default
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"{config_cls.__name__}.kind needs a default, the pass's name: kind: Literal['x'] = 'x'")

    def decorate(fn: PassFn) -> PassFn:
        if kind in _REGISTRY:
            raise ValueError(f"pass kind {kind!r} is registered twice")
        _REGISTRY[kind] = PassSpec(kind, config_cls, fn, version, input_format, output_format, uses_data)
        _STATE["generation"] += 1
        return fn

    return decorate


def get_pass(kind: str) -> PassSpec:
    _load_passes()
    try:
        return _REGISTRY[kind]
    except KeyError:
        close = difflib.get_close_matches(kind, _REGISTRY, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise RecipeError(f"unknown pass {kind!r}.{hint} Known passes: {', '.join(sorted(_REGISTRY))}.") from None


def list_passes() -> dict[str, PassSpec]:
    _load_passes()
    return dict(_REGISTRY)


def catalogue_generation() -> int:
    """Changes whenever a pass is registered, so a schema built from the catalogue knows to rebuild."""
    _load_passes()
    return int(_STATE["generation"])


def _load_passes() -> None:
    # Importing the modules registers them; they import torch/onnx only inside functions.
    from optkit.passes import (  # noqa: F401
        distill,
        embed_distill,
        finetune,
        inc_quantize,
        onnx_export,
        ort_optimize,
        ort_quantize,
        prune,
        tune,
    )

    if _STATE["plugins_loaded"]:
        return
    _STATE["plugins_loaded"] = True
    for entry in md.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()  # a module registers on import; a callable registers when called
            if callable(loaded) and not isinstance(loaded, type) and _takes_no_arguments(loaded):
                loaded()
        except Exception as e:
            raise PassError(
                f"the pass plugin {entry.name!r} ({entry.value}, entry point group {ENTRY_POINT_GROUP!r}) failed to "
                f"load: {type(e).__name__}: {e}; fix or uninstall the package that provides it"
            ) from e


def _takes_no_arguments(fn: Callable[..., object]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)

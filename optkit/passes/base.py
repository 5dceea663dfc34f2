"""What every pass shares: its config base, the artifact it maps, and the context it runs in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from optkit.progress import Progress, SilentProgress

if TYPE_CHECKING:
    from optkit.cache import ArtifactCache
    from optkit.recipe import Recipe
    from optkit.sources.data import Splits

__all__ = ["Artifact", "ArtifactFormat", "PassConfig", "PassContext"]

ArtifactFormat = Literal["torch", "onnx"]

ONNX_FILE = "model.onnx"


class PassConfig(BaseModel):
    """Base of every pass config: frozen, and a typo in YAML fails naming the field."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str


@dataclass(frozen=True)
class Artifact:
    """A model on disk: an HF torch folder, or a folder holding ``model.onnx`` plus tokenizer files.

    ``key`` identifies the content (source fingerprint or cache key), so that anything
    derived from it can be cached by key alone.
    """

    path: Path
    format: ArtifactFormat
    key: str
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def onnx_file(self) -> Path:
        return self.path / ONNX_FILE


@dataclass
class PassContext:
    """Everything a pass may read besides its input artifact; it writes only under ``out_dir``."""

    out_dir: Path
    step: str  # "variant[index] kind", for messages
    recipe: Recipe
    splits: Callable[[], Splits]  # loaded lazily: export and dynamic quantisation need no data
    progress: Progress = field(default_factory=SilentProgress)
    meta: dict[str, Any] = field(default_factory=dict)  # what the pass measured; stored in meta.json
    cache: ArtifactCache | None = None  # for derived data worth sharing between passes (teacher logits)

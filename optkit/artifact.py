"""An artifact: a model on disk that a pass reads or writes, and the key that names its content."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["ONNX_FILE", "Artifact", "ArtifactFormat"]

ArtifactFormat = Literal["torch", "onnx"]

ONNX_FILE = "model.onnx"


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

"""Resource guards: refuse a recipe the machine cannot hold, with an estimate, before work starts.

The estimates are deliberately simple upper-ish bounds from the model's config (hidden size,
layers, FFN width, heads) and the token counts involved; they exist to turn "the machine
swapped for an hour, then the OOM killer struck" into a one-line refusal that says what to lower.
The figure that matters most is static calibration: ONNX Runtime's calibrators keep every
calibration batch's intermediate outputs in memory until the end, so memory grows with rows.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optkit.errors import ResourceError

__all__ = [
    "MEMORY_SHARE",
    "ModelDims",
    "available_memory",
    "calibration_bytes",
    "check_disk",
    "check_memory",
    "forward_bytes",
    "human_bytes",
    "training_bytes",
    "weights_bytes",
]

MEMORY_SHARE = 0.8  # refuse above this share of the memory available now: the OS and the rest need room
_DISK_MARGIN = 64 * 2**20
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".onnx", ".data", ".onnx_data")


@dataclass(frozen=True)
class ModelDims:
    hidden: int
    layers: int
    intermediate: int
    heads: int

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelDims:
        """BERT-style names first, then DistilBERT / T5-style ones; sensible fallbacks for the rest."""

        def first(*names: str, default: int) -> int:
            for n in names:
                if isinstance(config.get(n), int) and config[n] > 0:
                    return int(config[n])
            return default

        hidden = first("hidden_size", "dim", "d_model", default=768)
        return cls(
            hidden=hidden,
            layers=first("num_hidden_layers", "n_layers", "num_layers", default=12),
            intermediate=first("intermediate_size", "hidden_dim", "d_ff", default=4 * hidden),
            heads=first("num_attention_heads", "n_heads", "num_heads", default=max(1, hidden // 64)),
        )


def available_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def weights_bytes(folder: Path) -> int:
    """Bytes of weight files in an artifact folder (the figure artifacts derived from it scale with)."""
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file() and f.name.endswith(_WEIGHT_SUFFIXES))


def forward_bytes(dims: ModelDims, batch: int, seq: int) -> int:
    """Inference activations of one forward pass: the widest layer's tensors plus attention scores."""
    return 4 * batch * seq * (4 * dims.hidden + dims.intermediate) + 8 * batch * dims.heads * seq * seq


def training_bytes(dims: ModelDims, batch: int, seq: int, weights: int) -> int:
    """Weights, gradients and two AdamW moments, plus every layer's activations kept for backward."""
    per_layer = 4 * batch * seq * (8 * dims.hidden + 2 * dims.intermediate) + 12 * batch * dims.heads * seq * seq
    return 4 * weights + dims.layers * per_layer


def calibration_bytes(dims: ModelDims, texts: Sequence[str], max_length: int, batch: int) -> int:
    """What ONNX Runtime's calibrator holds after the last batch: the MatMul inputs and outputs of every batch.

    Per token and layer: Q, K, V, output projections (in + out), the two attention MatMuls (their
    score inputs grow with the padded length), and the two FFN MatMuls. Token counts are estimated
    from word counts (1.5 tokens per word, plus [CLS] and [SEP]), each batch padded to its longest row.
    """
    total = 0
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        # a text pair (data.text_pair) counts both texts' words and one more [SEP]
        length = max(min(max_length, _tokens_estimate(t)) for t in chunk)
        per_token = 14 * dims.hidden + 2 * dims.intermediate + 2 * dims.heads * length
        total += 4 * dims.layers * len(chunk) * length * per_token
    return total


def _tokens_estimate(text: str | tuple[str, ...]) -> int:
    """1.5 tokens per word plus [CLS] and [SEP] (and a second [SEP] for a pair)."""
    if isinstance(text, tuple):
        return int(len(" ".join(text).split()) * 1.5) + 3
    return int(len(text.split()) * 1.5) + 2


def check_memory(demands: Sequence[tuple[str, str, int]], available: int | None = None) -> None:
    """Refuse the first demand ``(field, what, bytes)`` above ``MEMORY_SHARE`` of available memory."""
    available = available_memory() if available is None else available
    budget = int(available * MEMORY_SHARE)
    for field, what, need in demands:
        if need > budget:
            raise ResourceError(
                f"{field}: {what} needs about {human_bytes(need)} of memory, but {human_bytes(available)} is "
                f"available (optkit uses at most {MEMORY_SHARE:.0%} of it); lower it, or run where more memory is free"
            )


def check_disk(folder: Path, need: int, what: str) -> None:
    """Refuse to start writing ``what`` when ``folder``'s file system has less than ``need`` (+64 MB) free."""
    free = shutil.disk_usage(folder).free
    if need + _DISK_MARGIN > free:
        raise ResourceError(
            f"{what}: needs about {human_bytes(need + _DISK_MARGIN)} of disk space in {str(folder)!r}, "
            f"but only {human_bytes(free)} is free; free some space or use a workspace on another disk"
        )


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover

"""Synthetic inputs for a model brought without a tokenizer or data: right names, dtypes and shapes.

Token values do not change a transformer's latency or memory, only the tensor shapes do; ids are
drawn from a fixed seed so every timing of the same file sees the same input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["image_size_near", "synthetic_feed", "vocab_size_near"]

_NUMPY = {
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(bool)": "bool",
}


def vocab_size_near(model_file: Path, default: int = 1000) -> int:
    """``vocab_size`` from a ``config.json`` beside the ONNX file (HF export layout), else ``default``."""
    config = Path(model_file).parent / "config.json"
    try:
        return int(json.loads(config.read_text()).get("vocab_size", default))
    except (OSError, ValueError, TypeError):
        return default


def image_size_near(model_file: Path) -> tuple[int, int, int] | None:
    """(channels, height, width) of an image model from the ``config.json`` and ``preprocessor_config.json``
    beside its file (HF export layout), or None for a model that does not take images."""
    from optkit.tasks.image_classification import model_image_size

    folder = Path(model_file) if Path(model_file).is_dir() else Path(model_file).parent
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or "num_channels" not in config:
        return None
    try:
        processor = json.loads((folder / "preprocessor_config.json").read_text())
    except (OSError, ValueError):
        processor = {}
    return model_image_size(config, processor if isinstance(processor, dict) else {})


def synthetic_feed(
    session: Any,
    batch: int,
    seq: int,
    vocab: int = 1000,
    seed: int = 0,
    image: tuple[int, int, int] | None = None,
) -> dict[str, Any]:
    """One input per session input: ids in ``[min(1000, vocab//2), vocab)``, masks of ones, type ids of zeros,
    standard-normal floats (pixels: their values do not change a vision model's cost either).

    Symbolic dimensions are filled in order: the first with ``batch``, the second with ``seq``,
    any further one with ``seq`` as well (e.g. a square attention mask). A 4-D float input (an
    image's pixel_values) has its channel, height and width from ``image`` instead.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    feed = {}
    for inp in session.get_inputs():
        dtype = _NUMPY.get(inp.type)
        if dtype is None:
            raise ValueError(f"input {inp.name!r} has type {inp.type}, which bench cannot synthesise")
        pixels = image is not None and len(inp.shape) == 4 and dtype.startswith("float")
        symbolic = iter([batch, *image]) if pixels and image is not None else iter([batch, seq])
        shape = [d if isinstance(d, int) and d > 0 else next(symbolic, seq) for d in inp.shape]
        name = inp.name.lower()
        if dtype.startswith("int"):
            if "mask" in name:
                feed[inp.name] = np.ones(shape, dtype=dtype)
            elif "type" in name or "segment" in name or "position" in name:
                feed[inp.name] = np.zeros(shape, dtype=dtype)
            else:
                feed[inp.name] = rng.integers(min(1000, vocab // 2), vocab, size=shape).astype(dtype)
        elif dtype == "bool":
            feed[inp.name] = np.ones(shape, dtype=bool)
        else:
            feed[inp.name] = rng.standard_normal(shape).astype(dtype)
    return feed

"""Checks on a model folder before anything loads it: no links out of its root, weights readable.

A model folder is data from elsewhere. A symlink inside it could make optkit read (and hash into
a cache key, or copy into an artifact) a file the recipe's author never meant to share, so every
file must resolve inside the folder's root. Weights must be safetensors whose header matches
the file's size (a truncated download is caught here, with its name, instead of deep inside a
library), or PyTorch files that load with ``torch.load(weights_only=True)``: optkit never
unpickles arbitrary objects.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from optkit.errors import ModelSourceError

__all__ = ["check_contained", "check_weights"]

_MAX_HEADER = 100 * 2**20  # safetensors caps its JSON header at 100 MB


def check_contained(folder: Path, root: Path, source: str) -> None:
    """Every file under ``folder`` must resolve (through ``..`` and links) to a path inside ``root``."""
    root = root.resolve()
    for p in sorted(folder.rglob("*")):
        target = p.resolve()
        if target != root and root not in target.parents:
            raise ModelSourceError(
                f"model.source {source!r}: {p.relative_to(folder).as_posix()!r} points to {str(target)!r}, "
                f"outside the model folder {str(root)!r}; optkit reads only files inside it. Copy the file "
                f"into the folder instead of linking to it"
            )


def check_weights(folder: Path, source: str) -> str:
    """Check the weight files; returns their format: 'safetensors' or 'pytorch (weights_only)'."""
    safetensors = sorted(folder.glob("*.safetensors"))
    for f in safetensors:
        _check_safetensors(f, source)
    if safetensors:
        return "safetensors"
    for f in sorted(folder.glob("*.bin")):
        _check_torch_file(f, source)
    return "pytorch (weights_only)"


def _check_safetensors(path: Path, source: str) -> None:
    size = path.stat().st_size
    problem = None
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
            (n,) = struct.unpack("<Q", head) if len(head) == 8 else (None,)
            if n is None or n > min(_MAX_HEADER, size - 8):
                problem = "its header is cut off or not a safetensors header"
            else:
                header = json.loads(fh.read(n))
                ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
                need = 8 + n + max(ends, default=0)
                if need > size:
                    problem = f"its header lists {need} bytes of tensors but the file has {size}"
    except (ValueError, KeyError, TypeError, IndexError, struct.error) as e:
        problem = f"its header is not valid ({type(e).__name__})"
    if problem:
        raise ModelSourceError(
            f"model.source {source!r}: weights file {path.name!r} is truncated or corrupt: {problem}. "
            f"Download or copy the model again"
        )


def _check_torch_file(path: Path, source: str) -> None:
    import zipfile

    import torch

    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as e:  # UnpicklingError for code-carrying pickles, RuntimeError for damaged zips
        raise ModelSourceError(
            f"model.source {source!r}: {path.name!r} cannot be loaded as plain tensors "
            f"(torch.load weights_only=True: {type(e).__name__}: {str(e).splitlines()[0][:200]}). optkit never "
            f"unpickles arbitrary objects; convert the weights to safetensors with a tool you trust"
        ) from None

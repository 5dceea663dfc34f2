"""The report's JSON Schemas (one file per schema_version, shipped in the package) and validation."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

__all__ = ["load_schema", "validate_report"]

_FILES = {1: "report-v1.schema.json", 2: "report-v2.schema.json", 3: "report.schema.json"}


@functools.cache
def load_schema(version: int) -> dict[str, Any]:
    """The JSON Schema of one report version."""
    if version not in _FILES:
        raise KeyError(f"no schema for report version {version!r}; known: {sorted(_FILES)}")
    return json.loads(resources.files("optkit.reports").joinpath(_FILES[version]).read_text(encoding="utf-8"))


def validate_report(report: dict[str, Any]) -> list[str]:
    """Every schema violation as ``path: message`` (empty when valid), against the report's own version."""
    import jsonschema

    version = report.get("schema_version")
    if version not in _FILES:
        return [f"schema_version: unknown version {version!r}"]
    validator = jsonschema.Draft202012Validator(load_schema(version))
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<top>'}: {e.message[:300]}"
        for e in sorted(validator.iter_errors(report), key=lambda e: list(map(str, e.absolute_path)))
    ]

"""The report as types: what every report.json holds, checked when it is written and when it is read.

One ``REPORT_SCHEMA_VERSION`` for ``run`` and ``bench``. A report is built as a plain dict by the
code that measured it, then passes through ``Report`` (field types, required parts) and the shipped
JSON Schema before any file is written, so a report that a later ``compare`` would refuse is never
written in the first place. Task metrics are open (``extra="allow"``): each task names its own.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from optkit.errors import OptkitError
from optkit.reports.schema import validate_report

__all__ = ["REPORT_SCHEMA_VERSION", "Report", "ReportError", "check_report"]

# 2: latency CIs and samples, provider placement, graph census per variant, 'kind' (see report.schema.json)
# 3: paired intervals of each variant's change, McNemar p, per-class metrics, changed rows, eval predictions
REPORT_SCHEMA_VERSION = 3

_OPEN = ConfigDict(extra="allow")


class ReportError(OptkitError):
    """A report that does not match its schema: refused rather than written or compared."""


class Variant(BaseModel):
    model_config = _OPEN
    format: Literal["torch", "onnx"]
    runtime: Literal["pytorch", "onnxruntime"]
    size_bytes: int = Field(ge=0)
    agreement_with_baseline: float | None = Field(None, ge=0, le=1)
    size_ratio: float | None = None
    chain: list[dict[str, Any]] | None = None


class Result(BaseModel):
    model_config = _OPEN
    variant: str
    provider: str
    batch: int = Field(ge=1)
    seq: int = Field(ge=1)  # tokens; for an image shape height x width
    height: int | None = Field(None, ge=1)  # image shapes only
    width: int | None = Field(None, ge=1)
    status: str
    latency: dict[str, Any] | None = None
    speedup_vs_reference: float | None = None
    provider_options: dict[str, str] | None = None  # what the provider's sessions got (recipe + table defaults)


class Gate(BaseModel):
    model_config = _OPEN
    variant: str
    passed: bool
    message: str


class Report(BaseModel):
    model_config = _OPEN
    schema_version: int
    kind: Literal["recipe", "bench"] = "recipe"  # schema 1 had only recipe reports, and no kind
    finished: str
    environment: dict[str, Any]
    threads: int = Field(ge=1)
    reference: str
    variants: dict[str, Variant]
    results: list[Result]
    traffic: list[dict[str, Any]] | None = None  # latency on real traffic, when the recipe asks for it
    notes: list[str] = Field(default_factory=list)
    gates: list[Gate] = Field(default_factory=list)
    task: dict[str, Any] | None = None


def check_report(report: dict[str, Any], where: str) -> Report:
    """``report`` as a ``Report``, after its types and the JSON Schema of its version both accept it."""
    try:
        typed = Report.model_validate(report)
    except ValidationError as e:
        first = e.errors()[0]
        place = ".".join(map(str, first["loc"])) or "<top>"
        raise ReportError(f"{where}: not a valid optkit report: {place}: {first['msg']}") from None
    problems = validate_report(report)
    if problems:
        raise ReportError(f"{where}: does not match report schema {report.get('schema_version')}: {problems[0]}")
    return typed

"""The README's recipe reference must name every recipe and pass option, so docs cannot drift."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from optkit import recipe as schema
from optkit.passes.distill import DistillConfig, StudentSpec
from optkit.passes.embed_distill import DistillEmbeddingsConfig
from optkit.passes.finetune import FinetuneConfig
from optkit.passes.inc_quantize import IncQuantizeConfig
from optkit.passes.onnx_export import ExportConfig
from optkit.passes.ort_optimize import OptimizeConfig
from optkit.passes.ort_quantize import QuantizeConfig
from optkit.passes.prune import PruneConfig
from optkit.passes.tune import TuneConfig, TuneLatency

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()

MODELS = [
    schema.Recipe,
    schema.ModelSpec,
    schema.DataSpec,
    schema.Splits,
    schema.EvaluateSpec,
    schema.LatencySpec,
    schema.TrafficShape,
    schema.GateSpec,
    schema.CompareSpec,
    schema.ReportSpec,
    FinetuneConfig,
    ExportConfig,
    OptimizeConfig,
    QuantizeConfig,
    PruneConfig,
    DistillConfig,
    StudentSpec,
    TuneConfig,
    TuneLatency,
    IncQuantizeConfig,
    DistillEmbeddingsConfig,
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_field_is_documented(model: type[BaseModel]) -> None:
    forms = ("`{}`", ".{}`", "`{}.")  # `name`, `parent.name`, or `name.child` for nested sections
    missing = [f for f in model.model_fields if f != "kind" and not any(x.format(f) in README for x in forms)]
    assert not missing, f"README does not document {model.__name__} fields {missing}"

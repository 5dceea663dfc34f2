from __future__ import annotations

from pathlib import Path

import pytest

from optkit.errors import PassError
from optkit.passes.base import Artifact
from optkit.passes.onnx_export import ExportConfig, export
from tests.conftest import context


def test_export_matches_pytorch_and_has_dynamic_axes(exported: Artifact) -> None:
    import onnx

    check = exported.meta["validation"]
    assert check["samples"] == 60  # the whole eval split (validation_samples=64 > 60 rows)
    assert check["max_abs_diff"] < 1e-4 and check["agreement"] == 1.0
    model = onnx.load(str(exported.onnx_file))
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert dims == {n: ["batch", "sequence"] for n in ("input_ids", "attention_mask", "token_type_ids")}
    assert [o.name for o in model.graph.output] == ["logits"]
    assert (exported.path / "tokenizer.json").is_file() and (exported.path / "config.json").is_file()


def test_exported_model_runs_at_other_batch_and_sequence_sizes(exported: Artifact) -> None:
    import numpy as np

    from optkit.evaluate.predict import create_session

    session = create_session(exported.onnx_file)
    for batch, seq in [(1, 5), (7, 33)]:
        ids = np.ones((batch, seq), dtype=np.int64)
        out = session.run(None, {"input_ids": ids, "attention_mask": ids, "token_type_ids": 0 * ids})[0]
        assert out.shape == (batch, 2)


def test_validation_is_a_gate_not_a_warning(base_recipe: dict, finetuned: Artifact, tmp_path: Path) -> None:
    ctx = context(base_recipe, tmp_path / "strict")
    with pytest.raises(PassError, match=r"does not match PyTorch: max \|logit diff\| .* \(allowed 1e-12\)"):
        export(finetuned, ExportConfig(atol=1e-12), ctx)


def test_optimum_backend_exports_an_equivalent_model(base_recipe: dict, finetuned: Artifact, tmp_path: Path) -> None:
    ctx = context(base_recipe, tmp_path / "optimum")
    export(finetuned, ExportConfig(backend="optimum"), ctx)
    assert (ctx.out_dir / "model.onnx").is_file()
    assert ctx.meta["validation"]["max_abs_diff"] < 1e-4

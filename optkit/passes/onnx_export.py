"""``export``: torch folder -> ONNX, validated against PyTorch as a gate (torch -> onnx)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from optkit.errors import PassError
from optkit.evaluate.predict import create_session, onnx_forward, onnx_logits, torch_forward, torch_logits
from optkit.passes.base import ONNX_FILE, Artifact, PassConfig, PassContext
from optkit.passes.registry import register_pass
from optkit.tasks import Task, get_task

__all__ = ["ExportConfig", "export", "validate_export"]


class ExportConfig(PassConfig):
    """Export with dynamic batch and sequence axes, then check logits against PyTorch."""

    kind: Literal["export"] = "export"
    backend: Literal["torch", "optimum"] = Field(
        "torch",
        description="'torch': torch.onnx.export (TorchScript path), works on any in-memory model. "
        "'optimum': optimum-onnx's main_export with its model-specific ONNX configs.",
    )
    opset: int = Field(17, ge=14, le=23, description="ONNX opset.")
    atol: float = Field(1e-4, gt=0, description="Largest allowed |logit difference| vs PyTorch on the eval slice.")
    min_agreement: float = Field(
        1.0, ge=0, le=1, description="Smallest allowed share of equal argmax predictions vs PyTorch."
    )
    validation_samples: int = Field(64, ge=1, description="Eval rows used for the check.")


@register_pass(ExportConfig, version=1, input_format="torch", output_format="onnx", uses_data=True)
def export(src: Artifact, config: ExportConfig, ctx: PassContext) -> Artifact:
    """Export ``src`` to ``ctx.out_dir/model.onnx``; fail the step if validation is out of tolerance."""
    trust = ctx.settings.trust_remote_code
    task = get_task(ctx.settings.task)
    model, tokenizer = task.load_model(src.path, [], trust_remote_code=trust, for_training=False, where=ctx.step)
    target = ctx.out_dir / ONNX_FILE
    try:
        if config.backend == "optimum":
            _export_optimum(src.path, ctx.out_dir, config.opset, trust, task.export_name)
        elif (example := task.export_example(model, tokenizer)) is not None:
            _export_example(model, example, target, config.opset)
        else:
            _export_torch(model, tokenizer, target, config.opset, task.output_names, per_token=task.structured)
    except PassError:
        raise
    except Exception as e:
        raise PassError(f"{ctx.step}: export with backend {config.backend!r} failed: {type(e).__name__}: {e}") from e
    tokenizer.save_pretrained(ctx.out_dir)
    model.config.save_pretrained(ctx.out_dir)

    rows = ctx.splits().eval.inputs[: config.validation_samples]
    check = validate_export(model, tokenizer, target, rows, ctx.settings.max_length, task)
    ctx.meta["validation"] = check
    enforce_match(
        check,
        ctx,
        what="exported",
        against="PyTorch",
        atol=config.atol,
        min_agreement=config.min_agreement,
        fix="Try another opset or backend, or loosen export.atol if the difference is acceptable",
        log_against=False,
    )
    return Artifact(ctx.out_dir, "onnx", key="")


def enforce_match(
    check: dict[str, Any],
    ctx: PassContext,
    *,
    what: str,
    against: str,
    atol: float,
    min_agreement: float,
    fix: str,
    log_against: bool = True,
) -> None:
    """Log a validation ``check`` and refuse a graph whose outputs drift past ``atol`` or agree too rarely.

    Shared by the passes that rewrite a graph (export, ORT optimisation): ``what`` the model is, what it
    was compared ``against``, and the ``fix`` to suggest, so each refusal says which step to change.
    """
    where = f"against {against} " if log_against else ""
    ctx.progress.log(
        f"  validated {where}on {check['samples']} eval rows: max |logit diff| {check['max_abs_diff']:.2e} "
        f"(atol {atol:g}), agreement {check['agreement']:.4f}"
    )
    if check["max_abs_diff"] > atol or check["agreement"] < min_agreement:
        raise PassError(
            f"{ctx.step}: the {what} model does not match {against}: max |logit diff| "
            f"{check['max_abs_diff']:.3e} (allowed {atol:g}), agreement {check['agreement']:.4f} "
            f"(required {min_agreement:g}). {fix}"
        )


def validate_export(
    model: Any, tokenizer: Any, onnx_path: Path, texts: list[Any], max_length: int, task: Task
) -> dict[str, Any]:
    """Compare PyTorch and ONNX Runtime outputs on ``texts``: the export gate's two numbers, the largest
    difference and how often the two agree on the task's prediction."""
    import numpy as np

    session = create_session(onnx_path)
    if task.structured:  # per-token or start/end logits, and the task's own predictions from them
        ref = task.infer(torch_forward(model), tokenizer, texts, max_length, 16)
        got = task.infer(onnx_forward(session), tokenizer, texts, max_length, 16)
        agreement = task.agreement(task.predictions(got), task.predictions(ref)) if len(texts) else 1.0
        return {"samples": len(texts), "max_abs_diff": task.output_diff(ref, got), "agreement": agreement}
    ref = torch_logits(model, tokenizer, texts, max_length, batch_size=16)
    got = onnx_logits(session, tokenizer, texts, max_length, batch_size=16)
    if len(texts) and ref.shape != got.shape:
        raise PassError(
            f"the exported model's output has shape {tuple(got.shape)} but PyTorch's {tuple(ref.shape)} on the same "
            f"{len(texts)} rows; for task {task.name!r} export with backend 'torch', which exports what optkit "
            f"evaluates (e.g. the pooled sentence embedding)"
        )
    diff = float(np.abs(ref - got).max()) if len(texts) else 0.0
    agreement = task.agreement(task.predictions(got), task.predictions(ref)) if len(texts) else 1.0
    return {"samples": len(texts), "max_abs_diff": diff, "agreement": agreement}


class _LogitsOnly:
    """Wrap a model so the graph has named inputs in a fixed order and the task's outputs ('logits', or
    'start_logits' and 'end_logits')."""

    def __new__(cls, model: Any, with_token_types: bool, outputs: tuple[str, ...] = ("logits",)) -> Any:
        import torch

        class Wrapper(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask, token_type_ids=None):  # type: ignore[no-untyped-def]
                kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
                if with_token_types:
                    kwargs["token_type_ids"] = token_type_ids
                out = self.model(**kwargs)
                # a task may give its one output its own name (sentence_embedding) for what the model calls logits
                picked = tuple(getattr(out, n) if hasattr(out, n) else out.logits for n in outputs)
                return picked if len(picked) > 1 else picked[0]

        return Wrapper().eval()


def _export_torch(
    model: Any,
    tokenizer: Any,
    target: Path,
    opset: int,
    outputs: tuple[str, ...] = ("logits",),
    *,
    per_token: bool = False,
) -> None:
    import inspect
    import warnings

    import torch

    accepts_types = "token_type_ids" in inspect.signature(model.forward).parameters
    sample = tokenizer(["optkit export sample", "a second, longer sample sentence"], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if accepts_types else [])
    args = tuple(sample[n] if n in sample else torch.zeros_like(sample["input_ids"]) for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    for name in outputs:  # per-token outputs (tags, start/end logits) vary with the sequence too
        axes[name] = {0: "batch", 1: "sequence"} if per_token else {0: "batch"}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # TracerWarnings about python-side shape checks are expected
        torch.onnx.export(
            _LogitsOnly(model, accepts_types, outputs),
            args,
            str(target),
            input_names=names,
            output_names=list(outputs),
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,  # the TorchScript path matches PyTorch to ~5e-8 and needs no onnxscript
        )


def _export_example(
    model: Any, example: tuple[list[str], tuple[Any, ...], dict[str, Any]], target: Path, opset: int
) -> None:
    """Export with the task's own input names, example tensors and dynamic axes (pixel_values for images)."""
    import warnings

    import torch

    names, args, axes = example

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            return self.model(**dict(zip(names, inputs, strict=True))).logits

    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # TracerWarnings about python-side shape checks are expected
        torch.onnx.export(
            Wrapper().eval(),
            args,
            str(target),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )


def _export_optimum(src: Path, out_dir: Path, opset: int, trust_remote_code: bool, task: str) -> None:
    from optimum.exporters.onnx import main_export

    main_export(
        model_name_or_path=str(src),
        output=out_dir,
        task=task,
        opset=opset,
        do_validation=False,  # optkit validates itself, as a gate, on real eval rows
        trust_remote_code=trust_remote_code,
        library_name="transformers",
    )
    if not (out_dir / ONNX_FILE).is_file():
        raise PassError(f"optimum's main_export wrote no {ONNX_FILE} in {str(out_dir)!r}")

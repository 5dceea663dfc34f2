"""``optimize``: ONNX Runtime's transformer graph fusion (onnx -> onnx), validated against PyTorch.

Fuses the attention block into one ``Attention`` node, residual Add + LayerNorm into
``SkipLayerNormalization``, bias + GELU into ``BiasGelu`` and the embeddings into
``EmbedLayerNormalization``, with ``onnxruntime.transformers.optimizer.optimize_model`` at
``opt_level=0``: only the fusions, none of the session's provider-specific rewrites, so the file
stays portable across providers (an optimised graph saved at level 99 for one provider can break
on another). On the CPU provider a fused fp32 file is about as fast as the plain one, because the
session applies the same fusions when it loads the plain one (DESIGN.md); the point of fusing on
CPU is what ``quantize`` makes of it (``QAttention``, ``QEmbedLayerNormalization``). ``float16``
halves the weights for GPU providers; the CPU provider has few fp16 kernels.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from optkit.errors import PassError, RecipeError
from optkit.passes.base import ONNX_FILE, Artifact, PassConfig, PassContext, Plan
from optkit.passes.onnx_export import enforce_match
from optkit.passes.registry import register_pass
from optkit.provider_names import ort_provider_name

__all__ = ["FUSED_OPS", "OptimizeConfig", "optimize", "optimize_onnx", "ort_model_type"]

# HF config.model_type -> the ORT optimizer's model type (the table Optimum's ORTConfigManager keeps,
# encoder models only: decoders need past-key-value handling this pass does not do).
_ORT_MODEL_TYPES = {
    "albert": "bert",
    "bert": "bert",
    "big_bird": "bert",
    "camembert": "bert",
    "deberta": "bert",
    "deberta-v2": "bert",
    "distilbert": "bert",
    "electra": "bert",
    "modernbert": "bert",
    "mpnet": "bert",
    "nystromformer": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "vit": "vit",
    "dinov2": "vit",
    "swin": "swin",
}
# The fused op types worth counting: what each fusion produces.
FUSED_OPS = (
    "Attention",
    "MultiHeadAttention",
    "SkipLayerNormalization",
    "LayerNormalization",
    "EmbedLayerNormalization",
    "BiasGelu",
    "Gelu",
    "FastGelu",
)
_DEFAULT_ATOL = {False: 1e-3, True: 5e-2}  # fp32 fusion reorders sums; fp16 keeps ~3 significant digits


class OptimizeConfig(PassConfig):
    """Transformer graph fusion with ONNX Runtime, then the same PyTorch check as export."""

    kind: Literal["optimize"] = "optimize"
    model_type: Literal["bert", "vit", "swin"] | None = Field(
        None, description="ORT optimizer model type. Default: from config.json's model_type (bert for BERT-likes)."
    )
    num_heads: int | None = Field(
        None, ge=0, description="Attention heads. Default: config.json's num_attention_heads; 0: detect from graph."
    )
    hidden_size: int | None = Field(
        None, ge=0, description="Hidden size. Default: config.json's hidden_size; 0: detect from the graph."
    )
    attention: bool = Field(True, description="Fuse self-attention into Attention nodes (QAttention after quantize).")
    skip_layer_norm: bool = Field(True, description="Fuse residual Add + LayerNorm into SkipLayerNormalization.")
    embed_layer_norm: bool = Field(True, description="Fuse the embeddings + LayerNorm into EmbedLayerNormalization.")
    bias_gelu: bool = Field(True, description="Fuse bias Add + GELU into BiasGelu.")
    float16: bool = Field(
        False,
        description="Convert weights and compute to fp16 (inputs and outputs stay as they were). For GPU "
        "providers (cuda, tensorrt); on the CPU provider most ops have no fp16 kernel and it runs slower.",
    )
    atol: float | None = Field(
        None, gt=0, description="Largest allowed |logit difference| vs PyTorch. Default 1e-3, or 5e-2 with float16."
    )
    min_agreement: float = Field(
        1.0, ge=0, le=1, description="Smallest allowed share of equal argmax predictions vs PyTorch."
    )
    validation_samples: int = Field(64, ge=1, description="Eval rows used for the check.")

    @property
    def tolerance(self) -> float:
        """The |logit difference| allowed: the option, else the default for the precision."""
        return self.atol if self.atol is not None else _DEFAULT_ATOL[self.float16]

    def check(self, where: str, model: dict[str, Any] | None, plan: Plan) -> dict[str, Any] | None:
        if self.model_type is None and model is not None:
            ort_model_type(model.get("model_type"), where)  # an unsupported model fails now, not after the build
        return model

    def report_notes(self, variant: str, report: dict[str, Any]) -> list[str]:
        """fp16 on the CPU provider, and a fused fp32 file that is no faster, said plainly."""
        notes = []
        quantized = any(s.get("kind") == "quantize" for s in report["variants"][variant].get("chain", []))
        for r in report["results"]:
            if r["variant"] != variant or r["status"] != "measured" or ort_provider_name(r["provider"]) != _CPU:
                continue
            speedup = r.get("speedup_vs_reference")
            where = f"{variant} at {r['provider']} b{r['batch']}×s{r['seq']}"
            if self.float16:
                shown = f"{speedup:.2f}×" if speedup else "unknown"
                notes.append(
                    f"{where}: float16 on the CPU provider ({shown} vs {report['reference']}): ONNX Runtime's CPU "
                    f"kernels are mostly fp32, so the session adds Cast nodes around them; float16 is meant for "
                    f"cuda or tensorrt. Reported as measured."
                )
            elif not quantized and speedup is not None and speedup < 1.05:
                notes.append(
                    f"{where}: the fused fp32 graph is {speedup:.2f}× {report['reference']}: the CPU session "
                    f"already fuses the plain graph when it loads it. Fusion pays on CPU as the input to quantize "
                    f"(QAttention), and on GPU providers."
                )
        return notes


_CPU = "CPUExecutionProvider"


def ort_model_type(hf_model_type: str | None, where: str) -> str:
    """The ORT optimizer's model type for an HF ``model_type``; a clear error for models it cannot fuse."""
    found = _ORT_MODEL_TYPES.get(str(hf_model_type))
    if found is None:
        raise RecipeError(
            f"{where}: ONNX Runtime's transformer optimizer has no fusions for model_type {hf_model_type!r} "
            f"(known: {', '.join(sorted(_ORT_MODEL_TYPES))}); set {where}.model_type (bert, vit or swin) if the "
            f"graph is BERT-like, or remove the optimize step"
        )
    return found


@register_pass(OptimizeConfig, version=1, input_format="onnx", output_format="onnx", uses_data=True)
def optimize(src: Artifact, config: OptimizeConfig, ctx: PassContext) -> Artifact:
    """Fuse ``src/model.onnx`` into ``ctx.out_dir``; fail the step if it no longer matches PyTorch."""
    model_config = _read_config(src.path)
    target = ctx.out_dir / ONNX_FILE
    try:
        fused = optimize_onnx(src.onnx_file, target, config, model_config, where=ctx.step)
    except (PassError, RecipeError):
        raise
    except Exception as e:
        raise PassError(f"{ctx.step}: ONNX Runtime's transformer optimizer failed: {type(e).__name__}: {e}") from e
    _copy_side_files(src, ctx.out_dir)
    ctx.meta.update(fused)
    counts = ", ".join(f"{op} {n}" for op, n in fused["fused_ops"].items() if n) or "nothing fused"
    ctx.progress.log(f"  fused: {counts}")
    if config.float16:
        ctx.progress.log("  float16: meant for GPU providers; the CPU provider runs fp16 graphs slowly")
    ctx.meta["validation"] = check = _validate(src, target, config, ctx)
    enforce_match(
        check,
        ctx,
        what="optimised",
        against=check["against"],
        atol=config.tolerance,
        min_agreement=config.min_agreement,
        fix="Turn off the fusion that changed it (attention, skip_layer_norm, embed_layer_norm, bias_gelu) "
        "or loosen optimize.atol if the difference is acceptable",
    )
    return Artifact(ctx.out_dir, "onnx", key="")


def optimize_onnx(
    source: Path, target: Path, config: OptimizeConfig, model_config: dict[str, Any], *, where: str = "optimize"
) -> dict[str, Any]:
    """Fuse ``source`` into ``target`` (no validation); returns the fused-op counts and the settings used.

    The entry point for a search that wants fusion on or off without a pass context (``tune``).
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.onnx_model import OnnxModel
    from onnxruntime.transformers.optimizer import optimize_model

    model_type = config.model_type or ort_model_type(model_config.get("model_type"), where)
    heads, hidden = _heads_and_hidden(config, model_config)
    options = FusionOptions(model_type)
    options.enable_attention = config.attention
    options.enable_skip_layer_norm = config.skip_layer_norm
    options.enable_embed_layer_norm = config.embed_layer_norm
    options.enable_bias_gelu = config.bias_gelu
    quiet = logging.getLogger("onnxruntime.transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its per-fusion INFO lines would flood the console
    try:
        model = optimize_model(
            str(source),
            model_type=model_type,
            num_heads=heads,
            hidden_size=hidden,
            optimization_options=options,
            opt_level=0,  # fusions only: no provider-specific session rewrites baked into the file
            use_gpu=config.float16,
        )
        if config.float16:
            model.convert_float_to_float16(keep_io_types=True)
    finally:
        quiet.setLevel(level)
    proto = _with_types(model.model)
    OnnxModel.save(proto, str(target))  # adds the com.microsoft opset import the fused ops need
    ops: dict[str, int] = {}
    for node in proto.graph.node:
        if node.op_type in FUSED_OPS:
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return {"fused_ops": dict(sorted(ops.items())), "model_type": model_type, "num_heads": heads, "hidden_size": hidden}


def _heads_and_hidden(config: OptimizeConfig, model_config: dict[str, Any]) -> tuple[int, int]:
    """From the options, else config.json; 0 (detect from the graph) once heads were pruned per layer."""
    pruned = bool(model_config.get("pruned_heads"))  # heads then differ per layer: no one number is right
    heads = model_config.get("num_attention_heads") if not pruned else 0
    heads = config.num_heads if config.num_heads is not None else heads
    hidden = config.hidden_size if config.hidden_size is not None else model_config.get("hidden_size")
    return int(heads or 0), int(hidden or 0)


def _with_types(proto: Any) -> Any:
    """The fused graph with inferred tensor types, so a quantizer downstream (ORT's or Optimum's) knows
    the type of every com.microsoft op's output; unchanged if symbolic inference cannot run on it."""
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    try:
        return SymbolicShapeInference.infer_shapes(proto, auto_merge=True)
    except Exception:  # quantize also sets a default tensor type, so an untyped graph still quantises
        return proto


def _validate(src: Artifact, target: Path, config: OptimizeConfig, ctx: PassContext) -> dict[str, Any]:
    """Against the last PyTorch model in the lineage, as export is; else against the input ONNX file."""
    import numpy as np
    from transformers import AutoTokenizer

    from optkit.evaluate.predict import create_session, onnx_logits
    from optkit.passes.onnx_export import validate_export
    from optkit.tasks import get_task

    task = get_task(ctx.settings.task)
    texts = ctx.splits().eval.texts[: config.validation_samples]
    torch_art = next((a for a in reversed((*ctx.lineage, src)) if a.format == "torch"), None)
    if torch_art is not None:
        trust, where = ctx.settings.trust_remote_code, ctx.step
        model, tokenizer = task.load_model(torch_art.path, [], trust_remote_code=trust, for_training=False, where=where)
        check = validate_export(model, tokenizer, target, texts, ctx.settings.max_length, task)
        return check | {"against": "PyTorch"}
    tokenizer = AutoTokenizer.from_pretrained(src.path)
    ref = onnx_logits(create_session(src.onnx_file), tokenizer, texts, ctx.settings.max_length, 16)
    got = onnx_logits(create_session(target), tokenizer, texts, ctx.settings.max_length, 16)
    diff = float(np.abs(ref - got).max()) if len(texts) else 0.0
    agreement = task.agreement(task.predictions(got), task.predictions(ref)) if len(texts) else 1.0
    return {"samples": len(texts), "max_abs_diff": diff, "agreement": agreement, "against": "the input ONNX model"}


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as e:
        raise PassError(f"optimize needs the model's config.json beside model.onnx; reading {str(path)!r}: {e}") from e


def _copy_side_files(src: Artifact, out_dir: Path) -> None:
    for f in src.path.iterdir():
        if f.is_file() and f.name != ONNX_FILE and not f.name.startswith(("meta", ".")) and f.suffix != ".onnx":
            shutil.copy2(f, out_dir / f.name)

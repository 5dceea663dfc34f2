"""``quantize``: ONNX Runtime int8 quantisation, dynamic or static QDQ (onnx -> onnx).

Static defaults are chosen from measurements on MiniLM (see shared DESIGN.md): quantising every
op type with int8 activations collapses accuracy (embedding cosine 0.32), because the attention
mask Add calibrates to a range that reaches the float minimum. MatMul-only, with uint8
activations and int8 weights, keeps it (cosine 0.95). So static quantises MatMul unless told
otherwise, and every other op stays float.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from optkit.errors import PassError, RecipeError
from optkit.evaluate.predict import create_session, ort_feed
from optkit.guards import calibration_bytes
from optkit.passes.base import ONNX_FILE, Artifact, MemoryDemand, PassConfig, PassContext, Plan
from optkit.passes.registry import register_pass
from optkit.provider_names import ort_provider_name
from optkit.recipe import shape_label

__all__ = ["OPTIMUM_PRESETS", "QuantizeConfig", "optimum_quantization_config", "quantize", "slow_int8_hint"]

_CALIBRATION = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
_QTYPE = {"int8": "QInt8", "uint8": "QUInt8"}
# preset -> the AutoQuantizationConfig method of optimum-onnx that builds it (optimum/onnxruntime/configuration.py)
OPTIMUM_PRESETS = {
    "optimum-arm64": "arm64",
    "optimum-avx2": "avx2",
    "optimum-avx512": "avx512",
    "optimum-avx512-vnni": "avx512_vnni",
    "optimum-ppc64le": "ppc64le",
}
_PRESETS_WITH_REDUCE_RANGE = {"optimum-avx2", "optimum-avx512"}  # the others take no reduce_range argument
OptimumPreset = Literal["optimum-arm64", "optimum-avx2", "optimum-avx512", "optimum-avx512-vnni", "optimum-ppc64le"]


class QuantizeConfig(PassConfig):
    """int8 quantisation with ONNX Runtime's quantisation tool."""

    kind: Literal["quantize"] = "quantize"
    mode: Literal["dynamic", "static"] = Field(
        "dynamic", description="dynamic: int8 weights, activations quantised at run time. static: QDQ with calibration."
    )
    weight_type: Literal["int8", "uint8"] = Field("int8", description="Weight integer type (uint8 is slower on AVX2).")
    activation_type: Literal["int8", "uint8"] = Field(
        "uint8", description="Static only: activation integer type; uint8 keeps MiniLM accurate on x86."
    )
    per_channel: bool = Field(True, description="Per-output-channel weight scales (more accurate, ~same speed).")
    reduce_range: bool = Field(False, description="7-bit weights, for CPUs without VNNI that saturate.")
    op_types: list[str] | None = Field(
        None,
        description="Op types to quantise. Default: dynamic -> ONNX Runtime's defaults (MatMul, Gather, ...); "
        "static -> [MatMul] (all-op static QDQ collapses accuracy on BERT-like models).",
    )
    nodes_to_exclude: list[str] = Field(default_factory=list, description="Node names kept in float.")
    calibration: Literal["minmax", "entropy", "percentile"] = Field(
        "minmax", description="Static only: how activation ranges are computed from the calibration split."
    )
    calibration_percentile: float | None = Field(
        None,
        gt=90,
        le=100,
        description="Static, calibration: percentile only: the percentile of |activation| that sets each range; "
        "default ONNX Runtime's (99.999).",
    )
    calibration_samples: int | None = Field(
        None, ge=1, description="Static only: rows of the calibration split to use; default all of it."
    )
    calibration_batch_size: int = Field(8, ge=1, description="Static only: rows per calibration batch.")
    preset: OptimumPreset | None = Field(
        None,
        description="Quantise as an Optimum user would: optimum-onnx's ORTQuantizer with the named "
        "AutoQuantizationConfig preset (dynamic; it picks the weight and activation types). per_channel, "
        "reduce_range (avx2/avx512 only), op_types and nodes_to_exclude are passed on to it.",
    )

    @classmethod
    def optimum(cls, preset: OptimumPreset, **options: Any) -> QuantizeConfig:
        """What an Optimum user gets from ``AutoQuantizationConfig.<preset>(is_static=False)``.

        Example: ``QuantizeConfig.optimum("optimum-avx512-vnni", per_channel=False)``.
        """
        return cls(preset=preset, **options)

    @model_validator(mode="after")
    def _static_only_options(self) -> QuantizeConfig:
        # Compared with the defaults, not fields_set, so a dumped-and-reloaded config still validates.
        if self.mode == "dynamic" and (self.calibration != "minmax" or self.calibration_samples is not None):
            raise ValueError("calibration options are for mode: static; remove them or set mode: static")
        if self.calibration_percentile is not None and self.calibration != "percentile":
            raise ValueError("calibration_percentile needs calibration: percentile; remove it or set calibration")
        return self

    @model_validator(mode="after")
    def _preset_decides_types(self) -> QuantizeConfig:
        if self.preset is None:
            return self
        if self.mode != "dynamic":
            raise ValueError(
                f"preset {self.preset!r} is run as dynamic quantisation (Optimum's static path needs a datasets "
                f"calibration set); remove mode: static, or drop the preset and use optkit's static mode"
            )
        if self.weight_type != "int8" or self.activation_type != "uint8":
            raise ValueError(
                f"preset {self.preset!r} sets the weight and activation types itself (Optimum's "
                f"AutoQuantizationConfig.{OPTIMUM_PRESETS[self.preset]}); remove weight_type and activation_type"
            )
        if self.reduce_range and self.preset not in _PRESETS_WITH_REDUCE_RANGE:
            raise ValueError(
                f"preset {self.preset!r} has no reduce_range option (only optimum-avx2 and optimum-avx512 do); "
                f"remove reduce_range"
            )
        return self

    @model_serializer(mode="wrap")
    def _without_unset_preset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """No ``preset: null`` in the dump, so the cache keys of quantize steps from before presets still hit."""
        data = handler(self)
        if isinstance(data, dict) and data.get("preset") is None:
            data.pop("preset", None)
        return data

    @property
    def uses_calibration(self) -> bool:
        return self.mode == "static"

    def check(self, where: str, model: dict[str, Any] | None, plan: Plan) -> dict[str, Any] | None:
        have = len(plan.splits.calibration)
        if self.calibration_samples is not None and self.calibration_samples > have:
            raise RecipeError(
                f"{where}.calibration_samples: {self.calibration_samples} rows asked, but the calibration split "
                f"has {have} (data.splits.calibration); lower it or raise data.splits.calibration"
            )
        return model

    def memory_demands(self, where: str, plan: Plan) -> list[MemoryDemand]:
        if self.mode != "static":
            return []
        texts = plan.splits.calibration.texts[: self.calibration_samples or len(plan.splits.calibration)]
        dims = plan.dims
        need = 2 * plan.weights_bytes + calibration_bytes(dims, texts, plan.max_length, self.calibration_batch_size)
        what = f"static calibration over {len(texts)} rows (ONNX Runtime keeps every batch's activations)"
        return [MemoryDemand(f"{where}.calibration_samples", what, need)]

    def report_notes(self, variant: str, report: dict[str, Any]) -> list[str]:
        """Why an int8 variant is not faster, where it is not; what GPU providers do with int8."""
        notes = []
        if self.preset is not None:
            notes.append(
                f"{variant}: built by optimum-onnx's ORTQuantizer with AutoQuantizationConfig."
                f"{OPTIMUM_PRESETS[self.preset]}(is_static=False), what an Optimum user gets from the "
                f"{self.preset} preset; measured in the same run, interleaved, beside optkit's own variants."
            )
        explain = report["variants"][variant].get("explain")
        measured = [r for r in report["results"] if r["variant"] == variant and r["status"] == "measured"]
        for r in measured:
            hint = slow_int8_hint(explain, r.get("speedup_vs_reference"), r["provider"]) if explain else None
            if hint:
                notes.append(
                    f"{variant} ({self.mode} int8) vs {report['reference']} at {r['provider']} "
                    f"{shape_label(r)}: {hint}. Reported as measured."
                )
        for provider in sorted({r["provider"] for r in measured if ort_provider_name(r["provider"]) in _INT8_ON_GPU}):
            notes.append(
                f"{variant} on {provider}: quantised ONNX on GPU providers is often slower than fp32 (the CUDA EP "
                f"runs QDQ int8 through dequantise round trips); TensorRT runs int8 only from static QDQ graphs, so "
                f"a dynamic-quantised model ({self.mode}) needs mode: static there."
            )
        return notes


_INT8_ON_GPU = {"CUDAExecutionProvider", "TensorrtExecutionProvider"}  # what the note below is about


def slow_int8_hint(explain: dict[str, Any], speedup: float | None, provider: str = "cpu") -> str | None:
    """One line when an int8 variant is not faster than fp32 (speed-up below 1.05×), naming the likely causes."""
    if speedup is None or speedup >= 1.05:
        return None
    graph = explain.get("optimized") if "ops" in explain.get("optimized", {}) else explain["source"]
    causes = []
    if provider != "cpu":
        causes.append(f"QDQ int8 on the {provider} provider often runs slower than fp32 (few int8 kernels)")
    elif not explain["int8_vnni"]:
        isa = ", ".join(explain["isa"]) or "no AVX2"
        causes.append(f"this CPU has no VNNI ({isa}), so int8 dot products need extra widening steps")
    if graph["float_compute"]:
        causes.append(
            f"{graph['float_compute']} of {graph['float_compute'] + graph['quantized_compute']} MatMul-class nodes "
            f"still run in float"
        )
    conv = sum(graph["conversions"].values())
    if conv:
        pairs = f", {graph['q_dq_pairs']} of them Q→DQ pairs" if graph["q_dq_pairs"] else ""
        causes.append(f"{conv} quantise/dequantise nodes left unfused after ORT's optimisation{pairs}")
    return f"int8 is not faster here ({speedup:.2f}×): " + "; ".join(causes or ["no obvious cause in graph or ISA"])


@register_pass(QuantizeConfig, version=3, input_format="onnx", output_format="onnx", uses_data=True)
def quantize(src: Artifact, config: QuantizeConfig, ctx: PassContext) -> Artifact:
    """Quantise ``src/model.onnx`` into ``ctx.out_dir``; tokenizer and config files are copied along."""
    from onnxruntime.quantization import QuantType

    target = ctx.out_dir / ONNX_FILE
    if config.preset is not None:
        return _quantize_optimum(src, config, ctx)
    common: dict[str, Any] = {
        "per_channel": config.per_channel,
        "reduce_range": config.reduce_range,
        "weight_type": getattr(QuantType, _QTYPE[config.weight_type]),
        "nodes_to_exclude": list(config.nodes_to_exclude) or None,
    }
    try:
        if config.mode == "dynamic":
            from onnxruntime.quantization import quantize_dynamic

            # ORT logs "consider pre-processing" on the root logger; for dynamic int8 of an exported
            # transformer it changes nothing measurable (DESIGN.md), so keep the console clean.
            with _quiet_root_logger():
                quantize_dynamic(
                    src.onnx_file,
                    target,
                    op_types_to_quantize=config.op_types,
                    # After the optimize pass, com.microsoft ops (Attention, SkipLayerNormalization) may carry
                    # no output type; ORT then needs a default, or it refuses the MatMuls that follow them.
                    extra_options={"DefaultTensorType": _FLOAT},
                    **common,
                )
        else:
            _quantize_static(src, config, ctx, common)
    except PassError:
        raise
    except Exception as e:
        raise PassError(f"{ctx.step}: ONNX Runtime quantisation failed: {type(e).__name__}: {e}") from e
    _copy_side_files(src, ctx)
    ctx.meta["op_counts"] = _op_counts(target)
    return Artifact(ctx.out_dir, "onnx", key="")


_FLOAT = 1  # onnx.TensorProto.FLOAT, without importing onnx at module level


def optimum_quantization_config(config: QuantizeConfig) -> Any:
    """The ``optimum.onnxruntime.QuantizationConfig`` a preset stands for, with the config's pass-on options."""
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    if config.preset is None:
        raise ValueError("optimum_quantization_config needs a config with a preset")
    build = getattr(AutoQuantizationConfig, OPTIMUM_PRESETS[config.preset])
    options: dict[str, Any] = {
        "is_static": False,
        "per_channel": config.per_channel,
        "nodes_to_exclude": list(config.nodes_to_exclude) or None,
        "operators_to_quantize": list(config.op_types) if config.op_types else None,
    }
    if config.preset in _PRESETS_WITH_REDUCE_RANGE:
        options["reduce_range"] = config.reduce_range
    return build(**options)


def _quantize_optimum(src: Artifact, config: QuantizeConfig, ctx: PassContext) -> Artifact:
    """Optimum's ORTQuantizer with the preset, writing ``model.onnx`` (and Optimum's ort_config.json)."""
    try:
        from optimum.onnxruntime import ORTQuantizer

        qconfig = optimum_quantization_config(config)
        quantizer = ORTQuantizer.from_pretrained(src.path, file_name=ONNX_FILE)
        with _quiet_root_logger():
            quantizer.quantize(quantization_config=qconfig, save_dir=ctx.out_dir, file_suffix=None)
    except Exception as e:
        raise PassError(
            f"{ctx.step}: Optimum's ORTQuantizer with preset {config.preset!r} failed: {type(e).__name__}: {e}"
        ) from e
    _copy_side_files(src, ctx)
    ctx.meta["op_counts"] = _op_counts(ctx.out_dir / ONNX_FILE)
    ctx.meta["preset"] = {
        "name": config.preset,
        "optimum": f"AutoQuantizationConfig.{OPTIMUM_PRESETS[config.preset]}(is_static=False)",
        "weights": qconfig.weights_dtype.name,
        "activations": qconfig.activations_dtype.name,
        "per_channel": qconfig.per_channel,
        "reduce_range": qconfig.reduce_range,
        "weights_symmetric": qconfig.weights_symmetric,
        "operators": [getattr(o, "value", o) for o in qconfig.operators_to_quantize],
    }
    return Artifact(ctx.out_dir, "onnx", key="")


def _quantize_static(src: Artifact, config: QuantizeConfig, ctx: PassContext, common: dict[str, Any]) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from optkit.tasks import get_task

    splits = ctx.splits()
    texts = splits.calibration.inputs[: config.calibration_samples or len(splits.calibration)]
    if not texts:
        raise PassError(f"{ctx.step}: static quantisation needs calibration rows; set data.splits.calibration")
    tokenizer = get_task(ctx.settings.task).input_encoder(src.path)
    prepped = ctx.out_dir / "preprocessed.onnx"
    # Symbolic shape inference fails on BERT graphs (DESIGN.md); ONNX shape inference + folding suffice.
    quant_pre_process(str(src.onnx_file), str(prepped), skip_symbolic_shape=True)
    # Histogram calibrators (entropy, percentile) stack every batch's activations into one array, so
    # batches of different lengths fail ("setting an array element with a sequence"): pad them all alike.
    fixed = config.calibration != "minmax"
    reader = _CalibrationReader(
        prepped, tokenizer, texts, ctx.settings.max_length, config.calibration_batch_size, fixed
    )
    task = get_task(ctx.settings.task)
    if task.structured:  # words as split words, a question and its context as a pair
        reader.encode = lambda chunk: task.encode(tokenizer, chunk, ctx.settings.max_length)
    with ctx.progress.task(f"{ctx.step}: calibrating ({config.calibration})", total=len(texts)) as advance:
        reader.advance = advance
        quantize_static(
            prepped,
            ctx.out_dir / ONNX_FILE,
            reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=config.op_types or ["MatMul"],
            activation_type=getattr(QuantType, _QTYPE[config.activation_type]),
            calibrate_method=getattr(CalibrationMethod, _CALIBRATION[config.calibration]),
            # MatMul outputs stay float: ORT then fuses DQ+MatMul into an integer MatMul with a float
            # result, and the bias Adds, Softmax inputs and reshapes never see re-quantised values
            # (measured on MiniLM: max |logit diff| 0.001 vs 0.019 with quantised outputs, same speed).
            extra_options={
                "CalibMovingAverage": False,
                "OpTypesToExcludeOutputQuantization": ["MatMul"],
                **({"CalibPercentile": config.calibration_percentile} if config.calibration_percentile else {}),
            },
            **common,
        )
    prepped.unlink(missing_ok=True)
    ctx.meta["calibration_rows"] = len(texts)


class _CalibrationReader:
    """Feeds calibration batches (padded to their longest row) to the ORT calibrator."""

    def __init__(
        self, model_path: Any, tokenizer: Any, texts: list[str], max_length: int, batch: int, fixed: bool = False
    ):

        session = create_session(model_path)
        self._names = [i.name for i in session.get_inputs()]
        self._batches = [texts[i : i + batch] for i in range(0, len(texts), batch)]
        self._tokenizer, self._max_length, self._i = tokenizer, max_length, 0
        self._padding: bool | str = "max_length" if fixed else True
        self._session = session
        self.advance = lambda n=1, info="": None
        self.encode: Any = lambda chunk: dict(
            self._tokenizer(
                chunk, truncation=True, max_length=self._max_length, padding=self._padding, return_tensors="np"
            )
        )

    def get_next(self) -> dict[str, Any] | None:

        if self._i >= len(self._batches):
            return None
        chunk = self._batches[self._i]
        self._i += 1
        enc = self.encode(chunk)
        self.advance(len(chunk))
        return ort_feed(self._session, dict(enc))

    def rewind(self) -> None:
        self._i = 0


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _copy_side_files(src: Artifact, ctx: PassContext) -> None:
    for f in src.path.iterdir():
        if f.is_file() and f.name != ONNX_FILE and not f.name.startswith(("meta", ".")) and f.suffix != ".onnx":
            shutil.copy2(f, ctx.out_dir / f.name)


def _op_counts(path: Any) -> dict[str, int]:
    """Op-type histogram of the quantised graph: shows what really became integer."""
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))

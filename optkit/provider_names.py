"""The provider table: each execution provider's short word, ONNX Runtime name, device, I/O binding,
default options and how its GPU memory is read, plus the recipe words that are no provider at all.

One table so ``run``, ``bench`` and the memory probe cannot disagree about a provider: whether its
inputs are bound on a device, which options its sessions get, whether its process holds GPU memory.

A name that is no provider at all (``gpu``, a typo) is a recipe error caught at validation, with
a hint. A real provider that this onnxruntime build lacks (``cuda`` on a CPU wheel) is not: the
report then says "not measured" and why, and ``--strict-providers`` turns that into an error.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "PROVIDERS",
    "PROVIDER_NAMES",
    "ProviderInfo",
    "check_provider_options",
    "known_providers",
    "ort_provider_name",
    "provider_info",
    "session_options",
    "unknown_provider_message",
]


@dataclass(frozen=True)
class ProviderInfo:
    """One execution provider as optkit uses it.

    ``io_binding`` is the OrtValue device that inputs and outputs are bound to before timing
    (``None``: plain ``session.run`` with host arrays, as a CPU server calls it). ``gpu_memory``
    says how the memory probe reads the GPU memory a session holds (``"nvml"``: pynvml, else
    nvidia-smi; ``None``: no NVIDIA GPU involved). ``options`` are the provider options a recipe
    may set, with their type; ``threads_option`` is the option that carries ``latency.threads``
    for a provider that keeps its own thread pool (OpenVINO ignores ORT's intra-op threads).
    """

    alias: str
    ort_name: str
    device: str  # "cpu" or "gpu": where the provider computes with its default options
    io_binding: str | None = None
    gpu_memory: str | None = None
    default_options: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, type] = field(default_factory=dict)
    threads_option: str | None = None


_CUDA_OPTIONS: dict[str, type] = {
    "device_id": int,
    "gpu_mem_limit": int,
    "arena_extend_strategy": str,
    "cudnn_conv_algo_search": str,
    "do_copy_in_default_stream": bool,
    "cudnn_conv_use_max_workspace": bool,
    "enable_cuda_graph": bool,
    "use_tf32": bool,
    "prefer_nhwc": bool,
}
_TENSORRT_OPTIONS: dict[str, type] = {
    "device_id": int,
    "trt_max_workspace_size": int,
    "trt_fp16_enable": bool,
    "trt_int8_enable": bool,
    "trt_engine_cache_enable": bool,
    "trt_engine_cache_path": str,
    "trt_timing_cache_enable": bool,
    "trt_builder_optimization_level": int,
    "trt_min_subgraph_size": int,
    "trt_layer_norm_fp32_fallback": bool,
    "trt_profile_min_shapes": str,
    "trt_profile_opt_shapes": str,
    "trt_profile_max_shapes": str,
}
_OPENVINO_OPTIONS: dict[str, type] = {
    "device_type": str,  # CPU, GPU, NPU, or HETERO:/MULTI:/AUTO: lists
    "precision": str,  # FP32, FP16, ACCURACY
    "num_of_threads": int,
    "num_streams": int,
    "cache_dir": str,
    "load_config": str,
    "enable_qdq_optimizer": bool,
    "disable_dynamic_shapes": bool,
    "model_priority": str,
    "enable_opencl_throttling": bool,
}

PROVIDERS: dict[str, ProviderInfo] = {
    p.alias: p
    for p in (
        ProviderInfo("cpu", "CPUExecutionProvider", "cpu"),
        ProviderInfo(
            "cuda",
            "CUDAExecutionProvider",
            "gpu",
            io_binding="cuda",
            gpu_memory="nvml",
            default_options={"device_id": "0"},
            options=_CUDA_OPTIONS,
        ),
        ProviderInfo(
            "tensorrt",
            "TensorrtExecutionProvider",
            "gpu",
            io_binding="cuda",
            gpu_memory="nvml",
            default_options={"device_id": "0"},
            options=_TENSORRT_OPTIONS,
        ),
        # FP32 on the CPU device unless the recipe says otherwise: OpenVINO's own default precision
        # follows the device (FP16 on an Intel GPU), which would change accuracy unasked.
        ProviderInfo(
            "openvino",
            "OpenVINOExecutionProvider",
            "cpu",
            default_options={"device_type": "CPU", "precision": "FP32"},
            options=_OPENVINO_OPTIONS,
            threads_option="num_of_threads",
        ),
        # Not built into any wheel optkit installs; known so that a raw name gets the right handling.
        ProviderInfo("rocm", "ROCMExecutionProvider", "gpu", options={"device_id": int}),
    )
}
PROVIDER_NAMES = {a: p.ort_name for a, p in PROVIDERS.items() if a != "rocm"}
_BY_ORT_NAME = {p.ort_name: p for p in PROVIDERS.values()}
# Words people write for a provider that are not its name: what to write instead.
_SYNONYMS = {
    "gpu": "cuda",
    "nvidia": "cuda",
    "trt": "tensorrt",
    "ov": "openvino",
    "intel": "openvino",
    "rocm": "ROCMExecutionProvider",
    "directml": "DmlExecutionProvider",
    "dml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
}


def ort_provider_name(provider: str) -> str:
    """Recipe word (``cuda``) or raw ORT name (``CUDAExecutionProvider``) to the ORT name."""
    return PROVIDER_NAMES.get(provider.lower(), provider)


def provider_info(provider: str) -> ProviderInfo | None:
    """The table's entry for a recipe word or ORT name; ``None`` for a provider optkit has no entry for."""
    return PROVIDERS.get(provider.lower()) or _BY_ORT_NAME.get(provider)


def _option_value(provider: str, key: str, value: Any, expected: type | None) -> str:
    """One option as the string ORT wants, or a ValueError naming provider, option and fix."""
    where = f"provider {provider!r} option {key!r}"
    if isinstance(value, (dict, list, tuple, set)) or value is None:
        raise ValueError(
            f"{where}: {type(value).__name__} {value!r} is not an option value; provider options are "
            f"single values (a string, number or true/false)"
        )
    if expected is bool and not isinstance(value, bool):
        if str(value).lower() not in ("true", "false"):
            raise ValueError(f"{where} is true or false; got {value!r}")
        return str(value).lower()
    whole = isinstance(value, int) and not isinstance(value, bool)
    if expected is int and not whole and not (isinstance(value, str) and value.strip().isdigit()):
        raise ValueError(f"{where} is a whole number; got {value!r}")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_provider_options(provider: str, options: Mapping[str, Any]) -> dict[str, str]:
    """Recipe options for ``provider`` as ORT's strings, or a ValueError saying which option is wrong and why.

    A provider in the table accepts only the options listed there (a typo would otherwise be
    ignored by some providers and measured as the default); a raw ORT name optkit has no entry
    for takes any single-valued options unchecked.
    """
    info = provider_info(provider)
    if info is not None and options and not info.options:
        raise ValueError(
            f"provider {provider!r} takes no options; got {sorted(options)}. Its threads are evaluate.latency.threads"
        )
    out: dict[str, str] = {}
    for key, value in options.items():
        expected = None
        if info is not None:
            if key not in info.options:
                close = difflib.get_close_matches(key, list(info.options), n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ValueError(
                    f"provider {provider!r} has no option {key!r}; {hint}known: {', '.join(sorted(info.options))}"
                )
            expected = info.options[key]
        out[str(key)] = _option_value(provider, str(key), value, expected)
    return out


def session_options(
    provider: str, options: Mapping[str, str] | None = None, threads: int | None = None
) -> dict[str, str]:
    """What a session on ``provider`` really gets: the table's defaults, then the recipe's options, then threads.

    ``threads`` fills the provider's own thread option (OpenVINO's ``num_of_threads``) unless the
    recipe set it, so every provider is timed with the same number of threads.
    """
    info = provider_info(provider)
    merged = dict(info.default_options) if info else {}
    merged.update(options or {})
    if info and info.threads_option and threads and info.threads_option not in merged:
        merged[info.threads_option] = str(threads)
    return merged


def known_providers() -> list[str]:
    """Every provider ONNX Runtime knows of, built into this wheel or not, plus the short words."""
    import onnxruntime as ort

    return [*PROVIDER_NAMES, *ort.get_all_providers(), "ROCMExecutionProvider"]


def unknown_provider_message(provider: str) -> str | None:
    """Why ``provider`` names no execution provider (with a 'did you mean'), or ``None`` if it names one."""
    known = known_providers()
    if provider.lower() in PROVIDER_NAMES or provider in known:
        return None
    wrong_case = {k.lower(): k for k in known}.get(provider.lower())
    guess = wrong_case or _SYNONYMS.get(provider.lower())
    if guess is None:
        close = difflib.get_close_matches(provider, known, n=1, cutoff=0.6)
        guess = close[0] if close else None
    hint = f"did you mean {guess!r}? Use" if guess else "use"
    return (
        f"{provider!r} is not an execution provider; {hint} one of {', '.join(PROVIDER_NAMES)} "
        f"or an ONNX Runtime provider name such as 'CUDAExecutionProvider'"
    )

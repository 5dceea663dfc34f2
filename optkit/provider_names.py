"""Execution provider names: the recipe's short words, ONNX Runtime's own names, and what is neither.

A name that is no provider at all (``gpu``, a typo) is a recipe error caught at validation, with
a hint. A real provider that this onnxruntime build lacks (``cuda`` on a CPU wheel) is not: the
report then says "not measured" and why, and ``--strict-providers`` turns that into an error.
"""

from __future__ import annotations

import difflib

__all__ = ["PROVIDER_NAMES", "known_providers", "ort_provider_name", "unknown_provider_message"]

PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}
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

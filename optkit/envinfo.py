"""What produced a number: CPU, ISA flags, threads, library versions, execution providers."""

from __future__ import annotations

import functools
import importlib.metadata as md
import os
import platform
from pathlib import Path
from typing import Any

from optkit import __version__

__all__ = [
    "KEY_LIBRARIES",
    "available_cpus",
    "collect_environment",
    "cpu_flags",
    "library_versions",
    "onnxruntime_build",
    "versions",
]

# /proc/cpuinfo flag -> the name a deployment engineer looks for
_FLAGS = {
    "avx2": "AVX2",
    "fma": "FMA",
    "avx512f": "AVX-512F",
    "avx512bw": "AVX-512BW",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "amx_int8": "AMX-INT8",
    "asimd": "NEON",
    "asimddp": "NEON dot-product",
}


def cpu_flags(cpuinfo: str | None = None) -> dict[str, Any]:
    """Model name and the int8-relevant ISA extensions (VNNI is what makes int8 MatMul fast on x86)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    model, flags = platform.processor() or platform.machine(), set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip():
            model = value.strip()
        elif key in ("flags", "Features"):
            flags |= set(value.split())
    present = [name for flag, name in _FLAGS.items() if flag in flags]
    vnni = any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))
    return {"model": model, "isa": present, "int8_vnni": vnni}


def available_cpus() -> int:
    """CPUs this process may run on (affinity and cgroup-pinned), not the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# Versions that change what any pass produces; part of every cache key. A pass adds its own
# (``PassConfig.key_libraries``), so upgrading a library it relies on rebuilds its artifacts.
KEY_LIBRARIES = ("torch", "transformers", "onnx", "onnxruntime", "optimum", "optimum-onnx", "accelerate")


def library_versions() -> dict[str, str]:
    """Versions recorded in every report: those in every cache key, and others that shape the figures."""
    return versions((*KEY_LIBRARIES, "onnxruntime-gpu", "onnxruntime-openvino", "neural-compressor", "numpy"))


def onnxruntime_build(libraries: dict[str, str]) -> str:
    """The onnxruntime version a report's figures came from, naming the wheel when it is not the plain one.

    ``onnxruntime-gpu`` and ``onnxruntime-openvino`` install the same module under another
    distribution name, so a report from such an environment has no ``onnxruntime`` entry.
    """
    for wheel in ("onnxruntime-gpu", "onnxruntime-openvino"):
        if wheel in libraries:
            return f"{libraries[wheel]} ({wheel})"
    return libraries.get("onnxruntime", "?")


@functools.cache
def versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of ``names``, in that order; a library that is not installed is left out."""
    out = {}
    for name in dict.fromkeys(names):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return out


def collect_environment(threads: int | None = None) -> dict[str, Any]:
    import onnxruntime as ort

    return {
        "optkit": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_flags(),
        "cpus_available": available_cpus(),
        "cpu_affinity": _affinity(),
        "threads": threads,
        "memory_total_gb": round(_total_memory() / 2**30, 1),
        "libraries": library_versions(),
        "onnxruntime_providers": ort.get_available_providers(),
        "onnxruntime_device": ort.get_device(),
    }


def _affinity() -> list[int] | None:
    """CPU ids this process may run on: two runs on different cores of a busy host are not comparable."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return None


def _total_memory() -> int:
    import psutil

    return psutil.virtual_memory().total

"""Execution providers: which exist in this onnxruntime build, and where a session's nodes really ran.

ONNX Runtime silently places a node on the CPU when the requested provider has no kernel for
it, and silently drops a provider it cannot load. A "CUDA latency" from such a session is a CPU
figure with extra copies. So a provider is checked twice: before the session (is it in
``get_available_providers()``, the one place tests mock) and after (``session.get_providers()``
and one profiled run that says which provider executed each node).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from optkit.errors import EvaluationError
from optkit.provider_names import PROVIDER_NAMES, PROVIDERS, ort_provider_name

__all__ = [
    "GPU_PROVIDERS",
    "PROVIDER_NAMES",
    "IOBindingRun",
    "count_placement",
    "gpu_memory_used_mb",
    "io_binding_runner",
    "ort_provider_name",
    "placement_problem",
    "profile_placement",
    "provider_status",
]

GPU_PROVIDERS = {p.ort_name for p in PROVIDERS.values() if p.device == "gpu"}
CPU = "CPUExecutionProvider"

# A variant whose share of nodes on the CPU fallback exceeds this is not reported as a figure
# of the requested provider: most of its time is CPU time plus host-device copies.
MAX_FALLBACK_SHARE = 0.5


def provider_status(provider: str, *, strict: bool = False) -> str | None:
    """``None`` when the provider is in this onnxruntime build, else why not (or raise when ``strict``)."""
    import onnxruntime as ort

    name = ort_provider_name(provider)
    available = ort.get_available_providers()
    if name in available:
        return None
    reason = f"{name} not available in this onnxruntime build ({ort.get_device()}, onnxruntime {ort.__version__})"
    if strict:
        hint = (
            "install the onnxruntime-gpu build (pip install 'optkit[gpu]') on a machine with a GPU"
            if name in GPU_PROVIDERS
            else "install an onnxruntime build that ships it"
        )
        raise EvaluationError(
            f"provider {provider!r}: {reason}; available: {', '.join(available)}. Either {hint}, or remove "
            f"{provider!r} from evaluate.providers"
        )
    return reason


def count_placement(events: Iterable[dict[str, Any]], requested: str) -> dict[str, Any]:
    """Nodes per provider from an ORT profile (one run); the fallback share is what did not run on ``requested``."""
    per_node: dict[str, str] = {}
    ops: dict[str, Counter[str]] = {}
    for ev in events:
        if ev.get("cat") != "Node" or not str(ev.get("name", "")).endswith("_kernel_time"):
            continue
        args = ev.get("args") or {}
        provider = args.get("provider")
        if not provider:
            continue
        node = ev["name"].removesuffix("_kernel_time")
        per_node[node] = provider
        ops.setdefault(provider, Counter())[args.get("op_name", "?")] += 1
    nodes = Counter(per_node.values())
    total = sum(nodes.values())
    on_requested = nodes.get(requested, 0)
    return {
        "requested": requested,
        "nodes": dict(nodes),
        "total_nodes": total,
        "fallback_nodes": total - on_requested,
        "fallback_share": (total - on_requested) / total if total else None,
        "fallback_ops": dict(sum((c for p, c in ops.items() if p != requested), Counter())),
    }


def profile_placement(make_session: Callable[[Path], Any], feed: dict[str, Any], requested: str, tmp: Path) -> dict:
    """Run once with profiling on a session from ``make_session(profile_prefix)`` and count placements."""
    tmp.mkdir(parents=True, exist_ok=True)
    session = make_session(tmp / "profile")
    session.run(None, feed)
    path = Path(session.end_profiling())
    try:
        events = json.loads(path.read_text())
    finally:
        path.unlink(missing_ok=True)
    placement = count_placement(events, requested)
    placement["session_providers"] = list(session.get_providers())
    return placement


def placement_problem(provider: str, placement: dict[str, Any]) -> str | None:
    """Why figures of this session must not be reported as ``provider`` figures, or ``None``."""
    requested = placement["requested"]
    active = placement.get("session_providers") or []
    if requested == CPU:
        return None
    if not active or active[0] != requested:
        return f"session fell back to {active[0] if active else 'no provider'}; {requested} was dropped"
    share = placement.get("fallback_share")
    if share is not None and share > MAX_FALLBACK_SHARE:
        ops = ", ".join(f"{op} {n}" for op, n in sorted(placement["fallback_ops"].items(), key=lambda kv: -kv[1])[:5])
        return (
            f"{placement['fallback_nodes']} of {placement['total_nodes']} nodes ({share:.0%}) fell back to the CPU "
            f"({ops}); not reported as a {provider} figure"
        )
    return None


class IOBindingRun:
    """A run callable with inputs copied to the device once and outputs left there.

    Without I/O binding a GPU latency includes two host-device copies per call, which is not
    what a served model pays when its inputs already live on the device. Calling the object
    runs the model and copies nothing back; ``outputs()`` copies the last run's outputs to the
    host, so a test can check that what was bound is what ``session.run`` would have computed.
    """

    def __init__(self, session: Any, feed: dict[str, Any], device: str, device_id: int = 0) -> None:
        import onnxruntime as ort

        self._session = session
        self._binding = session.io_binding()
        for name, value in feed.items():
            self._binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, device, device_id))
        for out in session.get_outputs():
            self._binding.bind_output(out.name, device, device_id)

    def __call__(self) -> None:
        self._binding.synchronize_inputs()
        self._session.run_with_iobinding(self._binding)
        self._binding.synchronize_outputs()

    def outputs(self) -> list[Any]:
        """The last run's outputs as numpy arrays, in ``session.get_outputs()`` order (a copy; not timed)."""
        return list(self._binding.copy_outputs_to_cpu())


def io_binding_runner(session: Any, feed: dict[str, Any], device: str, device_id: int = 0) -> IOBindingRun:
    """A run callable for timing ``session`` on ``device`` with I/O binding (see :class:`IOBindingRun`)."""
    return IOBindingRun(session, feed, device, device_id)


def gpu_memory_used_mb(pid: int | None = None) -> float | None:
    """GPU memory held by process ``pid`` (default: this one), via pynvml or nvidia-smi; ``None`` if unknown.

    ORT's CUDA arena keeps what it allocated, so the figure after the timed runs is the peak of
    the arena, which is what a deployment has to provision.
    """
    pid = os.getpid() if pid is None else pid
    try:
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
        try:
            total = 0
            for i in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    if proc.pid == pid and proc.usedGpuMemory:
                        total += proc.usedGpuMemory
            return total / 2**20
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # pynvml missing or no driver: try the command-line tool
        pass
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    used = [float(m) for p, m in (line.split(",") for line in out.strip().splitlines() if "," in line) if int(p) == pid]
    return sum(used) if used else None

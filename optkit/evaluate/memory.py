"""Peak RSS of one variant, measured in a fresh process so no other model's memory pollutes it.

Run as ``python -m optkit.evaluate.memory --format onnx --path DIR --batch 1 --seq 128``; prints
one JSON line. The process imports only what its format needs (an ONNX probe never imports
torch), records its RSS before loading the model, then loads and runs the model, and reports
the kernel's high-water mark (``ru_maxrss``), which cannot miss a short spike as polling could.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from optkit.tasks import Task, get_task

__all__ = ["measure_peak_rss"]

_MB = 1024 * 1024


def measure_peak_rss(
    path: Path,
    fmt: str,
    batch: int,
    seq: int,
    *,
    runs: int = 10,
    threads: int | None = None,
    timeout: float = 600,
    provider: str = "CPUExecutionProvider",
    provider_options: dict[str, str] | None = None,
    task: Task | None = None,
) -> dict[str, Any]:
    """Spawn the probe; returns its figures, or ``{"error": why}`` (reported as 'not measured: why').

    The probe's session gets ``provider_options`` (the options the timed session had). Where the
    provider table says the provider's memory is read with NVML (CUDA, TensorRT), the probe also
    reports the GPU memory its process holds after the runs (``gpu_peak_mb``, from pynvml or
    nvidia-smi), or why it could not.
    """
    cmd = [
        sys.executable,
        "-m",
        "optkit.evaluate.memory",
        "--format",
        fmt,
        "--path",
        str(path),
        "--batch",
        str(batch),
        "--seq",
        str(seq),
        "--runs",
        str(runs),
    ]
    if threads:
        cmd += ["--threads", str(threads)]
    if fmt == "onnx":
        cmd += ["--provider", provider]
        if provider_options:
            cmd += ["--provider-options", json.dumps(provider_options)]
    else:
        cmd += ["--auto-model", (task or get_task("text-classification")).auto_model]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"memory probe timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"memory probe failed (exit {proc.returncode}): {last[:200]}"}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"memory probe printed no result: {proc.stdout[-200:]!r}"}


def _rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _peak_rss_bytes() -> int:
    """This process's RSS high-water mark.

    ``VmHWM`` belongs to the address space, which exec replaces; ``ru_maxrss`` does not reset on
    exec on Linux, so a probe spawned from a large parent would report the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # pragma: no cover - not Linux


def _probe(args: argparse.Namespace) -> dict[str, Any]:
    if args.format == "onnx":
        import onnxruntime as ort

        from optkit.evaluate.inputs import synthetic_feed, vocab_size_near

        # a folder holding model.onnx (an optkit artifact) or any .onnx file (optkit bench)
        model_file = Path(args.path) / "model.onnx" if Path(args.path).is_dir() else Path(args.path)

        before = _rss_bytes()
        t0 = time.perf_counter()
        opts = ort.SessionOptions()
        opts.inter_op_num_threads = 1
        if args.threads:
            opts.intra_op_num_threads = args.threads
        options = json.loads(args.provider_options) if args.provider_options else {}
        requested: Any = (args.provider, options) if options else args.provider
        cpu = "CPUExecutionProvider"
        providers = [requested] if args.provider == cpu else [requested, cpu]
        session = ort.InferenceSession(str(model_file), opts, providers=providers)
        load_s = time.perf_counter() - t0
        feed = synthetic_feed(session, args.batch, args.seq, vocab_size_near(model_file))
        for _ in range(args.runs):
            session.run(None, feed)
    else:
        import numpy as np
        import torch
        import transformers

        vocab = json.loads((Path(args.path) / "config.json").read_text()).get("vocab_size", 1000)
        rng = np.random.default_rng(0)  # token values do not change memory use; only their count does
        ids = rng.integers(min(1000, vocab // 2), vocab, size=(args.batch, args.seq), dtype=np.int64)
        mask = np.ones_like(ids)

        if args.threads:
            torch.set_num_threads(args.threads)
        before = _rss_bytes()
        t0 = time.perf_counter()
        model = getattr(transformers, args.auto_model).from_pretrained(args.path).eval()
        load_s = time.perf_counter() - t0
        with torch.inference_mode():
            for _ in range(args.runs):
                model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    peak = _peak_rss_bytes()
    gpu: dict[str, Any] = {}
    if args.format == "onnx" and _reads_gpu_memory(args.provider):
        from optkit.evaluate.providers import gpu_memory_used_mb

        used = gpu_memory_used_mb()
        gpu = {"gpu_peak_mb": used} if used is not None else {"gpu_peak_mb": None, "gpu_note": "no pynvml/nvidia-smi"}
    return {
        **gpu,
        "rss_before_load_mb": before / _MB,
        "peak_rss_mb": peak / _MB,
        "model_rss_mb": (peak - before) / _MB,
        "load_s": load_s,
        "runs": args.runs,
    }


def _reads_gpu_memory(ort_name: str) -> bool:
    """Whether the provider table says this provider's sessions hold NVIDIA GPU memory worth reading."""
    from optkit.provider_names import provider_info

    info = provider_info(ort_name)
    return info is not None and info.gpu_memory == "nvml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--format", choices=["onnx", "torch"], required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--provider", default="CPUExecutionProvider")
    parser.add_argument("--provider-options", default=None, help="JSON object of the provider's options")
    parser.add_argument("--auto-model", default="AutoModelForSequenceClassification", help="torch: the task's class")
    args = parser.parse_args(argv)
    print(json.dumps(_probe(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

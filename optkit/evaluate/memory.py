"""Peak RSS of one variant, measured in a fresh process so no other model's memory pollutes it.

Run as ``python -m optkit.evaluate.memory --format onnx --path DIR --shapes 1x128,8x128``; prints
one JSON line. The process imports only what its format needs (an ONNX probe never imports
torch) once, then forks a child per shape that records its RSS before loading the model, loads
and runs it, and reports the kernel's high-water mark (``VmHWM``), which cannot miss a short spike
as polling could. One process per variant rather than per variant and shape saves an interpreter
start and the runtime's imports (seconds for torch + transformers) for every shape after the
first, while each figure stays what a fresh process would report: a forked child's mark starts at
its own RSS, not at its parent's or a sibling's peak.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optkit.tasks import Task, get_task

__all__ = ["measure_peak_rss", "measure_peak_rss_shapes"]

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
    """Spawn the probe for one shape; returns its figures, or ``{"error": why}`` (reported as 'not measured: why').

    The probe's session gets ``provider_options`` (the options the timed session had). Where the
    provider table says the provider's memory is read with NVML (CUDA, TensorRT), the probe also
    reports the GPU memory its process holds after the runs (``gpu_peak_mb``, from pynvml or
    nvidia-smi), or why it could not.
    """
    out = measure_peak_rss_shapes(
        path,
        fmt,
        [(batch, seq)],
        runs=runs,
        threads=threads,
        timeout=timeout,
        provider=provider,
        provider_options=provider_options,
        task=task,
    )
    return out[(batch, seq)]


def measure_peak_rss_shapes(
    path: Path,
    fmt: str,
    shapes: list[tuple[int, int]],
    *,
    runs: int = 10,
    threads: int | None = None,
    timeout: float = 600,
    provider: str = "CPUExecutionProvider",
    provider_options: dict[str, str] | None = None,
    task: Task | None = None,
) -> dict[tuple[int, int], dict[str, Any]]:
    """Peak memory at each (batch, seq), from one probe process per model where the OS allows.

    The probe imports the runtime once and forks a child per shape that loads and runs the model,
    so each figure is what a fresh process for that shape alone reports (see ``_in_child``) without
    paying the interpreter and the imports again. Without fork, the probe measures one shape and
    the rest get processes of their own. Each figure says how many shapes shared its probe
    (``shapes_in_process``). A failed probe gives ``{"error": why}`` for the shapes it had left.
    """
    left = list(dict.fromkeys(shapes))
    out: dict[tuple[int, int], dict[str, Any]] = {}
    while left:
        figures = _spawn(path, fmt, left, runs, threads, timeout, provider, provider_options, task)
        done = [(f.pop("batch"), f.pop("seq"), f) for f in figures.get("shapes", [])]
        done = [(b, s, f) for b, s, f in done if (b, s) in left]
        if "error" in figures or not done:
            out.update({bs: {"error": figures.get("error", "memory probe measured none of its shapes")} for bs in left})
            break
        for batch, seq, figure in done:
            out[(batch, seq)] = {**figure, "shapes_in_process": len(done)}
        left = [bs for bs in left if bs not in out]
    return out


def _spawn(
    path: Path,
    fmt: str,
    shapes: list[tuple[int, int]],
    runs: int,
    threads: int | None,
    timeout: float,
    provider: str,
    provider_options: dict[str, str] | None,
    task: Task | None,
) -> dict[str, Any]:
    """One probe process over ``shapes``: ``{"shapes": [figures...]}`` or ``{"error": why}``."""
    cmd = [sys.executable, "-m", "optkit.evaluate.memory", "--format", fmt, "--path", str(path)]
    cmd += ["--shapes", ",".join(f"{b}x{s}" for b, s in shapes), "--runs", str(runs)]
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
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        if not result["shapes"]:
            raise ValueError("no shapes")
        return result
    except (ValueError, IndexError, KeyError, TypeError):
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


def _load_onnx(args: argparse.Namespace) -> tuple[int, float, Callable[[int, int], None]]:
    """RSS before loading, load seconds, and a function that runs the session ``args.runs`` times at a shape."""
    import onnxruntime as ort

    from optkit.evaluate.inputs import image_size_near, synthetic_feed, vocab_size_near

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
    vocab = vocab_size_near(model_file)
    image = image_size_near(model_file)

    def run(batch: int, seq: int) -> None:
        feed = synthetic_feed(session, batch, seq, vocab, image=image)
        for _ in range(args.runs):
            session.run(None, feed)

    return before, load_s, run


def _load_torch(args: argparse.Namespace) -> tuple[int, float, Callable[[int, int], None]]:
    """As ``_load_onnx``, for a transformers folder loaded with the task's auto class."""
    import numpy as np
    import torch
    import transformers

    config = json.loads((Path(args.path) / "config.json").read_text())
    vocab = config.get("vocab_size", 1000)
    if args.threads:
        torch.set_num_threads(args.threads)
    before = _rss_bytes()
    t0 = time.perf_counter()
    model = getattr(transformers, args.auto_model).from_pretrained(args.path).eval()
    from optkit.passes.torch_transforms import finish_loading

    model = finish_loading(Path(args.path), model)  # a quantised torch variant is quantised again on load
    load_s = time.perf_counter() - t0

    if "num_channels" in config:  # an image model: pixel values at its processor's size
        from optkit.evaluate.inputs import image_size_near

        image = image_size_near(Path(args.path))
        assert image is not None  # a config with num_channels always gives a size

        def run_image(batch: int, seq: int) -> None:
            pixels = np.random.default_rng(0).standard_normal((batch, *image)).astype(np.float32)
            with torch.inference_mode():
                for _ in range(args.runs):
                    model(pixel_values=torch.from_numpy(pixels))

        return before, load_s, run_image

    def run(batch: int, seq: int) -> None:
        rng = np.random.default_rng(0)  # token values do not change memory use; only their count does
        ids = rng.integers(min(1000, vocab // 2), vocab, size=(batch, seq), dtype=np.int64)
        mask = np.ones_like(ids)
        with torch.inference_mode():
            for _ in range(args.runs):
                model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))

    return before, load_s, run


def _import_runtime(fmt: str) -> None:
    """The slow part of a probe (a second or two for onnxruntime, several for torch + transformers), paid once."""
    if fmt == "onnx":
        import onnxruntime  # noqa: F401

        import optkit.evaluate.inputs  # noqa: F401
    else:
        import torch  # noqa: F401
        import transformers  # noqa: F401


def _measure(args: argparse.Namespace, batch: int, seq: int) -> dict[str, Any]:
    """Load the model, run it ``args.runs`` times at one shape, and read this process's high-water mark."""
    before, load_s, run = (_load_onnx if args.format == "onnx" else _load_torch)(args)
    run(batch, seq)
    peak = _peak_rss_bytes()
    gpu: dict[str, Any] = {}
    if args.format == "onnx" and _reads_gpu_memory(args.provider):
        from optkit.evaluate.providers import gpu_memory_used_mb

        used = gpu_memory_used_mb()
        gpu = {"gpu_peak_mb": used} if used is not None else {"gpu_peak_mb": None, "gpu_note": "no pynvml/nvidia-smi"}
    return {
        "batch": batch,
        "seq": seq,
        **gpu,
        "rss_before_load_mb": before / _MB,
        "peak_rss_mb": peak / _MB,
        "model_rss_mb": (peak - before) / _MB,
        "load_s": load_s,
        "runs": args.runs,
    }


def _in_child(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``fn()`` in a forked child; its JSON comes back through a pipe, a crash as ``{"error": why}``.

    A child's high-water mark starts at its RSS at the fork (the kernel sets it so when it copies
    the address space), not at the parent's past peak, so each child measures what a fresh process
    that had already imported the runtime would. The parent never loads a model or runs a thread
    pool, so forking it is safe.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        os.close(r)
        try:
            payload, code = json.dumps(fn()), 0
        except BaseException as e:
            payload, code = json.dumps({"error": f"memory probe failed: {type(e).__name__}: {e}"[:300]}), 1
        with os.fdopen(w, "w") as fh:
            fh.write(payload)
        os._exit(code)
    os.close(w)
    with os.fdopen(r) as fh:
        data = fh.read()
    _, status = os.waitpid(pid, 0)
    try:
        return json.loads(data)
    except ValueError:
        return {"error": f"memory probe failed: its child ended without a result (wait status {status})"}


def _can_fork() -> bool:
    return hasattr(os, "fork") and sys.platform.startswith("linux")


def _probe(args: argparse.Namespace) -> dict[str, Any]:
    """Import the runtime once, then load and run the model in a fresh forked child per shape.

    Where fork is not available (or not trusted to reset the high-water mark: not Linux), only the
    first shape is measured, in this process, and the caller starts another process for the rest.
    """
    shapes = [tuple(int(x) for x in part.split("x")) for part in args.shapes.split(",")]
    if not _can_fork():
        return {"shapes": [_measure(args, *shapes[0])]}
    _import_runtime(args.format)
    results = []
    for batch, seq in shapes:
        figure = _in_child(lambda batch=batch, seq=seq: _measure(args, batch, seq))
        results.append({"batch": batch, "seq": seq, **figure})
    return {"shapes": results}


def _reads_gpu_memory(ort_name: str) -> bool:
    """Whether the provider table says this provider's sessions hold NVIDIA GPU memory worth reading."""
    from optkit.provider_names import provider_info

    info = provider_info(ort_name)
    return info is not None and info.gpu_memory == "nvml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--format", choices=["onnx", "torch"], required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--shapes", default="1x128", help="BATCHxSEQ[,BATCHxSEQ...], measured in this order")
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

"""``optkit bench MODEL.onnx``: the evaluation harness alone, for a model the user brings.

Same providers (with placement checks), the same interleaved timing, statistics and memory
probe as ``optkit run``, on synthetic inputs of each requested shape. The result is a schema-2
report of kind ``bench``, which ``optkit compare`` reads like any other.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from optkit.errors import EvaluationError, RecipeError
from optkit.progress import Progress, SilentProgress
from optkit.recipe import EvaluateSpec, LatencySpec, Shape, format_validation_error

__all__ = ["bench_model", "bench_settings", "render_bench_markdown", "write_bench_reports"]


def bench_model(
    model: str | Path,
    *,
    providers: list[str] | None = None,
    shapes: list[Shape] | None = None,
    latency: LatencySpec | None = None,
    memory: bool = True,
    strict_providers: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Time and measure one ONNX file on each provider and shape; returns the report dict.

    Example:
        >>> report = bench_model("model.onnx", shapes=[Shape(batch=1, seq=128)])  # doctest: +SKIP
        >>> report["results"][0]["latency"]["p50_ms"]  # doctest: +SKIP
        34.1
    """
    from optkit.api import REPORT_SCHEMA_VERSION
    from optkit.envinfo import available_cpus, collect_environment, cpu_flags
    from optkit.evaluate.contention import watch_other_cpu
    from optkit.evaluate.explain import explain_onnx
    from optkit.evaluate.inputs import synthetic_feed, vocab_size_near
    from optkit.evaluate.latency import summarize, time_interleaved
    from optkit.evaluate.memory import measure_peak_rss
    from optkit.evaluate.predict import create_session
    from optkit.evaluate.providers import (
        GPU_PROVIDERS,
        io_binding_runner,
        ort_provider_name,
        placement_problem,
        profile_placement,
        provider_status,
    )

    path = Path(model)
    if not path.is_file():
        raise EvaluationError(f"model file {str(path)!r} does not exist; pass the path of an .onnx file")
    progress = progress or SilentProgress()
    providers = providers or ["cpu"]
    shapes = shapes or [Shape(batch=1, seq=128)]
    lat = latency or LatencySpec()
    threads = lat.threads or available_cpus()
    vocab = vocab_size_near(path)
    name = path.stem if path.stem != "model" else path.parent.name or "model"
    for provider in providers:
        provider_status(provider, strict=strict_providers)

    results: list[dict[str, Any]] = []
    for provider in providers:
        reason = provider_status(provider)
        base = {"variant": name, "provider": provider}
        if reason is not None:
            results += [{**base, "batch": s.batch, "seq": s.seq, "status": f"not measured: {reason}"} for s in shapes]
            continue
        ort_name = ort_provider_name(provider)
        session = create_session(path, provider, threads)
        first = synthetic_feed(session, shapes[0].batch, shapes[0].seq, vocab)
        with tempfile.TemporaryDirectory(prefix="optkit-profile-") as tmp:
            placement = profile_placement(
                lambda prefix, p=provider: create_session(path, p, threads, profile_prefix=prefix),
                first,
                ort_name,
                Path(tmp),
            )
        problem = placement_problem(provider, placement)
        if problem is not None and strict_providers:
            raise EvaluationError(f"{path.name} on {provider}: {problem}")
        for shape in shapes:
            row: dict[str, Any] = {**base, "batch": shape.batch, "seq": shape.seq, "placement": placement}
            if problem is not None:
                results.append({**row, "status": f"not measured: {problem}"})
                continue
            feed = synthetic_feed(session, shape.batch, shape.seq, vocab)
            on_gpu = ort_name in GPU_PROVIDERS
            run = io_binding_runner(session, feed, "cuda") if on_gpu else (lambda f=feed, s=session: s.run(None, f))
            timing: dict[str, Any] = {}
            contention: dict[str, Any] = {}
            with (
                progress.task(f"latency {provider} b{shape.batch}×s{shape.seq}", total=lat.runs) as advance,
                watch_other_cpu(contention),
            ):
                samples = time_interleaved(
                    {name: run},
                    warmup=lat.warmup,
                    runs=lat.runs,
                    block=lat.block,
                    on_round=lambda n: advance(n),
                    time_budget_s=lat.time_budget_s,
                    record=timing,
                )[name]
            row.update(
                status="measured",
                latency=summarize(samples, shape.batch),
                samples_ms=[round(x, 4) for x in samples],
                warmup_runs=timing["warmup_runs"][name],
                threads=threads,
                io_binding=on_gpu,
                speedup_vs_reference=1.0,
            )
            if contention:
                row["contention"] = contention
            if memory:
                row["memory"] = measure_peak_rss(
                    path, "onnx", shape.batch, shape.seq, threads=threads, provider=ort_name
                )
            results.append(row)

    size = sum(f.stat().st_size for f in path.parent.iterdir() if f == path or f.name.startswith(path.name + "."))
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "kind": "bench",
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": str(path),
        "environment": collect_environment(threads),
        "threads": threads,
        "reference": name,
        "settings": {"providers": providers, "shapes": [s.model_dump() for s in shapes], "latency": lat.model_dump()},
        "variants": {
            name: {
                "format": "onnx",
                "runtime": "onnxruntime",
                "size_bytes": size,
                "explain": explain_onnx(path, cpu_flags(), threads),
            }
        },
        "results": results,
        "notes": [],
    }


def bench_settings(
    providers: Sequence[str],
    batches: Sequence[int],
    seqs: Sequence[int],
    warmup: str,
    runs: int,
    time_budget_s: float | None = None,
    threads: int | None = None,
) -> EvaluateSpec:
    """Command-line options through the recipe's own models, so limits and messages match a recipe's."""
    latency: dict[str, Any] = {"warmup": int(warmup) if warmup.isdigit() else warmup, "runs": runs}
    latency.update({k: v for k, v in (("time_budget_s", time_budget_s), ("threads", threads)) if v is not None})
    raw = {"providers": list(providers), "shapes": {"batch": list(batches), "seq": list(seqs)}, "latency": latency}
    try:
        return EvaluateSpec.model_validate(raw)
    except ValidationError as e:
        raise RecipeError(format_validation_error(e, "optkit bench options")) from None


def render_bench_markdown(report: dict[str, Any]) -> str:
    """One line per provider and shape: p50 with its CI, p90, p99, CV, throughput, peak RSS, placement."""
    lines = [
        f"# optkit bench: {report['model']}",
        "",
        f"{report['threads']} threads on {report['environment']['cpu']['model']} "
        f"({', '.join(report['environment']['cpu']['isa']) or 'no AVX2'}).",
        "",
        "| provider | shape | p50 ms [95% CI] | p90 ms | p99 ms | robust CV | rows/s | peak RSS MB | on provider |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        shape = f"b{r['batch']}×s{r['seq']}"
        if r["status"] != "measured":
            lines.append(f"| {r['provider']} | {shape} | {r['status']} | | | | | | |")
            continue
        s = r["latency"]
        lo, hi = s["p50_ci95_ms"]
        peak = (r.get("memory") or {}).get("peak_rss_mb")
        pl = r["placement"]
        placed = (
            f"{1 - pl['fallback_share']:.0%} of {pl['total_nodes']} nodes" if pl["fallback_share"] is not None else "–"
        )
        lines.append(
            f"| {r['provider']} | {shape} | {s['p50_ms']:.2f} [{lo:.2f}–{hi:.2f}] | {s['p90_ms']:.2f} "
            f"| {s['p99_ms']:.2f} | {s['robust_cv']:.3f}{' (noisy)' if s['noisy'] else ''} "
            f"| {s['throughput_per_s']:.1f} "
            f"| {'–' if peak is None else f'{peak:.0f}'} | {placed} |"
        )
    return "\n".join(lines) + "\n"


def write_bench_reports(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """report.json and report.md (and report.html) under ``out_dir``; written atomically."""
    from optkit.cache import write_atomic
    from optkit.reports.html import render_html

    out_dir = Path(out_dir)
    paths = [out_dir / "report.json", out_dir / "report.md", out_dir / "report.html"]
    write_atomic(paths[0], json.dumps(report, indent=2, default=str) + "\n")
    write_atomic(paths[1], render_bench_markdown(report))
    write_atomic(paths[2], render_html(report))
    return paths

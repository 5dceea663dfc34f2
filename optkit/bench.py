"""``optkit bench MODEL.onnx``: the evaluation harness alone, for a model the user brings.

Same providers (with placement checks), the same interleaved timing, statistics and memory
probe as ``optkit run``, on synthetic inputs of each requested shape. The result is a schema-2
report of kind ``bench``, which ``optkit compare`` reads like any other.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from optkit.cache import write_files_atomic
from optkit.envinfo import available_cpus, collect_environment, cpu_flags
from optkit.errors import EvaluationError, RecipeError
from optkit.evaluate.explain import explain_onnx
from optkit.evaluate.inputs import image_size_near, synthetic_feed, vocab_size_near
from optkit.evaluate.providers import provider_status
from optkit.evaluate.suite import Subject, measure_provider
from optkit.progress import Progress, SilentProgress
from optkit.recipe import EvaluateSpec, LatencySpec, Shape, format_validation_error, shape_label
from optkit.redact import redact
from optkit.reports.html import render_html
from optkit.reports.markdown import provider_options_lines
from optkit.reports.model import REPORT_SCHEMA_VERSION, check_report

__all__ = ["bench_model", "bench_settings", "render_bench_markdown", "write_bench_reports"]


def bench_model(
    model: str | Path,
    *,
    providers: list[str] | None = None,
    provider_options: dict[str, dict[str, str]] | None = None,
    shapes: list[Shape] | None = None,
    latency: LatencySpec | None = None,
    memory: bool = True,
    strict_providers: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Time and measure one ONNX file on each provider and shape; returns the report dict (redacted).

    Example:
        >>> report = bench_model("model.onnx", shapes=[Shape(batch=1, seq=128)])  # doctest: +SKIP
        >>> report["results"][0]["latency"]["p50_ms"]  # doctest: +SKIP
        34.1
    """
    path = Path(model)
    if not path.is_file():
        raise EvaluationError(f"model file {str(path)!r} does not exist; pass the path of an .onnx file")
    progress = progress or SilentProgress()
    providers = providers or ["cpu"]
    shapes = shapes or [Shape(batch=1, seq=128)]
    lat = latency or LatencySpec()
    threads = lat.threads or available_cpus()
    name = path.stem if path.stem != "model" else path.parent.name or "model"
    for provider in providers:  # a missing provider fails now under --strict-providers, not after timing others
        provider_status(provider, strict=strict_providers)
    vocab, image = vocab_size_near(path), image_size_near(path)
    shapes = _at_image_size(shapes, image)
    subject = Subject(
        name=name,
        format="onnx",
        path=path,
        memory_path=path,
        inputs=lambda shape, session: synthetic_feed(session, shape.batch, shape.seq, vocab, image=image),
    )
    results: list[dict[str, Any]] = []
    for provider in providers:
        results += measure_provider(
            [subject],
            provider,
            shapes,
            lat,
            threads=threads,
            memory=memory,
            reference=name,
            progress=progress,
            strict=strict_providers,
            options=(provider_options or {}).get(provider),
        )
    size = sum(f.stat().st_size for f in path.parent.iterdir() if f == path or f.name.startswith(path.name + "."))
    return redact(
        {
            "schema_version": REPORT_SCHEMA_VERSION,
            "kind": "bench",
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "model": str(path),
            "environment": collect_environment(threads),
            "threads": threads,
            "reference": name,
            "settings": {
                "providers": providers,
                "provider_options": provider_options or {},
                "shapes": [s.model_dump() for s in shapes],
                "latency": lat.model_dump(),
            },
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
    )


def _at_image_size(shapes: list[Shape], image: tuple[int, int, int] | None) -> list[Shape]:
    """An image model is timed at every asked batch, at the size its config and processor give (not ``seq``)."""
    if image is None:
        return shapes
    return list(dict.fromkeys(Shape(batch=s.batch, height=image[1], width=image[2]) for s in shapes))


def bench_settings(
    providers: Sequence[str],
    batches: Sequence[int],
    seqs: Sequence[int],
    warmup: str,
    runs: int,
    time_budget_s: float | None = None,
    threads: int | None = None,
    precision: str | float | None = None,
    provider_options: Sequence[str] = (),
) -> EvaluateSpec:
    """Command-line options through the recipe's own models, so limits and messages match a recipe's.

    ``provider_options`` are ``PROVIDER:KEY=VALUE`` words (``openvino:precision=FP16``), checked
    against the provider table like a recipe's ``provider_options``.
    """
    latency: dict[str, Any] = {"warmup": int(warmup) if warmup.isdigit() else warmup, "runs": runs}
    options = (("time_budget_s", time_budget_s), ("threads", threads), ("precision", precision))
    latency.update({k: v for k, v in options if v is not None})
    raw = {
        "providers": list(providers),
        "provider_options": _parse_provider_options(provider_options),
        "shapes": {"batch": list(batches), "seq": list(seqs)},
        "latency": latency,
    }
    try:
        return EvaluateSpec.model_validate(raw)
    except ValidationError as e:
        raise RecipeError(format_validation_error(e, "optkit bench options")) from None


def _parse_provider_options(words: Sequence[str]) -> dict[str, dict[str, str]]:
    """``["openvino:precision=FP16", ...]`` as ``{"openvino": {"precision": "FP16"}}``, or a RecipeError."""
    out: dict[str, dict[str, str]] = {}
    for word in words:
        provider, _, rest = word.partition(":")
        key, eq, value = rest.partition("=")
        if not provider or not key or not eq:
            raise RecipeError(
                f"optkit bench options: provider option {word!r} is not PROVIDER:KEY=VALUE "
                f"(e.g. openvino:precision=FP16)"
            )
        out.setdefault(provider, {})[key] = value
    return out


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
        shape = shape_label(r)
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
    options = provider_options_lines(report["results"])
    return "\n".join([*lines, "", *options] if options else lines) + "\n"


def write_bench_reports(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """report.json, report.md and report.html under ``out_dir``: redacted, staged and renamed together, as
    ``optkit run`` writes its reports, so an interrupted bench leaves the previous ones whole."""
    report = redact(report)
    out_dir = Path(out_dir)
    check_report(report, f"the bench report for {str(out_dir)!r}")
    files = {
        out_dir / "report.json": json.dumps(report, indent=2, default=str) + "\n",
        out_dir / "report.md": render_bench_markdown(report),
        out_dir / "report.html": render_html(report),
    }
    write_files_atomic(files)
    return list(files)

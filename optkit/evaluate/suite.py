"""The one measurement path for ``optkit run`` and ``optkit bench``: speed and memory on one provider.

For each subject (a variant of a run, or the file given to bench): is the provider there, where
did the session's nodes really run, then every shape timed with all subjects interleaved, the
share of the CPUs other processes took meanwhile, statistics with intervals, and peak memory in
a fresh process. Whoever calls it decides only what the subjects are and what their inputs hold.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optkit.errors import EvaluationError
from optkit.evaluate.contention import watch_other_cpu
from optkit.evaluate.latency import summarize, time_interleaved
from optkit.evaluate.memory import measure_peak_rss_shapes
from optkit.evaluate.predict import create_session
from optkit.evaluate.providers import (
    io_binding_runner,
    ort_provider_name,
    placement_problem,
    profile_placement,
    provider_status,
)
from optkit.evaluate.traffic import TrafficFeeds, time_requests, traffic_stats
from optkit.progress import Progress
from optkit.provider_names import provider_info, session_options
from optkit.recipe import LatencySpec, Shape, TrafficShape
from optkit.tasks import Task
from optkit.testhooks import slowed

__all__ = ["Subject", "measure_provider"]

CPU = "CPUExecutionProvider"


@dataclass(frozen=True)
class Subject:
    """One model to time.

    ``inputs(shape, session)`` gives one batch of that shape: the feed of the ONNX ``session``, or
    numpy arrays by input name for a torch model (``session`` is None); for a ``TrafficShape`` it
    gives the ``TrafficFeeds`` of its requests. ``load_torch`` returns the torch model; torch
    subjects are timed on the CPU provider only.
    """

    name: str
    format: str  # "onnx" or "torch"
    path: Path  # the .onnx file, or the torch folder
    memory_path: Path  # what the memory probe loads: the artifact folder, or the file itself
    inputs: Callable[[Shape, Any], dict[str, Any]]
    load_torch: Callable[[], Any] | None = None


def measure_provider(
    subjects: list[Subject],
    provider: str,
    shapes: list[Shape],
    latency: LatencySpec,
    *,
    threads: int,
    memory: bool,
    reference: str,
    progress: Progress,
    strict: bool = False,
    task: Task | None = None,
    options: dict[str, str] | None = None,
    traffic: list[TrafficShape] | None = None,
    traffic_out: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One row per subject and shape; a missing provider or a mostly-fallen-back session is 'not measured: why'.

    ``options`` (the recipe's provider options) reach every session here: the timed one, the
    profiled one that checks placement, and the memory probe's. Each row records what the
    provider really got (the table's defaults, the options, the thread count). Each ``traffic``
    shape is timed after the fixed ones, on the same sessions; its group goes to ``traffic_out``.
    """
    effective = session_options(provider, options, threads)
    reason = provider_status(provider, strict=strict)
    if reason is not None:
        progress.log(f"[yellow]{provider}[/]: not measured: {reason}")
        if traffic_out is not None:
            why = {s.name: reason for s in subjects}
            traffic_out += [_traffic_group(t, provider, None, why, {}, {}, {}) for t in traffic or []]
        return [_row(s.name, provider, shape, reason=reason, options=effective) for s in subjects for shape in shapes]
    ort_name = ort_provider_name(provider)
    timed_subjects = [s for s in subjects if s.name not in latency.skip]
    runners, skipped, placements = _prepare(timed_subjects, provider, shapes[0], threads, progress, strict, options)
    skipped |= {s.name: UNTIMED for s in subjects if s.name in latency.skip}
    rows: list[dict[str, Any]] = []
    for shape in shapes:
        timed = {n: make(shape) for n, make in runners.items()}
        samples, timing, contention = _time(timed, provider, shape, latency, progress) if timed else ({}, {}, {})
        stats = {n: summarize(s, shape.batch) for n, s in samples.items()}
        ref_p50 = stats[reference]["p50_ms"] if reference in stats else None
        for subject in subjects:
            name, placement = subject.name, placements.get(subject.name)
            if name in skipped:
                row = _row(name, provider, shape, reason=skipped[name], placement=placement, options=effective)
                rows.append(row | ({"untimed": True} if name in latency.skip else {}))
                continue
            stats[name].update(_stop_fields(latency, timing))
            row = _row(
                name, provider, shape, latency=stats[name], threads=threads, placement=placement, options=effective
            )
            row["samples_ms"] = [round(x, 4) for x in samples[name]]
            row["warmup_runs"] = timing["warmup_runs"][name]
            if contention:
                row["contention"] = contention
            row["io_binding"] = _device(ort_name) is not None and subject.format == "onnx"
            row["speedup_vs_reference"] = ref_p50 / stats[name]["p50_ms"] if ref_p50 else None
            rows.append(row)
    for t in traffic or []:
        group = _measure_traffic(subjects, runners, skipped, provider, t, latency, reference, progress)
        if traffic_out is not None:
            traffic_out.append(group)
    if memory:
        live = [s for s in subjects if s.name not in skipped]
        _measure_memory(live, rows, shapes, ort_name, effective, threads, task, progress)
    return rows


def _measure_traffic(
    subjects: list[Subject],
    runners: dict[str, Callable[[Shape], Callable[[], Any]]],
    skipped: dict[str, str],
    provider: str,
    shape: TrafficShape,
    latency: LatencySpec,
    reference: str,
    progress: Progress,
) -> dict[str, Any]:
    """Every timed subject replays the same requests, interleaved; per-request stats and the lengths replayed."""
    makers: dict[str, Any] = runners
    timed = {n: makers[n](shape) for n in runners}
    feeds = next((s.inputs(shape, None) for s in subjects if s.name not in skipped), None)
    if not timed or feeds is None:
        return _traffic_group(shape, provider, None, skipped, {}, {}, {})
    timing: dict[str, Any] = {}
    contention: dict[str, Any] = {}
    label = f"latency {provider} {shape.label}: {feeds.count} requests ({len(timed)} interleaved)"
    with progress.task(label, total=feeds.count) as advance, watch_other_cpu(contention):
        samples = time_requests(
            timed, feeds.count, warmup=latency.warmup, block=latency.block, on_round=advance, record=timing
        )
    stats = traffic_stats(samples, reference if reference in samples else None, shape.batch)
    for name, row in stats.items():
        row.update(samples_ms=[round(x, 4) for x in samples[name]], warmup_runs=timing["warmup_runs"][name])
    group = _traffic_group(shape, provider, feeds, skipped, stats, timing, contention)
    group["reference"] = reference if reference in samples else None
    return group


def _traffic_group(
    shape: TrafficShape,
    provider: str,
    feeds: TrafficFeeds | None,
    skipped: dict[str, str],
    stats: dict[str, dict[str, Any]],
    timing: dict[str, Any],
    contention: dict[str, Any],
) -> dict[str, Any]:
    """One traffic shape on one provider: what was replayed, and a row per variant (measured or why not)."""
    rows = [{"variant": n, "status": "measured", **row} for n, row in stats.items()]
    rows += [{"variant": n, "status": f"not measured: {why}"} for n, why in skipped.items()]
    group: dict[str, Any] = {
        "provider": provider,
        "shape": shape.model_dump(mode="json"),
        "label": shape.label,
        "rows": rows,
    }
    if feeds is not None:
        group["lengths"] = feeds.describe()
    if timing:
        group["rounds"] = timing["rounds"]
    if contention:
        group["contention"] = contention
    return group


# The status of a row the recipe chose not to time; compare reads the row's ``untimed`` flag, not this text.
UNTIMED = "left untimed on purpose (evaluate.latency.skip)"


def _stop_fields(latency: LatencySpec, timing: dict[str, Any]) -> dict[str, Any]:
    """What ended this shape's timing, and the target it had: readers of a row see why it has the runs it has."""
    return {
        "stopped_by": timing["stopped_by"],
        "precision_target": latency.target,
        "min_runs": latency.floor if latency.adaptive or latency.time_budget_s else None,
        "max_runs": latency.cap,
        "rounds": timing["rounds"],
    }


# Memory probes in flight at once. Peak RSS is a count of pages, not a speed, so probes may share the
# CPUs; most of a probe is single-threaded imports and loading, which two at a time overlap.
_PROBES_AT_ONCE = 2


def _measure_memory(
    subjects: list[Subject],
    rows: list[dict[str, Any]],
    shapes: list[Shape],
    ort_name: str,
    options: dict[str, str],
    threads: int,
    task: Task | None,
    progress: Progress,
) -> None:
    """Peak memory of each subject at every shape: one probe process per subject, two probes at a time.

    Only after all timing is done: a probe running beside a timed variant would slow it.
    """
    from concurrent.futures import ThreadPoolExecutor

    by_key = {(r["variant"], r["batch"], r["seq"]): r for r in rows if r["status"] == "measured"}
    pairs = [(s.batch, s.seq) for s in shapes]

    def probe(subject: Subject) -> dict[tuple[int, int], dict[str, Any]]:
        return measure_peak_rss_shapes(
            subject.memory_path,
            subject.format,
            pairs,
            threads=threads,
            provider=ort_name,
            provider_options=options,
            task=task,
        )

    label = (
        f"peak RSS of {len(subjects)} variant(s) at {len(shapes)} shape(s) (a process each, {_PROBES_AT_ONCE} at once)"
    )
    with progress.task(label, total=len(subjects)) as adv, ThreadPoolExecutor(_PROBES_AT_ONCE) as pool:
        for subject, figures in zip(subjects, pool.map(probe, subjects), strict=True):
            adv(1)
            for (batch, seq), figure in figures.items():
                row = by_key.get((subject.name, batch, seq))
                if row is not None:
                    row["memory"] = figure


def _prepare(
    subjects: list[Subject],
    provider: str,
    first: Shape,
    threads: int,
    progress: Progress,
    strict: bool,
    options: dict[str, str] | None = None,
) -> tuple[dict[str, Callable[[Shape], Callable[[], Any]]], dict[str, str], dict[str, dict[str, Any]]]:
    """A runner maker per subject that can be timed here, why the others cannot, and where ONNX nodes ran."""
    ort_name = ort_provider_name(provider)
    runners: dict[str, Callable[[Shape], Callable[[], Any]]] = {}
    skipped: dict[str, str] = {}
    placements: dict[str, dict[str, Any]] = {}
    for subject in subjects:
        if subject.format == "torch":
            if ort_name != CPU:
                skipped[subject.name] = "PyTorch variants are timed on the CPU only"
                continue
            runners[subject.name] = _torch_runner(subject, threads)
            continue
        session = create_session(subject.path, provider, threads, options=options)
        feed = subject.inputs(first, session)
        placements[subject.name] = _placement(subject, provider, threads, session, feed, options)
        problem = placement_problem(provider, placements[subject.name])
        if problem is not None:
            if strict:
                raise EvaluationError(f"{subject.name!r} on {provider}: {problem}")
            progress.log(f"[yellow]{subject.name} on {provider}[/]: not measured: {problem}")
            skipped[subject.name] = problem
            continue
        device_id = int(session_options(provider, options).get("device_id", 0))
        runners[subject.name] = _onnx_runner(subject, session, _device(ort_name), device_id)
    return runners, skipped, placements


def _time(
    runners: dict[str, Callable[[], Any]], provider: str, shape: Shape, lat: LatencySpec, progress: Progress
) -> tuple[dict[str, list[float]], dict[str, Any], dict[str, Any]]:
    """Every runner timed interleaved, with the CPU share others took meanwhile."""
    timing: dict[str, Any] = {}
    contention: dict[str, Any] = {}
    label = f"latency {provider} {shape.label} ({len(runners)} interleaved)"
    if lat.adaptive:
        label += f" until ±{lat.target:.1%}"
    with progress.task(label, total=lat.cap) as advance, watch_other_cpu(contention):
        samples = time_interleaved(
            runners,
            warmup=lat.warmup,
            runs=lat.cap,
            block=lat.block,
            on_round=lambda n: advance(n),
            time_budget_s=lat.time_budget_s,
            min_runs=lat.floor,
            precision=lat.target,
            record=timing,
        )
    return samples, timing, contention


def _placement(
    subject: Subject,
    provider: str,
    threads: int,
    session: Any,
    feed: dict[str, Any],
    options: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Which provider ran each node, from one profiled run of a second session on the same file and options."""
    with tempfile.TemporaryDirectory(prefix="optkit-profile-") as tmp:
        placement = profile_placement(
            lambda prefix: create_session(subject.path, provider, threads, profile_prefix=prefix, options=options),
            feed,
            ort_provider_name(provider),
            Path(tmp),
        )
    placement["session_providers"] = list(session.get_providers())
    return placement


def _device(ort_name: str) -> str | None:
    """The device I/O binding keeps inputs and outputs on (the provider table's), or None: plain host arrays."""
    info = provider_info(ort_name)
    return info.io_binding if info else None


def _row(
    name: str,
    provider: str,
    shape: Shape,
    *,
    reason: str | None = None,
    latency: Any = None,
    threads: int = 0,
    placement: dict[str, Any] | None = None,
    options: dict[str, str] | None = None,
) -> dict[str, Any]:
    row: dict[str, Any] = {"variant": name, "provider": provider, "batch": shape.batch, "seq": shape.seq}
    if shape.is_image:
        row.update(height=shape.height, width=shape.width)
    if options:
        row["provider_options"] = dict(options)
    if reason is not None:
        row["status"] = f"not measured: {reason}"
    else:
        row.update(status="measured", latency=latency, threads=threads)
    if placement is not None:
        row["placement"] = placement
    return row


def _onnx_runner(
    subject: Subject, session: Any, device: str | None, device_id: int = 0
) -> Callable[[Shape], Callable[[], Any]]:
    """Plain ``session.run`` with host arrays; I/O binding with device-resident inputs where the table says so."""

    def make(shape: Shape) -> Callable[[], Any]:
        if isinstance(shape, TrafficShape):  # host arrays, request by request: what a server's call pays
            feeds: TrafficFeeds = subject.inputs(shape, session)  # type: ignore[assignment]
            return lambda i: session.run(None, feeds.feed(i % feeds.count))  # type: ignore[misc,return-value]
        feed = subject.inputs(shape, session)
        if device is not None:
            return io_binding_runner(session, feed, device, device_id)
        return slowed(subject.name, lambda: session.run(None, feed))

    return make


def _torch_runner(subject: Subject, threads: int) -> Callable[[Shape], Callable[[], Any]]:
    import torch

    torch.set_num_threads(threads)
    assert subject.load_torch is not None  # a torch subject always says how to load it
    model = subject.load_torch()

    def make(shape: Shape) -> Callable[[], Any]:
        if isinstance(shape, TrafficShape):
            feeds: TrafficFeeds = subject.inputs(shape, None)  # type: ignore[assignment]

            def request(i: int) -> Any:
                with torch.inference_mode():
                    tensors = {k: torch.from_numpy(v) for k, v in feeds.feed(i % feeds.count).items()}
                    return _first_output(model(**tensors))

            return request  # type: ignore[return-value]
        feed = {k: torch.from_numpy(v) for k, v in subject.inputs(shape, None).items()}

        def run() -> Any:
            with torch.inference_mode():
                return _first_output(model(**feed))

        return run

    return make


def _first_output(out: Any) -> Any:
    """Logits, or start logits: whatever the head's first output is (an HF ModelOutput); a task's own
    module (the sentence encoder) answers with ``.logits``."""
    return out.to_tuple()[0] if hasattr(out, "to_tuple") else out.logits

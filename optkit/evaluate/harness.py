"""The evaluation harness: every variant x provider x shape, measured in one run.

Accuracy is computed once per artifact and cached by (artifact key, data fingerprint); speed
and memory are always measured afresh, because a speed-up is only honest as a ratio of
figures taken in the same run on the same machine.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optkit.cache import ArtifactCache, cache_key
from optkit.envinfo import available_cpus, cpu_flags
from optkit.errors import EvaluationError
from optkit.evaluate.contention import watch_other_cpu
from optkit.evaluate.explain import explain_onnx
from optkit.evaluate.latency import summarize, time_interleaved
from optkit.evaluate.memory import measure_peak_rss
from optkit.evaluate.predict import create_session, onnx_logits, ort_feed, torch_logits
from optkit.evaluate.providers import (
    GPU_PROVIDERS,
    io_binding_runner,
    ort_provider_name,
    placement_problem,
    profile_placement,
    provider_status,
)
from optkit.passes.base import Artifact
from optkit.progress import Progress
from optkit.recipe import Recipe, Shape
from optkit.runner import BuildResult
from optkit.sources.data import Splits
from optkit.tasks import Task, get_task

__all__ = ["evaluate_build", "reference_variant"]


def reference_variant(recipe: Recipe) -> str:
    """Speed-ups are against this: the recipe's choice, else the first variant that only converts the
    baseline to ONNX (plain export: fp32 ONNX), else the baseline itself."""
    from optkit.passes.registry import get_pass

    if recipe.evaluate.reference:
        return recipe.evaluate.reference
    for name, steps in recipe.variants.items():
        last = get_pass(steps[-1].kind)
        if (last.input_format, last.output_format) == ("torch", "onnx"):
            return name
    return "baseline"


def evaluate_build(
    recipe: Recipe, build: BuildResult, cache: ArtifactCache, progress: Progress, *, strict_providers: bool = False
) -> dict[str, Any]:
    """Measure every artifact of ``build``; returns the ``variants`` and ``results`` parts of the report.

    With ``strict_providers`` a provider missing from this onnxruntime build, or a session whose
    nodes mostly fell back to the CPU, raises instead of becoming a 'not measured' row.
    """
    for provider in recipe.evaluate.providers:  # fail before minutes of accuracy passes, not after
        provider_status(provider, strict=strict_providers)
    splits = build.splits
    assert splits is not None  # build_artifacts always loads them
    names = list(build.artifacts)
    threads = recipe.evaluate.latency.threads or available_cpus()
    ref = reference_variant(recipe)

    task = get_task(recipe.model.task)
    preds = {n: _predictions(recipe, task, build.artifacts[n], splits, cache, progress, n) for n in names}
    variants: dict[str, Any] = {}
    for n in names:
        art = build.artifacts[n]
        m = task.scores(preds[n], splits.eval.labels, splits.label_names)
        agree = task.agreement(preds[n], preds["baseline"])
        variants[n] = {
            "format": art.format,
            "runtime": "pytorch" if art.format == "torch" else "onnxruntime",
            "chain": [s.model_dump(mode="json") for s in recipe.chain(n)],
            "artifact_key": art.key,
            "size_bytes": _size_on_disk(art),
            "eval_rows": len(splits.eval),
            **m,
            "agreement_with_baseline": agree,
            "structure": _structure(build, cache, n),
        }
    cpu = cpu_flags()
    for n in names:
        if build.artifacts[n].format == "onnx":
            variants[n]["explain"] = explain_onnx(build.artifacts[n].onnx_file, cpu, threads)
    primary = task.primary_metric
    for n in names:
        variants[n][f"{primary}_delta"] = variants[n][primary] - variants["baseline"][primary]
        variants[n]["size_ratio"] = variants[n]["size_bytes"] / variants[ref]["size_bytes"]

    results: list[dict[str, Any]] = []
    for provider in recipe.evaluate.providers:
        results += _measure_provider(recipe, build, provider, threads, splits, ref, progress, strict_providers)
    return {"variants": variants, "results": results, "reference": ref, "threads": threads, "task": _task_block(task)}


def _task_block(task: Task) -> dict[str, Any]:
    """What the report's readers need to show any task's metrics: their names, order and direction."""
    return {
        "name": task.name,
        "primary_metric": task.primary_metric,
        "metrics": [{"name": m, "higher_is_better": up} for m, up in task.metrics.items()],
    }


def _predictions(
    recipe: Recipe, task: Task, art: Artifact, splits: Splits, cache: ArtifactCache, progress: Progress, name: str
) -> list[Any]:
    """The task's predictions on the eval split (ONNX on the CPU EP); cached per artifact and data, as they
    are deterministic."""
    key = cache_key({"artifact": art.key, "data": splits.fingerprint, "max_length": recipe.data.max_length})
    cached = cache.read_json(f"predictions-{key[:32]}.json")
    if isinstance(cached, list) and len(cached) == len(splits.eval):
        progress.log(f"  accuracy of {name}: cached predictions")
        return cached
    texts, bs, max_len = splits.eval.texts, recipe.evaluate.batch_size, recipe.data.max_length
    with progress.task(f"accuracy of {name} ({len(texts)} eval rows)", total=len(texts)) as advance:
        if art.format == "onnx":
            logits = onnx_logits(create_session(art.onnx_file), _tokenizer(art.path), texts, max_len, bs, advance)
        else:
            model, tokenizer = _load_torch(art, task)
            logits = torch_logits(model, tokenizer, texts, max_len, bs, advance)
    task.check_outputs(logits, splits.label_names, name)
    out = task.predictions(logits)
    cache.write_json(f"predictions-{key[:32]}.json", out)
    return out


def _measure_provider(
    recipe: Recipe,
    build: BuildResult,
    provider: str,
    threads: int,
    splits: Splits,
    ref: str,
    progress: Progress,
    strict: bool = False,
) -> list[dict[str, Any]]:
    """Rows for one provider; unavailable or mostly-fallen-back sessions become 'not measured: why'."""
    ort_name = ort_provider_name(provider)
    task = get_task(recipe.model.task)
    shapes = recipe.evaluate.shapes
    reason = provider_status(provider, strict=strict)
    if reason is not None:
        progress.log(f"[yellow]{provider}[/]: not measured: {reason}")
        return [_row(n, provider, s, reason=reason) for n in build.artifacts for s in shapes]

    first_inputs = _shape_inputs(build.artifacts, splits, shapes[0])
    loaded: dict[str, Callable[[dict[str, Any]], Callable[[], Any]]] = {}
    skipped: dict[str, str] = {}
    placements: dict[str, dict[str, Any]] = {}
    for name, art in build.artifacts.items():
        if art.format == "torch":
            if ort_name != "CPUExecutionProvider":
                skipped[name] = "PyTorch variants are timed on the CPU only"
                continue
            loaded[name] = _torch_runner(art, threads, task)
            continue
        session = create_session(art.onnx_file, provider, threads)
        placements[name] = _placement(art, provider, threads, session, first_inputs[name])
        problem = placement_problem(provider, placements[name])
        if problem is not None:
            if strict:
                raise EvaluationError(f"variant {name!r} on {provider}: {problem}")
            progress.log(f"[yellow]{name} on {provider}[/]: not measured: {problem}")
            skipped[name] = problem
            continue
        loaded[name] = _onnx_runner(session, _device(ort_name))

    lat = recipe.evaluate.latency
    rows: list[dict[str, Any]] = []
    for shape in shapes:
        inputs = _shape_inputs(build.artifacts, splits, shape)
        runners = {n: make(inputs[n]) for n, make in loaded.items()}
        timing: dict[str, Any] = {}
        contention: dict[str, Any] = {}
        with (
            progress.task(
                f"latency {provider} b{shape.batch}×s{shape.seq} ({len(runners)} variants interleaved)", total=lat.runs
            ) as advance,
            watch_other_cpu(contention),
        ):
            samples = time_interleaved(
                runners,
                warmup=lat.warmup,
                runs=lat.runs,
                block=lat.block,
                on_round=lambda n: advance(n),
                time_budget_s=lat.time_budget_s,
                record=timing,
            )
        stats = {n: summarize(s, shape.batch) for n, s in samples.items()}
        ref_p50 = stats[ref]["p50_ms"] if ref in stats else None
        for name in build.artifacts:
            if name in skipped:
                rows.append(_row(name, provider, shape, reason=skipped[name], placement=placements.get(name)))
                continue
            row = _row(name, provider, shape, latency=stats[name], threads=threads, placement=placements.get(name))
            row["samples_ms"] = [round(x, 4) for x in samples[name]]
            row["warmup_runs"] = timing["warmup_runs"][name]
            if contention:
                row["contention"] = contention
            row["io_binding"] = _device(ort_name) != "cpu" and build.artifacts[name].format == "onnx"
            row["speedup_vs_reference"] = ref_p50 / stats[name]["p50_ms"] if ref_p50 else None
            if recipe.evaluate.memory:
                art = build.artifacts[name]
                with progress.task(f"peak RSS of {name} b{shape.batch}×s{shape.seq} (own process)", total=1) as adv:
                    mem = measure_peak_rss(
                        art.path, art.format, shape.batch, shape.seq, threads=threads, provider=ort_name, task=task
                    )
                    adv(1)
                row["memory"] = mem
            rows.append(row)
    return rows


def _placement(art: Artifact, provider: str, threads: int, session: Any, enc: dict[str, Any]) -> dict[str, Any]:
    """Which provider ran each node, from one profiled run of a second session on the same file."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="optkit-profile-") as tmp:
        placement = profile_placement(
            lambda prefix: create_session(art.onnx_file, provider, threads, profile_prefix=prefix),
            ort_feed(session, enc),
            ort_provider_name(provider),
            Path(tmp),
        )
    placement["session_providers"] = list(session.get_providers())
    return placement


def _device(ort_name: str) -> str:
    """Where I/O binding keeps inputs and outputs: on the GPU for GPU providers, else host memory."""
    return "cuda" if ort_name in GPU_PROVIDERS else "cpu"


def _row(
    name: str,
    provider: str,
    shape: Shape,
    *,
    reason: str | None = None,
    latency: Any = None,
    threads: int = 0,
    placement: dict[str, Any] | None = None,
) -> dict[str, Any]:
    row: dict[str, Any] = {"variant": name, "provider": provider, "batch": shape.batch, "seq": shape.seq}
    if reason is not None:
        row["status"] = f"not measured: {reason}"
    else:
        row.update(status="measured", latency=latency, threads=threads)
    if placement is not None:
        row["placement"] = placement
    return row


def _shape_inputs(artifacts: dict[str, Artifact], splits: Splits, shape: Shape) -> dict[str, dict[str, Any]]:
    """Real eval texts padded/truncated to exactly ``seq`` tokens, ``batch`` rows, per tokenizer."""
    texts = [splits.eval.texts[i % len(splits.eval)] for i in range(shape.batch)]
    out = {}
    for name, art in artifacts.items():
        tok = _tokenizer(art.path)
        out[name] = dict(tok(texts, truncation=True, max_length=shape.seq, padding="max_length", return_tensors="np"))
    return out


def _onnx_runner(session: Any, device: str = "cpu") -> Callable[[dict[str, Any]], Callable[[], Any]]:
    """Plain ``session.run`` on the CPU; I/O binding with device-resident inputs on a GPU provider."""

    def make(enc: dict[str, Any]) -> Callable[[], Any]:
        feed = ort_feed(session, enc)
        if device != "cpu":
            return io_binding_runner(session, feed, device)
        return lambda: session.run(None, feed)

    return make


def _torch_runner(art: Artifact, threads: int, task: Task) -> Callable[[dict[str, Any]], Callable[[], Any]]:
    import torch

    torch.set_num_threads(threads)
    model, _ = _load_torch(art, task)

    def make(enc: dict[str, Any]) -> Callable[[], Any]:
        feed = {k: torch.from_numpy(v) for k, v in enc.items()}

        def run() -> Any:
            with torch.inference_mode():
                return model(**feed).logits

        return run

    return make


def _load_torch(art: Artifact, task: Task) -> tuple[Any, Any]:
    return task.load_model(art.path, [], trust_remote_code=False, for_training=False, where=f"{str(art.path)!r}")


@functools.lru_cache(maxsize=32)
def _tokenizer(path: Path) -> Any:
    """Each artifact's tokenizer, loaded once per run: accuracy and every latency shape reuse it."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _structure(build: BuildResult, cache: ArtifactCache, name: str) -> dict[str, Any] | None:
    """Params, zeros, layers, heads and FFN width of the torch model a variant was built from.

    An ONNX variant is described by its last torch ancestor: export and quantisation change
    the encoding of the weights, not which weights exist.
    """
    from optkit.passes.registry import get_pass
    from optkit.structure import describe_folder

    torch_steps = [s for s in build.steps if s.variant == name and get_pass(s.kind).output_format == "torch"]
    return describe_folder(cache.path(torch_steps[-1].key) if torch_steps else build.source.path)


def _size_on_disk(art: Artifact) -> int:
    """Weights only: model.onnx (+ external data) or *.safetensors / *.bin, not tokenizer files."""
    if art.format == "onnx":
        return sum(
            f.stat().st_size
            for f in art.path.iterdir()
            if f.suffix in (".onnx", ".data") or f.name.endswith(".onnx_data")
        )
    return sum(f.stat().st_size for f in art.path.iterdir() if f.suffix in (".safetensors", ".bin"))

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

from optkit.artifact import Artifact
from optkit.cache import ArtifactCache, cache_key
from optkit.envinfo import available_cpus, cpu_flags
from optkit.errors import EvaluationError, RecipeError
from optkit.evaluate.explain import explain_onnx
from optkit.evaluate.paired import changed_examples, encode_predictions, paired_change
from optkit.evaluate.predict import create_session, onnx_forward, onnx_logits, ort_feed, torch_forward, torch_logits
from optkit.evaluate.providers import (
    provider_status,
)
from optkit.evaluate.slices import slice_changes, slice_groups, worst_slice
from optkit.evaluate.suite import Subject, measure_provider
from optkit.evaluate.traffic import TrafficFeeds, request_rows
from optkit.passes.registry import get_pass
from optkit.progress import Progress
from optkit.recipe import Recipe, Shape, TrafficShape
from optkit.runner import BuildResult
from optkit.sources.data import Splits
from optkit.structure import describe_folder
from optkit.tasks import Task, get_task

__all__ = ["evaluate_build", "reference_variant"]


def reference_variant(recipe: Recipe) -> str:
    """Speed-ups are against this: the recipe's choice, else the first variant that only converts the
    baseline to ONNX (plain export: fp32 ONNX), else the baseline itself."""
    if recipe.evaluate.reference:
        return recipe.evaluate.reference
    for name, steps in recipe.variants.items():
        last = get_pass(steps[-1].kind)
        if (last.input_format, last.output_format) == ("torch", "onnx"):
            return name
    return "baseline"


def _timed_reference(recipe: Recipe) -> str:
    """The speed-up reference, which ``evaluate.latency.skip`` may not leave untimed (checked here, as the
    default reference is found by pass kinds, which the recipe layer does not know)."""
    ref = reference_variant(recipe)
    if ref in recipe.evaluate.latency.skip:
        raise RecipeError(
            f"evaluate.latency.skip: {ref!r} is the speed-up reference (the first fp32 ONNX variant); "
            f"time it, or set evaluate.reference to another variant"
        )
    return ref


def evaluate_build(
    recipe: Recipe, build: BuildResult, cache: ArtifactCache, progress: Progress, *, strict_providers: bool = False
) -> dict[str, Any]:
    """Measure every artifact of ``build``; returns the ``variants`` and ``results`` parts of the report.

    With ``strict_providers`` a provider missing from this onnxruntime build, or a session whose
    nodes mostly fell back to the CPU, raises instead of becoming a 'not measured' row.
    """
    ref = _timed_reference(recipe)
    for provider in recipe.evaluate.providers:  # fail before minutes of accuracy passes, not after
        provider_status(provider, strict=strict_providers)
    splits = build.splits
    assert splits is not None  # build_artifacts always loads them
    names = list(build.artifacts)
    threads = recipe.evaluate.latency.threads or available_cpus()

    task = get_task(recipe.model.task)
    scored = {n: _predictions(recipe, task, build.artifacts[n], splits, cache, progress, n) for n in names}
    outputs = {n: (p, c) for n, (p, c, _) in scored.items()}
    preds = {n: p for n, (p, _) in outputs.items()}
    variants: dict[str, Any] = {}
    for n in names:
        art = build.artifacts[n]
        m = task.scores(preds[n], splits.eval.labels, splits.label_names)
        if task.scores_outputs:  # e.g. the cosine of each row's embedding to the baseline's
            m |= task.output_scores(scored[n][2], scored["baseline"][2])
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
    groups = {
        name: slice_groups(
            name, splits.eval.texts, splits.eval.labels, splits.label_names, task, splits.eval.columns.get(name, [])
        )
        for name in recipe.evaluate.slices
    }
    for n in names:
        variants[n][f"{primary}_delta"] = variants[n][primary] - variants["baseline"][primary]
        variants[n]["size_ratio"] = variants[n]["size_bytes"] / variants[ref]["size_bytes"]
        variants[n].update(_paired_fields(recipe, task, splits, outputs, n, groups))

    results: list[dict[str, Any]] = []
    traffic: list[dict[str, Any]] = []
    subjects = _subjects(build, splits, task, recipe.data.max_length)
    for provider in recipe.evaluate.providers:
        results += measure_provider(
            subjects,
            provider,
            recipe.evaluate.shapes,
            recipe.evaluate.latency,
            threads=threads,
            memory=recipe.evaluate.memory,
            reference=ref,
            progress=progress,
            strict=strict_providers,
            task=task,
            options=recipe.evaluate.provider_options.get(provider),
            traffic=recipe.evaluate.traffic,
            traffic_out=traffic,
        )
    evaluation = {"variants": variants, "results": results, "reference": ref, "threads": threads}
    if traffic:  # only when asked: reports without traffic keep their old shape
        evaluation["traffic"] = traffic
    return evaluation | {"task": _task_block(task)}


def _task_block(task: Task) -> dict[str, Any]:
    """What the report's readers need to show any task's metrics: their names, order and direction."""
    return {
        "name": task.name,
        "primary_metric": task.primary_metric,
        "metrics": [{"name": m, "higher_is_better": up} for m, up in task.metrics.items()],
    }


def _paired_fields(
    recipe: Recipe,
    task: Task,
    splits: Splits,
    outputs: dict[str, tuple[list[Any], list[float] | None]],
    name: str,
    groups: dict[str, dict[str, list[int]]],
) -> dict[str, Any]:
    """What a variant's change against the baseline is worth: the primary metric's paired 95% interval
    and verdict, McNemar's p, per-class changes and the worst-hit class, the rows that changed with
    examples; and the variant's eval predictions (compact), so ``compare`` can pair two reports' rows.

    The bootstrap is seeded from the recipe's seed: the same run gives the same intervals.
    """
    targets, names = splits.eval.labels, splits.label_names
    preds, confidences = outputs[name]
    fields: dict[str, Any] = {"eval_predictions": encode_predictions(preds)}
    reference, ref_conf = outputs["baseline"]
    if groups:
        candidate = None if name == "baseline" else preds
        fields["slices"] = slice_changes(task, groups, reference, candidate, targets, names, seed=recipe.seed)
        if candidate is not None:
            fields["worst_slice"] = worst_slice(fields["slices"], higher_is_better=task.metrics[task.primary_metric])
    if name == "baseline":
        per_class = task.class_metrics(preds, targets, names)
        return fields | ({"per_class": per_class} if per_class is not None else {})
    fields |= paired_change(task, reference, preds, targets, names, seed=recipe.seed)
    fields["changed_examples"] = changed_examples(
        task, reference, preds, targets, names, splits.eval.texts, (ref_conf, confidences)
    )
    return fields


def _predictions(
    recipe: Recipe, task: Task, art: Artifact, splits: Splits, cache: ArtifactCache, progress: Progress, name: str
) -> tuple[list[Any], list[float] | None, Any]:
    """The task's predictions on the eval split (ONNX on the CPU EP), how sure each was, and (for a task
    that scores raw outputs against the baseline's) the outputs themselves, else None; cached per
    artifact and data, as they are deterministic."""
    key = cache_key({"artifact": art.key, "data": splits.fingerprint, "max_length": recipe.data.max_length})
    # 'eval-' since predictions gained confidences: an older 'predictions-' entry holds no confidences
    cached = cache.read_json(f"eval-{key[:32]}.json")
    raw = _cached_outputs(cache, key) if task.scores_outputs else None
    if (
        isinstance(cached, dict)
        and len(cached.get("predictions") or []) == len(splits.eval)
        and (raw is not None or not task.scores_outputs)
    ):
        progress.log(f"  accuracy of {name}: cached predictions")
        return cached["predictions"], cached.get("confidences"), raw
    texts, bs, max_len = splits.eval.texts, recipe.evaluate.batch_size, recipe.data.max_length
    with progress.task(f"accuracy of {name} ({len(texts)} eval rows)", total=len(texts)) as advance:
        if task.structured:  # tokens and tags, question + context: the task tokenises and reads the outputs
            if art.format == "onnx":
                forward, tokenizer = onnx_forward(create_session(art.onnx_file)), _tokenizer(art.path, task.name)
            else:
                model, tokenizer = _load_torch(art, task)
                forward = torch_forward(model)
            logits = task.infer(forward, tokenizer, splits.eval.inputs, max_len, bs, advance)
        elif art.format == "onnx":
            encoder = _tokenizer(art.path, task.name)
            logits = onnx_logits(create_session(art.onnx_file), encoder, texts, max_len, bs, advance)
        else:
            model, tokenizer = _load_torch(art, task)
            logits = torch_logits(model, tokenizer, texts, max_len, bs, advance)
    task.check_outputs(logits, splits.label_names, name)
    out, confidences = task.eval_predictions(logits, splits.eval.labels), task.confidences(logits)
    if task.scores_outputs:
        _cache_outputs(cache, key, logits)
    cache.write_json(f"eval-{key[:32]}.json", {"predictions": out, "confidences": confidences})
    return out, confidences, logits if task.scores_outputs else None


def _cache_outputs(cache: ArtifactCache, key: str, outputs: Any) -> None:
    """Raw eval outputs as float32 bytes (base64) in a JSON entry: exact, and a quarter of decimal text."""
    import base64

    import numpy as np

    data = np.ascontiguousarray(outputs, dtype=np.float32)
    blob = {"shape": list(data.shape), "float32_base64": base64.b64encode(data.tobytes()).decode("ascii")}
    cache.write_json(f"eval-outputs-{key[:32]}.json", blob)


def _cached_outputs(cache: ArtifactCache, key: str) -> Any:
    """The raw outputs ``_cache_outputs`` stored, or None when absent or unreadable (then they are recomputed)."""
    import base64
    import binascii

    import numpy as np

    blob = cache.read_json(f"eval-outputs-{key[:32]}.json")
    try:
        data = np.frombuffer(base64.b64decode(blob["float32_base64"]), dtype=np.float32)
        return data.reshape(blob["shape"])
    except (TypeError, KeyError, ValueError, binascii.Error):
        return None


def _subjects(build: BuildResult, splits: Splits, task: Task, max_length: int) -> list[Subject]:
    """Every artifact of the build as something to time, fed real eval texts cut to each shape."""

    def inputs_of(art: Artifact) -> Callable[[Shape, Any], Any]:
        def inputs(shape: Shape, session: Any) -> Any:
            if isinstance(shape, TrafficShape):
                return _traffic_feeds(art, splits, shape, max_length, session)
            enc = _shape_inputs(art, splits, shape, task)
            return ort_feed(session, enc) if session is not None else enc

        return inputs

    return [
        Subject(
            name=name,
            format=art.format,
            path=art.onnx_file if art.format == "onnx" else art.path,
            memory_path=art.path,
            inputs=inputs_of(art),
            load_torch=(lambda art=art: _load_torch(art, task)[0]) if art.format == "torch" else None,
        )
        for name, art in build.artifacts.items()
    ]


def _shape_inputs(art: Artifact, splits: Splits, shape: Shape, task: Task | None = None) -> dict[str, Any]:
    """Real eval rows padded/truncated to exactly ``seq`` tokens, ``batch`` rows, by the artifact's tokenizer
    (encoded as the task encodes them: a question with its context as a pair, words as split words)."""
    inputs = splits.eval.inputs
    rows = [inputs[i % len(inputs)] for i in range(shape.batch)]
    tok = _tokenizer(art.path, task.name if task is not None else "text-classification")
    if task is not None and task.structured:
        return task.encode(tok, rows, shape.seq, padding="max_length")
    return dict(tok(rows, truncation=True, max_length=shape.seq, padding="max_length", return_tensors="np"))


def _traffic_feeds(art: Artifact, splits: Splits, shape: TrafficShape, max_length: int, session: Any) -> TrafficFeeds:
    """The eval rows of ``shape``'s requests, each request padded to its longest row (dynamic padding).

    Tokenised up front, or inside ``feed`` when the shape times preprocessing too.
    """
    if not splits.eval.texts:
        raise EvaluationError("traffic replay needs the eval split's texts; this task's eval rows have none")
    tok = _tokenizer(art.path)  # traffic replays texts at their own lengths: text tasks only
    texts = [
        [splits.eval.texts[i] for i in rows] for rows in request_rows(len(splits.eval), shape.batch, shape.requests)
    ]

    def encode(chunk: list[str]) -> dict[str, Any]:
        enc = dict(tok(chunk, truncation=True, max_length=max_length, padding=True, return_tensors="np"))
        return ort_feed(session, enc) if session is not None else enc

    encoded = [encode(chunk) for chunk in texts]
    lengths = [int(m.sum()) for enc in encoded for m in enc["attention_mask"]]
    padded = [int(enc["attention_mask"].shape[1]) for enc in encoded for _ in range(len(enc["attention_mask"]))]
    feed = (lambda i: encode(texts[i])) if shape.include_preprocessing else encoded.__getitem__
    return TrafficFeeds(len(texts), feed, lengths, padded, max_length)


def _load_torch(art: Artifact, task: Task) -> tuple[Any, Any]:
    from optkit.passes.torch_transforms import finish_loading

    model, tokenizer = task.load_model(
        art.path, [], trust_remote_code=False, for_training=False, where=f"{str(art.path)!r}"
    )
    return finish_loading(art.path, model), tokenizer  # a folder may ask for a transform (a quantised variant)


@functools.lru_cache(maxsize=32)
def _tokenizer(path: Path, task: str = "text-classification") -> Any:
    """Each artifact's tokenizer (or image processor), loaded once per run: accuracy and every latency shape
    reuse it."""
    return get_task(task).input_encoder(path)


def _structure(build: BuildResult, cache: ArtifactCache, name: str) -> dict[str, Any] | None:
    """Params, zeros, layers, heads and FFN width of the torch model a variant was built from.

    An ONNX variant is described by its last torch ancestor: export and quantisation change
    the encoding of the weights, not which weights exist.
    """
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

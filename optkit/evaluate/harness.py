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
from optkit.envinfo import available_cpus
from optkit.errors import EvaluationError
from optkit.evaluate.latency import summarize, time_interleaved
from optkit.evaluate.memory import measure_peak_rss
from optkit.evaluate.predict import PROVIDER_NAMES, create_session, onnx_logits, ort_feed, torch_logits
from optkit.passes.base import Artifact
from optkit.progress import Progress
from optkit.recipe import Recipe, Shape
from optkit.runner import BuildResult
from optkit.sources.data import Splits

__all__ = ["classification_metrics", "evaluate_build", "reference_variant"]


def reference_variant(recipe: Recipe) -> str:
    """Speed-ups are against this: the recipe's choice, else the first plain-export (fp32 ONNX) variant."""
    if recipe.evaluate.reference:
        return recipe.evaluate.reference
    for name, steps in recipe.variants.items():
        if steps[-1].kind == "export":
            return name
    return "baseline"


def classification_metrics(preds: list[int], labels: list[int], n_classes: int) -> dict[str, float]:
    correct = sum(p == y for p, y in zip(preds, labels, strict=True))
    f1s = []
    for c in range(n_classes):
        tp = sum(p == c and y == c for p, y in zip(preds, labels, strict=True))
        fp = sum(p == c and y != c for p, y in zip(preds, labels, strict=True))
        fn = sum(p != c and y == c for p, y in zip(preds, labels, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return {"accuracy": correct / len(labels) if labels else 0.0, "macro_f1": sum(f1s) / n_classes}


def evaluate_build(recipe: Recipe, build: BuildResult, cache: ArtifactCache, progress: Progress) -> dict[str, Any]:
    """Measure every artifact of ``build``; returns the ``variants`` and ``results`` parts of the report."""
    splits = build.splits
    assert splits is not None  # build_artifacts always loads them
    names = list(build.artifacts)
    threads = recipe.evaluate.latency.threads or available_cpus()
    ref = reference_variant(recipe)

    preds = {n: _predictions(recipe, build.artifacts[n], splits, cache, progress, n) for n in names}
    variants: dict[str, Any] = {}
    for n in names:
        art = build.artifacts[n]
        m = classification_metrics(preds[n], splits.eval.labels, len(splits.label_names))
        agree = sum(a == b for a, b in zip(preds[n], preds["baseline"], strict=True)) / len(preds[n])
        variants[n] = {
            "format": art.format,
            "runtime": "pytorch" if art.format == "torch" else "onnxruntime",
            "chain": [s.model_dump(mode="json") for s in recipe.chain(n)],
            "artifact_key": art.key,
            "size_bytes": _size_on_disk(art),
            "eval_rows": len(splits.eval),
            **m,
            "agreement_with_baseline": agree,
        }
    for n in names:
        variants[n]["accuracy_delta"] = variants[n]["accuracy"] - variants["baseline"]["accuracy"]
        variants[n]["size_ratio"] = variants[n]["size_bytes"] / variants[ref]["size_bytes"]

    results: list[dict[str, Any]] = []
    for provider in recipe.evaluate.providers:
        results += _measure_provider(recipe, build, provider, threads, splits, ref, progress)
    return {"variants": variants, "results": results, "reference": ref, "threads": threads}


def _predictions(
    recipe: Recipe, art: Artifact, splits: Splits, cache: ArtifactCache, progress: Progress, name: str
) -> list[int]:
    """Argmax on the eval split (ONNX on the CPU EP); cached per artifact and data, as it is deterministic."""
    key = cache_key({"artifact": art.key, "data": splits.fingerprint, "max_length": recipe.data.max_length})
    cached = cache.read_json(f"predictions-{key[:32]}.json")
    if isinstance(cached, list) and len(cached) == len(splits.eval):
        progress.log(f"  accuracy of {name}: cached predictions")
        return [int(p) for p in cached]
    texts, bs, max_len = splits.eval.texts, recipe.evaluate.batch_size, recipe.data.max_length
    with progress.task(f"accuracy of {name} ({len(texts)} eval rows)", total=len(texts)) as advance:
        if art.format == "onnx":
            logits = onnx_logits(create_session(art.onnx_file), _tokenizer(art.path), texts, max_len, bs, advance)
        else:
            model, tokenizer = _load_torch(art)
            logits = torch_logits(model, tokenizer, texts, max_len, bs, advance)
    if logits.shape[-1] != len(splits.label_names):
        raise EvaluationError(
            f"{name}: the model outputs {logits.shape[-1]} classes but the data has {len(splits.label_names)} "
            f"labels {splits.label_names}; set data.labels or fine-tune the head"
        )
    out = [int(p) for p in logits.argmax(-1)]
    cache.write_json(f"predictions-{key[:32]}.json", out)
    return out


def _measure_provider(
    recipe: Recipe, build: BuildResult, provider: str, threads: int, splits: Splits, ref: str, progress: Progress
) -> list[dict[str, Any]]:
    import onnxruntime as ort

    ort_name = PROVIDER_NAMES.get(provider, provider)
    rows: list[dict[str, Any]] = []
    shapes = recipe.evaluate.shapes
    if ort_name not in ort.get_available_providers():
        reason = (
            f"{ort_name} not available in this onnxruntime build ({ort.get_device()}, onnxruntime {ort.__version__})"
        )
        progress.log(f"[yellow]{provider}[/]: not measured: {reason}")
        return [_row(n, provider, s, reason=reason) for n in build.artifacts for s in shapes]

    loaded: dict[str, Callable[[dict[str, Any]], Callable[[], Any]]] = {}
    skipped: dict[str, str] = {}
    for name, art in build.artifacts.items():
        if art.format == "torch":
            if provider != "cpu":
                skipped[name] = "PyTorch variants are timed on the CPU only"
                continue
            loaded[name] = _torch_runner(art, threads)
        else:
            session = create_session(art.onnx_file, provider, threads)
            active = session.get_providers()[0]
            if active != ort_name:
                skipped[name] = f"session fell back to {active}"
                continue
            loaded[name] = _onnx_runner(session)

    lat = recipe.evaluate.latency
    for shape in shapes:
        inputs = _shape_inputs(build.artifacts, splits, shape)
        runners = {n: make(inputs[n]) for n, make in loaded.items()}
        with progress.task(
            f"latency {provider} b{shape.batch}×s{shape.seq} ({len(runners)} variants interleaved)", total=lat.runs
        ) as advance:
            samples = time_interleaved(
                runners, warmup=lat.warmup, runs=lat.runs, block=lat.block, on_round=lambda n: advance(n)
            )
        stats = {n: summarize(s, shape.batch) for n, s in samples.items()}
        ref_p50 = stats[ref]["p50_ms"] if ref in stats else None
        for name in build.artifacts:
            if name in skipped:
                rows.append(_row(name, provider, shape, reason=skipped[name]))
                continue
            row = _row(name, provider, shape, latency=stats[name], threads=threads)
            row["speedup_vs_reference"] = ref_p50 / stats[name]["p50_ms"] if ref_p50 else None
            if recipe.evaluate.memory and provider == "cpu":
                art = build.artifacts[name]
                with progress.task(f"peak RSS of {name} b{shape.batch}×s{shape.seq} (own process)", total=1) as adv:
                    mem = measure_peak_rss(art.path, art.format, shape.batch, shape.seq, threads=threads)
                    adv(1)
                row["memory"] = mem
            rows.append(row)
    return rows


def _row(
    name: str, provider: str, shape: Shape, *, reason: str | None = None, latency: Any = None, threads: int = 0
) -> dict[str, Any]:
    row: dict[str, Any] = {"variant": name, "provider": provider, "batch": shape.batch, "seq": shape.seq}
    if reason is not None:
        row["status"] = f"not measured: {reason}"
    else:
        row.update(status="measured", latency=latency, threads=threads)
    return row


def _shape_inputs(artifacts: dict[str, Artifact], splits: Splits, shape: Shape) -> dict[str, dict[str, Any]]:
    """Real eval texts padded/truncated to exactly ``seq`` tokens, ``batch`` rows, per tokenizer."""
    texts = [splits.eval.texts[i % len(splits.eval)] for i in range(shape.batch)]
    out = {}
    for name, art in artifacts.items():
        tok = _tokenizer(art.path)
        out[name] = dict(tok(texts, truncation=True, max_length=shape.seq, padding="max_length", return_tensors="np"))
    return out


def _onnx_runner(session: Any) -> Callable[[dict[str, Any]], Callable[[], Any]]:
    def make(enc: dict[str, Any]) -> Callable[[], Any]:
        feed = ort_feed(session, enc)
        return lambda: session.run(None, feed)

    return make


def _torch_runner(art: Artifact, threads: int) -> Callable[[dict[str, Any]], Callable[[], Any]]:
    import torch

    torch.set_num_threads(threads)
    model, _ = _load_torch(art)

    def make(enc: dict[str, Any]) -> Callable[[], Any]:
        feed = {k: torch.from_numpy(v) for k, v in enc.items()}

        def run() -> Any:
            with torch.inference_mode():
                return model(**feed).logits

        return run

    return make


def _load_torch(art: Artifact) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification

    try:
        model = AutoModelForSequenceClassification.from_pretrained(art.path).eval()
        tokenizer = _tokenizer(art.path)
    except (OSError, ValueError) as e:
        raise EvaluationError(f"could not load the torch model in {str(art.path)!r}: {e}") from None
    return model, tokenizer


@functools.lru_cache(maxsize=32)
def _tokenizer(path: Path) -> Any:
    """Each artifact's tokenizer, loaded once per run: accuracy and every latency shape reuse it."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _size_on_disk(art: Artifact) -> int:
    """Weights only: model.onnx (+ external data) or *.safetensors / *.bin, not tokenizer files."""
    if art.format == "onnx":
        return sum(
            f.stat().st_size
            for f in art.path.iterdir()
            if f.suffix in (".onnx", ".data") or f.name.endswith(".onnx_data")
        )
    return sum(f.stat().st_size for f in art.path.iterdir() if f.suffix in (".safetensors", ".bin"))

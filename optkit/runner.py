"""Walk each variant's chain of passes, reusing cached artifacts and recording what ran.

Variants share their common prefix through the cache key alone: the baseline fine-tune and
the export have the same key in every variant, so they are built once per run (and once
across runs while nothing that feeds them changes).
"""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optkit import distributed
from optkit.artifact import Artifact
from optkit.cache import ArtifactCache, cache_key
from optkit.envinfo import KEY_LIBRARIES, versions
from optkit.errors import RunInterrupted, unexpected_errors
from optkit.guards import check_disk, weights_bytes
from optkit.interrupts import check
from optkit.passes.base import PassConfig, PassContext, RunSettings
from optkit.passes.registry import PassSpec, get_pass
from optkit.preflight import check_inputs
from optkit.progress import Progress, SilentProgress
from optkit.recipe import Recipe
from optkit.sources.data import Splits, load_splits
from optkit.sources.model import resolve_model
from optkit.testhooks import pause_point

__all__ = ["BuildResult", "StepRecord", "build_artifacts"]


@dataclass
class StepRecord:
    variant: str
    index: int
    kind: str
    key: str
    status: str  # "built" now, "shared" with an earlier variant of this run, or "cached" from an earlier run
    seconds: float
    meta: dict[str, Any]


@dataclass
class BuildResult:
    source: Artifact
    artifacts: dict[str, Artifact]  # "baseline" and every variant name
    steps: list[StepRecord] = field(default_factory=list)
    splits: Splits | None = None


def build_artifacts(
    recipe: Recipe, workspace: Path, *, force: bool = False, progress: Progress | None = None
) -> BuildResult:
    """Produce the baseline's and every variant's final artifact; cached steps are reused unless ``force``.

    In a multi-process launch (``optkit.distributed``) every rank walks the same chains and
    computes the same keys; rank 0 builds and commits every step, and the other ranks take part
    in the training steps only (``_follow``), then return with nothing built.
    """
    progress = progress or SilentProgress()
    main = distributed.is_main()
    if distributed.world_size() > 1:
        distributed.init_state()  # before any pass asks Accelerate for a device
    cache = ArtifactCache(workspace / "cache")
    source = resolve_model(recipe.model)
    splits: Callable[[], Splits] = functools.cache(
        lambda: load_splits(recipe.data, recipe.seed, recipe.model.task, recipe.evaluate.slice_columns)
    )
    if main:
        check_inputs(recipe, source, splits())  # head, labels, calibration size, memory: before any work

    settings = RunSettings.from_recipe(recipe)
    result = BuildResult(source=source, artifacts={})
    seen: dict[str, dict[str, Any]] = {}  # key -> meta of steps done in this run (shared prefixes)
    chains = {"baseline": list(recipe.baseline)} | {n: recipe.chain(n) for n in recipe.variants}
    for name, chain in chains.items():
        artifact = source
        lineage: list[Artifact] = []
        for index, step in enumerate(chain):
            spec = get_pass(step.kind)
            parts = _key_inputs(recipe, step, spec, artifact, splits)
            key = cache_key(parts)
            label = f"{name}[{index}] {step.kind}"
            ctx = PassContext(
                out_dir=Path(),
                step=label,
                settings=settings,
                splits=splits,
                progress=progress,
                cache=cache,
                lineage=tuple(lineage),
            )
            t0 = time.perf_counter()
            if key in seen:
                meta, status = seen[key], "shared"
            elif not main:
                meta, status = _follow(spec, step, artifact, ctx), "followed"
                seen[key] = meta
            else:
                meta, status = _build_step(spec, step, artifact, ctx, parts, key, force, len(seen))
                seen[key] = meta
            pass_meta = meta.get("pass_meta", {})
            result.steps.append(StepRecord(name, index, step.kind, key, status, time.perf_counter() - t0, pass_meta))
            lineage.append(artifact)
            artifact = Artifact(cache.path(key), spec.output_format, key, pass_meta)
        result.artifacts[name] = artifact
    result.splits = splits()
    distributed.finish()  # the last collective is behind every rank: evaluation runs on rank 0 alone
    return result


def _build_step(
    spec: PassSpec,
    step: PassConfig,
    artifact: Artifact,
    ctx: PassContext,
    parts: dict[str, Any],
    key: str,
    force: bool,
    done: int,
) -> tuple[dict[str, Any], str]:
    """Rank 0 (or the only process): build the step into the cache, or find it there; (meta, status)."""
    cache, progress, label = ctx.cache, ctx.progress, ctx.step
    assert cache is not None
    t0 = time.perf_counter()
    if force:
        cache.invalidate(key, label)
    progress.log(f"[bold]{label}[/] key {key[:12]} …")
    check_disk(cache.root, 2 * weights_bytes(artifact.path), f"{label} (cache entry {key[:12]})")
    together = step.trains and distributed.world_size() > 1  # the other ranks wait to hear: build or reuse
    try:
        check()  # a Ctrl-C that Python swallowed during the previous step stops the run here
        meta, built = cache.build(key, _maker(spec, step, artifact, ctx, parts, together), _waiting(progress, label))
    except KeyboardInterrupt:
        raise RunInterrupted(
            f"interrupted during {label}; the {done} step(s) finished before it are cached "
            f"(nothing of {label} was kept). Run the same command again to resume"
        ) from None
    if together and not built:
        distributed.agree(False)  # found in the cache: the other ranks skip this training step too
    status = "built" if built else "cached"
    ranks = f" (trained on {distributed.world_size()} processes)" if together and built else ""
    progress.log(f"  {label}: {status} in {time.perf_counter() - t0:.1f} s{ranks}")
    return meta, status


def _follow(spec: PassSpec, step: PassConfig, artifact: Artifact, ctx: PassContext) -> dict[str, Any]:
    """A rank other than 0: train along with rank 0 when it builds a training step, and keep nothing.

    Rank 0 has committed every step before this one when it says "build", so the input is read
    from the shared cache; the output goes to a private temporary folder that is deleted after.
    """
    if not step.trains or not distributed.agree(None):
        return {}
    # The source model is resolved on every rank alike; a cache entry must be visible here.
    if ctx.cache is not None and artifact.path.parent == ctx.cache.root and not artifact.path.is_dir():
        raise distributed.DistributedError(
            f"{ctx.step}: rank {distributed.rank()} cannot see its input {str(artifact.path)!r}, which rank 0 "
            "committed; on several machines the --workspace must be on a filesystem that every node shares"
        )
    ctx.main_process = False
    with tempfile.TemporaryDirectory(prefix=f"optkit-rank{distributed.rank()}-") as tmp:
        ctx.out_dir = Path(tmp)
        with unexpected_errors(f"{ctx.step} (input {artifact.key[:12]}, rank {distributed.rank()})"):
            spec.fn(artifact, step, ctx)
    return {}


def _key_inputs(
    recipe: Recipe, step: PassConfig, spec: PassSpec, artifact: Artifact, splits: Callable[[], Splits]
) -> dict[str, Any]:
    """Everything that determines a step's output; its hash is the cache key."""
    parts: dict[str, Any] = {
        "kind": step.kind,
        "version": spec.version,
        "config": step.model_dump(mode="json"),
        "input": artifact.key,
        "libraries": versions((*KEY_LIBRARIES, *type(step).key_libraries)),
        "seed": recipe.seed,
    }
    if spec.uses_data:
        # A pass that reads validation or eval rows is keyed on them; one that reads only train and
        # calibration rows keeps its entry when a recipe adds a validation split (same rows).
        data = splits()
        fingerprint = data.fingerprint if type(step).reads_held_out else data.training_fingerprint
        parts["data"] = {"fingerprint": fingerprint, "max_length": recipe.data.max_length}
    return parts


def _maker(
    spec: PassSpec, step: PassConfig, artifact: Artifact, ctx: PassContext, parts: dict[str, Any], together: bool
) -> Callable[[Path], dict[str, Any]]:
    """The cache's build callback: run the pass into the temporary folder, return the entry's meta.

    ``together``: a training step of a multi-process run; the other ranks are told to train with
    this one (under the entry's lock, so no other run can build it meanwhile).
    """

    def make(out_dir: Path) -> dict[str, Any]:
        ctx.out_dir = out_dir
        if together:
            distributed.agree(True)
        if step.trains:
            ctx.meta["training_processes"] = distributed.world_size()
        with unexpected_errors(f"{ctx.step} (input {artifact.key[:12]})"):
            spec.fn(artifact, step, ctx)
        pause_point(step.kind)  # test hook: files written, entry not yet committed
        return {"key_inputs": parts, "format": spec.output_format, "pass_meta": ctx.meta}

    return make


def _waiting(progress: Progress, label: str) -> Callable[[str], None]:
    """The message shown while another process builds the same entry (two runs on one workspace)."""

    def say(holder: str) -> None:
        progress.log(f"  {label}: waiting for {holder}, which is building the same cache entry …")

    return say

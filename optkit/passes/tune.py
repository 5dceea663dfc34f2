"""``tune``: accuracy-aware search over ONNX Runtime quantisation configurations (onnx -> onnx).

Given a tolerance (``max_accuracy_drop``) and a budget (``max_trials``, ``time_budget_s``), it tries
quantisation configurations (mode, per-channel, reduce-range, op types, calibration method and
percentile), then, for the most accurate configurations that missed the tolerance, keeps their most
sensitive node groups in float one group at a time (ranking in ``tune_sensitivity``) until the
tolerance holds. Every candidate is judged on the **validation** split (``data.splits.validation``,
held out of training and of the report's eval rows) and timed interleaved with the float reference.

It returns the **fastest** candidate within tolerance, not the first: every candidate the budget
allows is tried, and the best few are timed again together, in one interleaved round, because
per-trial timings taken minutes apart differ by more than the candidates do. Every trial is cached
under its lineage (input model, steps, validation rows, timing settings), so an interrupted tune
resumes where it stopped. When nothing passes, the output is the most accurate candidate, the
fastest is kept beside it in the cache, and the report says so with both sets of figures.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from optkit.errors import PassError, RecipeError
from optkit.passes.base import Artifact, MemoryDemand, PassConfig, PassContext, Plan
from optkit.passes.ort_quantize import QuantizeConfig
from optkit.passes.registry import register_pass
from optkit.passes.tune_run import TuneBench
from optkit.passes.tune_search import (
    Choice,
    SearchState,
    Trial,
    choose,
    exclusion_candidates,
    grid_candidates,
    run_search,
)

__all__ = ["TuneConfig", "TuneLatency", "candidate_chains", "search_grid", "tune"]


class TuneLatency(BaseModel):
    """How each trial is timed: short, interleaved with the float reference in the same rounds."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    batch: int = Field(1, ge=1, le=1024, description="Rows per timed call.")
    seq: int = Field(128, ge=1, le=4096, description="Tokens per row (padded to this length).")
    threads: int | None = Field(None, ge=1, description="ONNX Runtime intra-op threads; default all cores.")
    warmup: int = Field(3, ge=0, description="Untimed runs of each model before timing.")
    runs: int = Field(40, ge=5, description="Timed runs per model and trial at most.")
    time_budget_s: float = Field(6.0, gt=0, description="Seconds of timing per trial (after 10 runs each).")
    final_runs: int = Field(150, ge=5, description="Timed runs per model in the finalists' joint round at most.")
    final_time_budget_s: float = Field(40.0, gt=0, description="Seconds of the finalists' joint round.")


class TuneConfig(PassConfig):
    """Accuracy-aware search for the fastest int8 configuration within a tolerance."""

    kind: Literal["tune"] = "tune"
    reads_held_out: ClassVar[bool] = True  # judged on data.splits.validation
    tasks: ClassVar[frozenset[str] | None] = frozenset({"text-classification"})
    key_libraries: ClassVar[tuple[str, ...]] = ("onnxruntime",)

    max_accuracy_drop: float = Field(
        0.01, ge=0, le=1, description="Largest validation accuracy drop vs the float input allowed (0.01 = 1 point)."
    )
    max_trials: int = Field(16, ge=1, le=1000, description="Candidates tried at most (cached ones count).")
    time_budget_s: float = Field(600, gt=0, description="Seconds of search at most (a started trial finishes).")
    modes: list[Literal["dynamic", "static"]] = Field(["dynamic", "static"], min_length=1, description="Modes.")
    per_channel: list[bool] = Field([True, False], min_length=1, description="Per-channel weight scales to try.")
    reduce_range: list[bool] = Field([False], min_length=1, description="7-bit weights to try.")
    op_types: list[list[str] | None] = Field(
        [None, ["MatMul"]],
        min_length=1,
        description="Op-type sets to quantise; null = the quantize pass's default for the mode.",
    )
    calibration: list[Literal["minmax", "entropy", "percentile"]] = Field(
        ["minmax", "percentile"], min_length=1, description="Static only: calibration methods to try."
    )
    calibration_percentile: list[float] = Field(
        [99.999], min_length=1, description="Static, percentile only: percentiles to try."
    )
    calibration_samples: int | None = Field(None, ge=1, description="Static: calibration rows; default all.")
    before: list[list[dict[str, Any]]] = Field(
        [[]],
        min_length=1,
        description="ONNX steps run before quantisation, one search dimension: [[], [{optimize: {}}]] tries "
        "every configuration without and with a graph-fusion pass.",
    )
    candidates: list[list[dict[str, Any]]] = Field(
        [],
        description="Whole chains of ONNX steps tried as they are after the grid (a library preset, a peer's "
        "fused path): [[{quantize: {mode: dynamic, per_channel: false}}]].",
    )
    exclusion: bool = Field(True, description="Keep sensitive node groups in float for configurations that fail.")
    exclusion_bases: int = Field(2, ge=1, description="How many failing configurations get the exclusion search.")
    max_excluded_groups: int = Field(6, ge=1, description="Node groups kept in float at most.")
    sensitivity_rows: int = Field(64, ge=4, description="Calibration rows the sensitivity ranking runs on.")
    finalists: int = Field(3, ge=1, description="Passing candidates timed again together before the choice.")
    validation_batch_size: int = Field(32, ge=1, description="Rows per batch when scoring the validation split.")
    latency: TuneLatency = Field(default_factory=TuneLatency, description="How each candidate is timed.")

    @field_validator("before", "candidates", mode="before")
    @classmethod
    def _steps_as_kinds(cls, v: Any) -> Any:
        """``{optimize: {...}}`` (the recipe's step form) becomes ``{kind: optimize, ...}``."""
        if not isinstance(v, list):
            return v
        return [[_as_kind(step) for step in chain] if isinstance(chain, list) else chain for chain in v]

    @model_validator(mode="after")
    def _grid_is_valid(self) -> TuneConfig:
        for _, options in search_grid(self):
            QuantizeConfig.model_validate({"kind": "quantize", **options})  # a bad op type etc. fails at load
        for chain in [*self.before, *self.candidates]:
            for step in chain:
                _check_onnx_step(step)
        return self

    def check(self, where: str, model: dict[str, Any] | None, plan: Plan) -> dict[str, Any] | None:
        if not len(plan.splits.validation):
            raise RecipeError(
                f"{where}: tune judges candidates on a validation split, and the recipe has none; add "
                f"data.splits.validation (e.g. 0.2 of the held-out rows, or a count such as 500)"
            )
        if "static" in self.modes and not len(plan.splits.calibration):
            raise RecipeError(f"{where}: static candidates need calibration rows; set data.splits.calibration")
        return model

    def memory_demands(self, where: str, plan: Plan) -> list[MemoryDemand]:
        """The costliest trial: a static calibration (one trial at a time, built models deleted as it goes)."""
        static = [o for _, o in search_grid(self) if o["mode"] == "static"]
        if not static:
            return []
        return QuantizeConfig.model_validate({"kind": "quantize", **static[0]}).memory_demands(where, plan)

    def report_notes(self, variant: str, report: dict[str, Any]) -> list[str]:
        """One line on what the search did and chose; a louder one when nothing met the tolerance."""
        notes = []
        for step in report.get("steps", []):
            summary = step.get("meta", {}).get("search") if step["variant"] == variant else None
            if summary and step["kind"] == self.kind:
                notes.append(f"{variant}: {summary['sentence']}")
        return notes


def _as_kind(step: Any) -> Any:
    if isinstance(step, str):
        return {"kind": step}
    if isinstance(step, dict) and "kind" not in step and len(step) == 1:
        ((kind, options),) = step.items()
        return {"kind": kind, **(options or {})}
    return step


def _check_onnx_step(step: dict[str, Any]) -> None:
    """A step of a candidate chain: a registered ONNX -> ONNX pass with valid options (checked at load)."""
    from optkit.passes.registry import get_pass

    try:
        spec = get_pass(str(step.get("kind")))
    except RecipeError as e:  # a ValueError, so the recipe's error names the field
        raise ValueError(str(e)) from None
    if (spec.input_format, spec.output_format) != ("onnx", "onnx"):
        raise ValueError(f"{spec.kind!r} is a {spec.input_format} -> {spec.output_format} pass; tune chains ONNX steps")
    spec.config_cls.model_validate(step)


def candidate_chains(config: TuneConfig) -> list[tuple[str, tuple[dict[str, Any], ...]]]:
    """Every grid configuration after every ``before`` chain, then the explicit ``candidates``."""
    out = []
    for before in config.before:
        prefix = " + ".join(str(s["kind"]) for s in before)
        for label, options in search_grid(config):
            out.append((f"{prefix} + {label}" if prefix else label, (*before, {"kind": "quantize", **options})))
    for chain in config.candidates:
        out.append((" + ".join(_step_label(s) for s in chain), tuple(chain)))
    return out


def _step_label(step: dict[str, Any]) -> str:
    options = ", ".join(f"{k}={v}" for k, v in step.items() if k != "kind")
    return f"{step['kind']}({options})" if options else str(step["kind"])


def search_grid(config: TuneConfig) -> list[tuple[str, dict[str, Any]]]:
    """The full-model quantisation configurations to try, in order (dynamic first), without duplicates."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for mode in config.modes:
        for per_channel in config.per_channel:
            for reduce_range in config.reduce_range:
                for ops in config.op_types:
                    ops = ops if ops is not None or mode == "dynamic" else ["MatMul"]
                    base = {"mode": mode, "per_channel": per_channel, "reduce_range": reduce_range, "op_types": ops}
                    label = f"{mode} {'per-channel' if per_channel else 'per-tensor'}"
                    label += f"{' reduce-range' if reduce_range else ''} {'+'.join(ops) if ops else 'default ops'}"
                    for options, suffix in _calibrations(config, base):
                        out.setdefault(json.dumps(options, sort_keys=True), (label + suffix, options))
    return list(out.values())


def _calibrations(config: TuneConfig, base: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    if base["mode"] == "dynamic":
        return [(base, "")]
    rows = {"calibration_samples": config.calibration_samples} if config.calibration_samples else {}
    found = []
    for method in config.calibration:
        for pct in config.calibration_percentile if method == "percentile" else [None]:
            extra = {"calibration_percentile": pct} if pct is not None else {}
            found.append(({**base, "calibration": method, **extra, **rows}, f" {method}{f' {pct}' if pct else ''}"))
    return found


@register_pass(TuneConfig, version=2, input_format="onnx", output_format="onnx", uses_data=True)
def tune(src: Artifact, config: TuneConfig, ctx: PassContext) -> Artifact:
    """Search, choose, and write the chosen candidate's model into ``ctx.out_dir``."""
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix=".tmp-tune-", dir=ctx.out_dir))
    try:
        bench = TuneBench(src, config, ctx, scratch)
        state = SearchState(bench.reference_accuracy, config.max_accuracy_drop)
        generators = [grid_candidates(candidate_chains(config))]
        if config.exclusion:
            generators.append(
                exclusion_candidates(bench.ranking, max_groups=config.max_excluded_groups, bases=config.exclusion_bases)
            )
        stopped = run_search(
            state, generators, bench.trial, max_trials=config.max_trials, time_budget_s=config.time_budget_s
        )
        choice = choose(state)
        if choice.chosen is None:
            raise PassError(f"{ctx.step}: no candidate could be built or run; the trials say why: {_errors(state)}")
        final = bench.final_round(state, choice) if choice.outcome == "within_tolerance" else None
        winner = _winner(state, choice, final)
        bench.materialise(winner.candidate, ctx.out_dir)
        kept = bench.keep(choice.fastest) if choice.outcome == "nothing_passed" and choice.fastest else None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ctx.meta.update(_summary(config, state, choice, winner, final, kept, stopped, time.monotonic() - started, bench))
    return Artifact(ctx.out_dir, "onnx", key="")


def _winner(state: SearchState, choice: Choice, final: dict[str, Any] | None) -> Trial:
    """The joint round decides between finalists when it ran; else the trial figures do."""
    assert choice.chosen is not None
    if not final or not final.get("winner"):
        return choice.chosen
    return next(t for t in state.trials if t.candidate.key == final["winner"])


def _errors(state: SearchState) -> str:
    return "; ".join(f"{t.candidate.label}: {t.error}" for t in state.trials if t.error)[:1000] or "no trials ran"


def _summary(
    config: TuneConfig,
    state: SearchState,
    choice: Choice,
    winner: Trial,
    final: dict[str, Any] | None,
    kept: dict[str, Any] | None,
    stopped: str,
    seconds: float,
    bench: TuneBench,
) -> dict[str, Any]:
    """What the report stores: every trial, the choice and why, and one sentence for the notes."""
    ref, drop = state.reference_accuracy, config.max_accuracy_drop
    number = {t.candidate.key: i for i, t in enumerate(state.trials, 1)}
    trials = [t.record(i, ref, drop) for i, t in enumerate(state.trials, 1)]
    passing = sum(r["within_tolerance"] for r in trials)
    w = trials[number[winner.candidate.key] - 1]
    speed = f"{w['speedup']:.2f}× fp32 ONNX in its trial" if w["speedup"] else "speed not measured"
    if final and final.get("winner"):
        row = next(r for r in final["finalists"] if final["winner"].startswith(r["key"]))
        speed = (
            f"{row['speedup']:.2f}× fp32 ONNX in the joint round of {len(final['finalists'])} finalists "
            f"({final['rounds']} interleaved rounds)"
        )
        if final.get("decisive") is False:
            speed += (
                "; its median's interval overlaps another finalist's, so the finalists are equally fast within "
                "the noise and the lowest median decided"
            )
    why = stopped
    if state.skipped:
        why += f"; {len(state.skipped)} candidate(s) not started, their estimated time would overrun it"
    if choice.outcome == "within_tolerance":
        sentence = (
            f"tune tried {len(trials)} configurations ({passing} within {drop * 100:g} point(s) of the float "
            f"model's validation accuracy {ref:.4f}; stopped by {why}) and chose trial {w['trial']} "
            f"'{w['label']}': validation accuracy {w['validation_accuracy']:.4f}, {speed}."
        )
    else:
        f = trials[number[choice.fastest.candidate.key] - 1] if choice.fastest else None
        sentence = (
            f"tune: NO configuration of {len(trials)} kept validation accuracy within {drop * 100:g} point(s) "
            f"of the float model's {ref:.4f} (stopped by {why}). The variant is the most accurate, trial "
            f"{w['trial']} '{w['label']}' ({w['validation_accuracy']:.4f}, {speed})"
            + (
                f"; the fastest, trial {f['trial']} '{f['label']}' ({f['validation_accuracy']:.4f}, "
                f"{f['speedup']}×), is kept in the cache as {kept['cache_key'][:12] if kept else 'not kept'}."
                if f
                else "."
            )
        )
    return {
        "trials": trials,
        "search": {
            "outcome": choice.outcome,
            "chosen_trial": w["trial"],
            "most_accurate_trial": number[choice.most_accurate.candidate.key] if choice.most_accurate else None,
            "fastest_trial": number[choice.fastest.candidate.key] if choice.fastest else None,
            "stopped_by": stopped,
            "skipped_for_budget": [{"label": label, "estimated_s": est} for label, est in state.skipped],
            "max_accuracy_drop": drop,
            "max_trials": config.max_trials,
            "time_budget_s": config.time_budget_s,
            "seconds": round(seconds, 1),
            "reference_validation_accuracy": round(ref, 6),
            "validation_rows": bench.validation_rows,
            "sensitivity": bench.rankings,
            "final_round": final,
            "kept": kept,
            "sentence": sentence,
        },
    }

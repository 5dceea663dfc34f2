"""What ``tune`` does to one candidate: build it, score it on the validation rows, time it, cache it.

``TuneBench`` holds what every trial shares (the float reference session, its validation logits,
the timing inputs) so a trial costs one build, one scoring pass and a few seconds of timing. Each
trial's figures are a cache entry keyed by its lineage: the input model's key, the candidate's steps,
the validation rows' fingerprint, the timing settings and the library versions. A rerun after a
kill reads the finished trials back and goes on with the next candidate.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optkit.cache import cache_key
from optkit.envinfo import KEY_LIBRARIES, versions
from optkit.errors import OptkitError
from optkit.evaluate.latency import time_interleaved
from optkit.evaluate.predict import create_session, onnx_logits, ort_feed
from optkit.evaluate.stats import bootstrap_median_ci, percentile
from optkit.passes.base import ONNX_FILE, Artifact, PassContext
from optkit.passes.registry import get_pass
from optkit.passes.tune_search import Candidate, SearchState, Trial
from optkit.passes.tune_sensitivity import group_nodes, quantisable_nodes, rank_groups
from optkit.progress import SilentProgress
from optkit.testhooks import pause_point

if TYPE_CHECKING:
    from optkit.passes.tune import TuneConfig

__all__ = ["TRIAL_VERSION", "TuneBench"]

TRIAL_VERSION = 1  # bump when a trial's figures would change for the same lineage
_TRIAL_FILE = "trial.json"


class TuneBench:
    """The reference and the shared inputs; ``trial``, ``ranking``, ``final_round`` use them."""

    def __init__(self, src: Artifact, config: TuneConfig, ctx: PassContext, scratch: Path) -> None:
        from transformers import AutoTokenizer

        self.src, self.config, self.ctx, self.scratch = src, config, ctx, scratch
        splits = ctx.splits()
        self.validation = splits.validation
        self.validation_rows = len(splits.validation)
        self.calibration_texts = splits.calibration.texts[: config.sensitivity_rows]
        self.fingerprint = splits.fingerprint
        self.tokenizer = AutoTokenizer.from_pretrained(src.path)
        self.reference = create_session(src.onnx_file, threads=config.latency.threads)
        self.reference_logits = self._logits(self.reference, self.validation.texts)
        labels = self.validation.labels
        self.reference_predictions = self.reference_logits.argmax(-1)
        self.reference_accuracy = float((self.reference_predictions == labels).mean())
        self.rankings: dict[str, list[dict[str, Any]]] = {}
        self._built: dict[str, Path] = {}
        lat = config.latency
        texts = [self.validation.texts[i % len(self.validation)] for i in range(lat.batch)]
        self._encoding = dict(
            self.tokenizer(texts, truncation=True, max_length=lat.seq, padding="max_length", return_tensors="np")
        )
        self.ctx.progress.log(
            f"  {ctx.step}: float reference: validation accuracy {self.reference_accuracy:.4f} on "
            f"{self.validation_rows} rows; tolerance {config.max_accuracy_drop * 100:g} point(s)"
        )

    # --- one candidate -------------------------------------------------------------------------
    def trial(self, candidate: Candidate, number: int) -> Trial:
        """The candidate's figures, from the cache if an earlier run measured them."""
        key = self._trial_key(candidate)
        cache = self.ctx.cache
        meta = cache.lookup(key) if cache is not None else None
        if meta is not None:
            trial = _trial_from(candidate, json.loads((cache.path(key) / _TRIAL_FILE).read_text()), cached=True)
        else:
            trial = self._measure(candidate)
            if cache is not None:
                cache.build(key, lambda d: _store(d, trial))
        self._log(number, trial)
        pause_point(f"tune-trial-{number}")  # test hook: this trial is committed, the next not started
        return trial

    def _trial_key(self, candidate: Candidate) -> str:
        return cache_key(
            {
                "tune_trial": TRIAL_VERSION,
                "input": self.src.key,
                "steps": list(candidate.steps),
                # a fixed bug in a step's pass (its version) must not be read back from an old trial
                "pass_versions": [get_pass(step["kind"]).version for step in candidate.steps],
                "data": self.fingerprint,
                "max_length": self.ctx.settings.max_length,
                "latency": self.config.latency.model_dump(mode="json", exclude={"final_runs", "final_time_budget_s"}),
                "libraries": versions((*KEY_LIBRARIES, "onnxruntime")),
            }
        )

    def _measure(self, candidate: Candidate) -> Trial:
        t0 = time.perf_counter()
        try:
            path = self.build(candidate)
            session = create_session(path / ONNX_FILE, threads=self.config.latency.threads)
            logits = self._logits(session, self.validation.texts)
        except (OptkitError, RuntimeError, ValueError) as e:  # a candidate ORT cannot make or run: a result
            return Trial(candidate, 0.0, 0.0, None, None, None, None, 0, time.perf_counter() - t0, error=str(e)[:500])
        predictions = logits.argmax(-1)
        accuracy = float((predictions == self.validation.labels).mean())
        agreement = float((predictions == self.reference_predictions).mean())
        timing = self._time({"candidate": session})
        size = (path / ONNX_FILE).stat().st_size
        c = timing["candidate"]
        return Trial(
            candidate,
            accuracy,
            agreement,
            c["speedup"],
            c["speedup_ci95"],
            c["p50_ms"],
            timing["reference_p50_ms"],
            timing["rounds"],
            time.perf_counter() - t0,
            extra={"size_bytes": size},
        )

    def build(self, candidate: Candidate) -> Path:
        """Run the candidate's steps on the input model; its folder (reused within this run)."""
        if candidate.key in self._built:
            return self._built[candidate.key]
        artifact = self.src
        for i, step in enumerate(candidate.steps):
            spec = get_pass(step["kind"])
            out = self.scratch / f"{candidate.key[:16]}-{i}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            sub = PassContext(
                out_dir=out,
                step=f"{self.ctx.step} ({candidate.label})",
                settings=self.ctx.settings,
                splits=self.ctx.splits,
                progress=SilentProgress(),
                cache=self.ctx.cache,
            )
            spec.fn(artifact, spec.config_cls.model_validate(step), sub)
            artifact = Artifact(out, spec.output_format, key=f"{candidate.key}-{i}")
        self._built[candidate.key] = artifact.path
        return artifact.path

    def _logits(self, session: Any, texts: list[str]) -> Any:
        import numpy as np

        logits = onnx_logits(
            session, self.tokenizer, texts, self.ctx.settings.max_length, self.config.validation_batch_size
        )
        return np.asarray(logits)

    def _time(self, sessions: dict[str, Any], *, final: bool = False) -> dict[str, Any]:
        """p50 of each session and of the reference, timed in the same interleaved rounds."""
        lat = self.config.latency
        runners = {"reference": _runner(self.reference, self._encoding)}
        runners.update({name: _runner(s, self._encoding) for name, s in sessions.items()})
        record: dict[str, Any] = {}
        samples = time_interleaved(
            runners,
            warmup=lat.warmup,
            runs=lat.final_runs if final else lat.runs,
            block=5,
            time_budget_s=lat.final_time_budget_s if final else lat.time_budget_s,
            min_runs=10,
            record=record,
        )
        ref = sorted(samples["reference"])
        ref_p50, (ref_lo, ref_hi) = percentile(ref, 50), bootstrap_median_ci(ref)
        out: dict[str, Any] = {"reference_p50_ms": ref_p50, "rounds": record.get("rounds", 0)}
        for name in sessions:
            xs = sorted(samples[name])
            p50, (lo, hi) = percentile(xs, 50), bootstrap_median_ci(xs)
            out[name] = {
                "p50_ms": p50,
                "speedup": ref_p50 / p50 if p50 > 0 else None,
                # conservative: the slowest reference over the fastest candidate, and the other way
                "speedup_ci95": (ref_lo / hi, ref_hi / lo) if lo > 0 and hi > 0 else None,
                "p50_ci95": (lo, hi),
                "runs": len(xs),
            }
        return out

    def _log(self, number: int, t: Trial) -> None:
        if t.error:
            what = f"failed: {t.error[:120]}"
        else:
            drop = (self.reference_accuracy - t.accuracy) * 100
            speed = f"{t.speedup:.2f}×" if t.speedup else "not timed"
            what = f"validation {t.accuracy:.4f} ({-drop:+.2f} pt), {speed}"
        cached = " (cached)" if t.cached else f" in {t.seconds:.1f} s"
        self.ctx.progress.log(f"  {self.ctx.step}: trial {number} {t.candidate.label}: {what}{cached}")

    # --- sensitivity -------------------------------------------------------------------------------
    def ranking(self, base: Candidate) -> list[tuple[str, list[str]]]:
        """Node groups of ``base``'s quantisation, most sensitive first (cached per lineage)."""
        options = {k: v for k, v in base.steps[-1].items() if k != "nodes_to_exclude"}
        prefix = tuple(base.steps[:-1])  # e.g. a fusion pass: the graph whose nodes are ranked
        if options.get("mode") == "static":  # one calibration per group: cap its rows
            options["calibration_samples"] = min(
                options.get("calibration_samples") or 10**9, len(self.calibration_texts)
            )
        key = cache_key(
            {
                "tune_sensitivity": TRIAL_VERSION,
                "input": self.src.key,
                "base": options,
                "prefix": list(prefix),
                "pass_version": get_pass(options.get("kind", "quantize")).version,
                "rows": self.calibration_texts,
                "libraries": versions((*KEY_LIBRARIES, "onnxruntime")),
            }
        )
        cache = self.ctx.cache
        meta = cache.lookup(key) if cache is not None else None
        if meta is not None:
            scores = json.loads((cache.path(key) / "sensitivity.json").read_text())
        else:
            scores = self._rank(options, prefix)
            if cache is not None:
                cache.build(key, lambda d: _write_json(d / "sensitivity.json", scores, {"sensitivity": True}))
        self.rankings[base.label] = [{k: v for k, v in s.items() if k != "nodes"} for s in scores]
        top = ", ".join(f"{s['group']} ({s['flip_rate'] * 100:.1f}% flips)" for s in scores[:3])
        self.ctx.progress.log(f"  {self.ctx.step}: most sensitive under '{base.label}': {top}")
        return [(s["group"], s["nodes"]) for s in scores]

    def _rank(self, options: dict[str, Any], prefix: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
        graph = self.build(Candidate("prefix", prefix)) / ONNX_FILE if prefix else self.src.onnx_file
        nodes = quantisable_nodes(graph, options.get("op_types"), options["mode"])
        groups = group_nodes(nodes)
        everything = {n for n, _ in nodes}
        reference = self._logits(self.reference, self.calibration_texts)

        def quantise_only(members: list[str]) -> Any:
            others = sorted(everything - set(members))
            cand = Candidate("sensitivity", (*prefix, {**options, "nodes_to_exclude": others}), origin="sensitivity")
            path = self.build(cand)
            logits = self._logits(
                create_session(path / ONNX_FILE, threads=self.config.latency.threads), self.calibration_texts
            )
            shutil.rmtree(path, ignore_errors=True)
            self._built.pop(cand.key, None)
            return logits

        return rank_groups(groups, quantise_only, reference)

    # --- the end ----------------------------------------------------------------------------------
    def final_round(self, state: SearchState, choice: Any) -> dict[str, Any] | None:
        """Time the fastest passing candidates together, interleaved, and name the fastest of them."""
        passing = sorted(state.passing(), key=lambda t: -(t.speedup or 0.0))[: self.config.finalists]
        if len(passing) < 2:
            return None
        sessions = {
            t.candidate.key: create_session(self.build(t.candidate) / ONNX_FILE, threads=self.config.latency.threads)
            for t in passing
        }
        timing = self._time(sessions, final=True)
        rows = [
            {
                "label": t.candidate.label,
                "key": t.candidate.key[:16],
                "p50_ms": round(timing[t.candidate.key]["p50_ms"], 4),
                "p50_ci95": [round(x, 4) for x in timing[t.candidate.key]["p50_ci95"]],
                "speedup": round(timing[t.candidate.key]["speedup"], 4),
                "runs": timing[t.candidate.key]["runs"],
            }
            for t in passing
        ]
        best = min(passing, key=lambda t: timing[t.candidate.key]["p50_ms"])
        # Decisive only if the winner's whole interval lies below every other finalist's.
        upper = timing[best.candidate.key]["p50_ci95"][1]
        others = [timing[t.candidate.key]["p50_ci95"][0] for t in passing if t is not best]
        decisive = all(upper < lo for lo in others)
        self.ctx.progress.log(
            f"  {self.ctx.step}: joint round of {len(rows)} finalists: fastest '{best.candidate.label}'"
        )
        return {
            "reference_p50_ms": round(timing["reference_p50_ms"], 4),
            "rounds": timing["rounds"],
            "finalists": rows,
            "winner": best.candidate.key,
            "winner_label": best.candidate.label,
            "decisive": decisive,
        }

    def materialise(self, candidate: Candidate, out_dir: Path) -> None:
        """Write the candidate's model and side files into ``out_dir`` (the pass's output)."""
        built = self.build(candidate)
        for f in built.iterdir():
            if f.is_file() and not f.name.startswith("."):
                shutil.copy2(f, out_dir / f.name)

    def keep(self, trial: Trial) -> dict[str, Any] | None:
        """Keep ``trial``'s model as a cache entry of its own (nothing passed: the fastest is kept too)."""
        cache = self.ctx.cache
        if cache is None:
            return None
        key = cache_key({"tune_kept": self._trial_key(trial.candidate)})

        def make(d: Path) -> dict[str, Any]:
            self.materialise(trial.candidate, d)
            return {"format": "onnx", "tune_kept": trial.candidate.label}

        cache.build(key, make)
        return {"label": trial.candidate.label, "cache_key": key, "path": str(cache.path(key))}


def _runner(session: Any, encoding: dict[str, Any]) -> Any:
    feed = ort_feed(session, encoding)
    return lambda: session.run(None, feed)


def _store(folder: Path, trial: Trial) -> dict[str, Any]:
    value = {
        "accuracy": trial.accuracy,
        "agreement": trial.agreement,
        "speedup": trial.speedup,
        "speedup_ci95": list(trial.speedup_ci95) if trial.speedup_ci95 else None,
        "p50_ms": trial.p50_ms,
        "reference_p50_ms": trial.reference_p50_ms,
        "rounds": trial.rounds,
        "seconds": trial.seconds,
        "error": trial.error,
        "extra": trial.extra,
    }
    return _write_json(folder / _TRIAL_FILE, value, {"tune_trial": trial.candidate.label})


def _write_json(path: Path, value: Any, meta: dict[str, Any]) -> dict[str, Any]:
    path.write_text(json.dumps(value, sort_keys=True), encoding="utf-8")
    return meta


def _trial_from(candidate: Candidate, v: dict[str, Any], *, cached: bool) -> Trial:
    ci = v.get("speedup_ci95")
    return Trial(
        candidate,
        float(v["accuracy"]),
        float(v["agreement"]),
        v.get("speedup"),
        tuple(ci) if ci else None,
        v.get("p50_ms"),
        v.get("reference_p50_ms"),
        int(v.get("rounds", 0)),
        float(v.get("seconds", 0.0)),
        cached=cached,
        error=v.get("error"),
        extra=dict(v.get("extra") or {}),
    )

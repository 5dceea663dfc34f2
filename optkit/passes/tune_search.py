"""The search of ``tune``, without models: candidates, generators, stopping rules and the choice.

Kept apart from the pass so each rule can be tested in microseconds on made-up trials. A candidate
is a chain of ONNX -> ONNX pass steps (today one ``quantize`` step); a *generator* reads the trials so
far and yields candidates lazily, so a later generator can react to earlier results (the exclusion
generator excludes sensitive node groups from configurations that failed the tolerance). New search
dimensions (graph fusion before quantisation, a library's preset) are new generators or new step
kinds in a candidate's chain, not changes to the loop.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from optkit.cache import cache_key

__all__ = [
    "Candidate",
    "Choice",
    "Generator",
    "SearchState",
    "Trial",
    "choose",
    "estimate_seconds",
    "exclusion_candidates",
    "family",
    "grid_candidates",
    "run_search",
    "within_tolerance",
]

# A float sum of 0/1 hits divided by a count: 0.87 - 0.86 is 0.010000000000000009, so compare with slack.
_EPS = 1e-9


@dataclass(frozen=True)
class Candidate:
    """One configuration to try: a chain of ONNX -> ONNX steps applied to the tune pass's input."""

    label: str  # short, human: "dynamic per-channel MatMul"
    steps: tuple[dict[str, Any], ...]  # each {"kind": ..., **options}, validated by that pass's config
    origin: str = "grid"  # which generator proposed it
    excluded_groups: tuple[str, ...] = ()  # node groups kept in float, most sensitive first
    base: str | None = None  # the key of the candidate it was derived from (exclusion)

    @property
    def key(self) -> str:
        """Identity of the built model: the steps alone (label and origin are descriptions)."""
        return cache_key({"steps": list(self.steps)})


@dataclass
class Trial:
    """What one candidate measured: validation accuracy, latency against the reference, time spent."""

    candidate: Candidate
    accuracy: float
    agreement: float  # share of validation rows whose prediction equals the fp32 reference's
    speedup: float | None  # reference p50 / candidate p50, timed interleaved; None if not timed
    speedup_ci95: tuple[float, float] | None
    p50_ms: float | None
    reference_p50_ms: float | None
    rounds: int
    seconds: float  # wall time of the trial when it ran (not when read back from the cache)
    cached: bool = False
    error: str | None = None  # the candidate could not be built or run: why
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self, number: int, reference_accuracy: float, max_drop: float) -> dict[str, Any]:
        """The trial as the report stores it."""
        c = self.candidate
        return {
            "trial": number,
            "label": c.label,
            "origin": c.origin,
            "steps": [dict(s) for s in c.steps],
            "excluded_groups": list(c.excluded_groups),
            "validation_accuracy": round(self.accuracy, 6),
            "accuracy_drop": round(reference_accuracy - self.accuracy, 6),
            "agreement_with_reference": round(self.agreement, 6),
            "within_tolerance": self.error is None and within_tolerance(self.accuracy, reference_accuracy, max_drop),
            "speedup": None if self.speedup is None else round(self.speedup, 4),
            "speedup_ci95": None if self.speedup_ci95 is None else [round(x, 4) for x in self.speedup_ci95],
            "p50_ms": None if self.p50_ms is None else round(self.p50_ms, 4),
            "reference_p50_ms": None if self.reference_p50_ms is None else round(self.reference_p50_ms, 4),
            "rounds": self.rounds,
            "seconds": round(self.seconds, 2),
            "cached": self.cached,
            "error": self.error,
            **self.extra,
        }


def within_tolerance(accuracy: float, reference: float, max_drop: float) -> bool:
    return reference - accuracy <= max_drop + _EPS


@dataclass
class SearchState:
    """What generators may read: the reference's accuracy, the tolerance and every trial so far."""

    reference_accuracy: float
    max_drop: float
    trials: list[Trial] = field(default_factory=list)
    # Set by run_search: true once the budget is spent, so a generator skips costly preparation
    # (a sensitivity ranking) whose candidates could never run.
    out_of_budget: Callable[[], bool] = lambda: False
    # Candidates not started because their estimated time would overrun the budget: (label, estimate s).
    skipped: list[tuple[str, float]] = field(default_factory=list)

    def passing(self) -> list[Trial]:
        return [
            t
            for t in self.trials
            if t.error is None and within_tolerance(t.accuracy, self.reference_accuracy, self.max_drop)
        ]

    def tried(self, candidate: Candidate) -> bool:
        return any(t.candidate.key == candidate.key for t in self.trials)


Generator = Callable[[SearchState], Iterable[Candidate]]


@dataclass(frozen=True)
class Choice:
    """The outcome: the trial chosen, and what else is kept when nothing passes."""

    outcome: str  # "within_tolerance" | "nothing_passed" | "no_trials"
    chosen: Trial | None  # the fastest within tolerance; if none passes, the most accurate
    most_accurate: Trial | None
    fastest: Trial | None


def _speed(t: Trial) -> float:
    return t.speedup if t.speedup is not None else 0.0


def choose(state: SearchState) -> Choice:
    """The fastest trial within tolerance (not the first that passed); ties go to the more accurate.

    When none passes, the most accurate trial is chosen (the variant stays measurable) and the
    fastest is named beside it, so a failed search still hands over both ends of the trade.
    """
    ok = [t for t in state.trials if t.error is None]
    if not ok:
        return Choice("no_trials", None, None, None)
    most_accurate = max(ok, key=lambda t: (t.accuracy, _speed(t)))
    fastest = max(ok, key=lambda t: (_speed(t), t.accuracy))
    passing = state.passing()
    if passing:
        best = max(passing, key=lambda t: (_speed(t), t.accuracy))
        return Choice("within_tolerance", best, most_accurate, fastest)
    return Choice("nothing_passed", most_accurate, most_accurate, fastest)


def grid_candidates(space: Sequence[tuple[str, dict[str, Any] | tuple[dict[str, Any], ...]]]) -> Generator:
    """Yield each (label, steps) of a precomputed grid, in order; bare options mean one quantize step."""

    def generate(state: SearchState) -> Iterator[Candidate]:
        for label, steps in space:
            chain = ({"kind": "quantize", **steps},) if isinstance(steps, dict) else tuple(steps)
            yield Candidate(label, chain, origin="grid")

    return generate


def exclusion_candidates(
    ranking: Callable[[Candidate], list[tuple[str, list[str]]]],
    *,
    max_groups: int,
    bases: int,
) -> Generator:
    """For the ``bases`` most accurate failing grid trials: keep 1, 2, ... of their most sensitive node
    groups in float, in order of sensitivity, until one passes or ``max_groups`` are kept.

    ``ranking(candidate)`` returns [(group, node names)] most sensitive first; it is called only
    for a base that is tried, because it costs one quantisation per group.
    """

    def generate(state: SearchState) -> Iterator[Candidate]:
        failing = [
            t
            for t in state.trials
            if t.error is None
            and t.candidate.origin == "grid"
            and not within_tolerance(t.accuracy, state.reference_accuracy, state.max_drop)
        ]
        failing.sort(key=lambda t: (-t.accuracy, -_speed(t)))
        failing = [t for t in failing if t.candidate.steps[-1].get("kind") == "quantize"]  # it names nodes
        for base in failing[:bases]:
            if state.out_of_budget():
                return
            groups = ranking(base.candidate)
            for k in range(1, min(max_groups, len(groups)) + 1):
                kept = groups[:k]
                nodes = sorted({n for _, names in kept for n in names})
                first = dict(base.candidate.steps[-1])
                first["nodes_to_exclude"] = sorted(set(first.get("nodes_to_exclude") or []) | set(nodes))
                names = tuple(g for g, _ in kept)
                cand = Candidate(
                    f"{base.candidate.label} − {k} group(s) float",
                    (*base.candidate.steps[:-1], first),
                    origin="exclusion",
                    excluded_groups=names,
                    base=base.candidate.key,
                )
                yield cand
                last = next((t for t in reversed(state.trials) if t.candidate.key == cand.key), None)
                if (
                    last is not None
                    and last.error is None
                    and within_tolerance(last.accuracy, state.reference_accuracy, state.max_drop)
                ):
                    break  # tolerance holds: more float groups only cost speed

    return generate


def family(candidate: Candidate) -> tuple[Any, ...]:
    """What a trial's cost depends on: the chain's step kinds, and the quantisation mode and calibration.

    Static calibration (percentile and entropy above all: a histogram of every activation) costs many
    times a dynamic trial, so each family is estimated from its own finished trials.
    """
    last = candidate.steps[-1] if candidate.steps else {}
    kinds = tuple(str(s.get("kind")) for s in candidate.steps)
    return kinds, last.get("mode"), last.get("calibration"), last.get("preset")


def estimate_seconds(state: SearchState, candidate: Candidate) -> float | None:
    """Median wall time of this candidate's family so far; an unseen family is assumed as costly as the
    costliest trial yet (None before any trial ran: nothing to go on)."""
    ran = [t for t in state.trials if not t.cached and t.seconds > 0]
    same = sorted(t.seconds for t in ran if family(t.candidate) == family(candidate))
    if same:
        return same[len(same) // 2]
    return max((t.seconds for t in ran), default=None)


def run_search(
    state: SearchState,
    generators: Sequence[Generator],
    run_trial: Callable[[Candidate, int], Trial],
    *,
    max_trials: int,
    time_budget_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Try every candidate the generators yield until a budget ends; returns what stopped the search.

    ``"max_trials"`` or ``"time_budget"`` or ``"space_exhausted"``. The budget is checked before each
    trial against the trial's estimated time (``estimate_seconds``): a candidate that would overrun it
    is skipped (``state.skipped``) and a cheaper one after it may still run, so a started trial rarely
    runs past the budget and never starts after it. Candidates already tried (same steps) are skipped.
    Cached trials count towards ``max_trials`` but cost no time, so a resumed search re-reads them.
    """
    started = clock()

    def spent() -> str | None:
        if len(state.trials) >= max_trials:
            return "max_trials"
        return "time_budget" if clock() - started >= time_budget_s else None

    state.out_of_budget = lambda: spent() is not None
    for candidate in itertools.chain.from_iterable(g(state) for g in generators):
        if state.tried(candidate):
            continue
        if reason := spent():
            return reason
        guess = estimate_seconds(state, candidate)
        if guess is not None and clock() - started + guess > time_budget_s:
            state.skipped.append((candidate.label, round(guess, 1)))
            continue
        state.trials.append(run_trial(candidate, len(state.trials) + 1))
    return spent() or ("time_budget" if state.skipped else "space_exhausted")

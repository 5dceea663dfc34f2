"""Compare two reports (a stored baseline and a new run) and decide whether the new one regressed.

A latency regression fails only when it is beyond the threshold *and* beyond the measured noise:
the new run's 95% CI of the median must lie above the baseline's CI by more than the threshold
(``new_ci_low / base_ci_high - 1 > threshold``). Two runs of the same model on a busy machine
then do not fail CI, while a variant that really got slower does. Schema-1 reports carry no
samples; their interval is the normal approximation of the median's standard error
(``1.2533 * std / sqrt(runs)``), and the output says so.

Speed and memory are only comparable on the same kind of machine, so reports from different
CPUs, ISAs or CPU counts are refused unless the caller allows it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optkit.errors import OptkitError
from optkit.reports.model import ReportError, check_report

__all__ = [
    "CompareError",
    "EnvironmentMismatch",
    "Thresholds",
    "compare_reports",
    "load_report",
    "parse_fraction",
    "render_comparison",
]

# A change of exactly the allowed amount passes: 1000 -> 1100 MB is +0.10000000000000009 in floats.
_FLOAT_SLACK = 1e-12

SUPPORTED_VERSIONS = (1, 2, 3)
_BUSIER_BY = 0.15  # NEW's timing window had this much more of the CPUs taken by others than BASE's


class CompareError(OptkitError):
    """A report cannot be read or compared (exit 2). Kept here: only compare raises it."""


class EnvironmentMismatch(CompareError):
    """The two reports come from different machines; figures are not comparable."""


@dataclass(frozen=True)
class Thresholds:
    """Allowed change from BASE to NEW; fractions (0.10 = 10%), accuracy in absolute fraction (0.01 = 1 point)."""

    max_accuracy_drop: float = 0.01
    max_latency_regression: float = 0.10
    max_memory_regression: float = 0.10


def parse_fraction(text: str | float) -> float:
    """``"10%"`` -> 0.10, ``"0.1"`` -> 0.10; raises ``CompareError`` on anything else or a negative value."""
    s = str(text).strip()
    try:
        value = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        raise CompareError(
            f"threshold {s!r} is not a number; write it as a fraction (0.1) or a percentage (10%)"
        ) from None
    if value < 0 or math.isnan(value):
        raise CompareError(f"threshold {s!r} must be 0 or more")
    return value


def load_report(path: str | Path) -> dict[str, Any]:
    """Read a report.json of any supported schema version and check it against its JSON Schema."""
    path = Path(path)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CompareError(f"report {str(path)!r} does not exist") from None
    except (OSError, ValueError) as e:
        raise CompareError(f"report {str(path)!r} is not readable JSON: {e}") from None
    version = report.get("schema_version") if isinstance(report, dict) else None
    if version not in SUPPORTED_VERSIONS:
        raise CompareError(
            f"report {str(path)!r} has schema_version {version!r}; this optkit reads versions "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))}"
        )
    try:
        check_report(report, f"report {str(path)!r}")
    except ReportError as e:
        raise CompareError(str(e)) from None
    return report


def _machine(report: dict[str, Any]) -> dict[str, Any]:
    env = report["environment"]
    return {
        "cpu": env["cpu"]["model"],
        "isa": sorted(env["cpu"]["isa"]),
        "int8_vnni": env["cpu"]["int8_vnni"],
        "cpus": env["cpus_available"],
    }


def _describe(m: dict[str, Any]) -> str:
    return (
        f"{m['cpu']!r} ({m['cpus']} CPUs, {', '.join(m['isa']) or 'no AVX2'}, VNNI {'yes' if m['int8_vnni'] else 'no'})"
    )


def _ci(row: dict[str, Any]) -> tuple[float, float, bool]:
    """(low, high, exact): the stored bootstrap CI, or the normal approximation for schema-1 rows."""
    lat = row["latency"]
    if "p50_ci95_ms" in lat:
        lo, hi = lat["p50_ci95_ms"]
        return lo, hi, True
    half = 1.96 * 1.2533 * lat["std_ms"] / math.sqrt(max(lat["runs"], 1))
    return lat["p50_ms"] - half, lat["p50_ms"] + half, False


def _key(row: dict[str, Any]) -> tuple[str, str, int, int]:
    return row["variant"], row["provider"], row["batch"], row["seq"]


def _label(key: tuple[str, str, int, int]) -> str:
    return f"{key[0]} {key[1]} b{key[2]}×s{key[3]}"


def compare_reports(
    base: dict[str, Any],
    new: dict[str, Any],
    thresholds: Thresholds = Thresholds(),
    *,
    allow_env_mismatch: bool = False,
) -> dict[str, Any]:
    """Match variants and shapes, and return ``{"checks": [...], "passed": bool, "notes": [...]}``.

    Each check has ``item``, ``metric``, ``base``, ``new``, ``change``, ``allowed``, ``passed`` and
    a ``message``, and the row it is about as ``variant`` (and ``provider``, ``batch``, ``seq`` for
    speed and memory). Rows measured in BASE but missing from NEW fail: a gate cannot pass on a
    figure that was not taken.
    """
    notes = _environment_notes(base, new, allow_env_mismatch)
    checks = _accuracy_checks(base, new, thresholds, notes)
    speed_checks, approx, machine_suspects = _speed_and_memory_checks(base, new, thresholds)
    checks += speed_checks
    if machine_suspects:
        notes.append(
            "some regressions were timed while other processes took a much larger share of the CPUs than in BASE "
            "(recorded per row as contention.other_cpu_share): rerun NEW on a quiet machine before trusting them"
        )
    for label, report in (("BASE", base), ("NEW", new)):
        noisy = [r for r in report["results"] if (r.get("latency") or {}).get("noisy")]
        if noisy:
            notes.append(
                f"{label} has {len(noisy)} noisy row(s) (robust CV above 0.10): a busy machine slows every variant "
                f"alike, which reads as a regression here; rerun on a quiet machine or compare the speed-ups"
            )
    if approx:
        notes.append(
            "a schema-1 report stores no latency samples: its 95% CI of the median is the normal approximation "
            "1.2533·std/√runs, not a bootstrap"
        )
    return {
        "base": {"finished": base.get("finished"), "schema_version": base["schema_version"]},
        "new": {"finished": new.get("finished"), "schema_version": new["schema_version"]},
        "thresholds": thresholds.__dict__,
        "checks": checks,
        "notes": notes,
        "passed": all(c["passed"] for c in checks),
    }


def _environment_notes(base: dict[str, Any], new: dict[str, Any], allow_env_mismatch: bool) -> list[str]:
    """Refuse reports from different machines (unless allowed); note threads and library versions that differ."""
    notes: list[str] = []
    mb, mn = _machine(base), _machine(new)
    if mb != mn:
        msg = (
            f"BASE was measured on {_describe(mb)} and NEW on {_describe(mn)}; latency and memory are only "
            f"comparable on the same kind of machine"
        )
        if not allow_env_mismatch:
            raise EnvironmentMismatch(msg)
        notes.append(f"environment differs (allowed): {msg}")
    if base.get("threads") != new.get("threads"):
        notes.append(f"threads differ: BASE {base.get('threads')}, NEW {new.get('threads')}")
    lib_b, lib_n = base["environment"]["libraries"], new["environment"]["libraries"]
    for lib in sorted(set(lib_b) & set(lib_n)):
        if lib_b[lib] != lib_n[lib]:
            notes.append(f"{lib} {lib_b[lib]} → {lib_n[lib]}")
    return notes


def _accuracy_checks(
    base: dict[str, Any], new: dict[str, Any], thresholds: Thresholds, notes: list[str]
) -> list[dict[str, Any]]:
    """One check per variant in BASE: missing in NEW fails, an accuracy drop beyond the threshold fails.

    Where both reports scored the same eval rows, each check also carries the paired 95% interval of
    the change, McNemar's p and the rows that flipped; where they did not, a note says why not.
    """
    checks: list[dict[str, Any]] = []
    metric = _quality_metric(base)  # accuracy; another task's primary metric (entity_f1, f1, ...)
    pairing = _pairing(base, new)
    if isinstance(pairing, str):
        if any(metric in v for v in base["variants"].values()):
            notes.append(f"{metric} interval not available: {pairing}")
        pairing = None
    for name, vb in base["variants"].items():
        vn = new["variants"].get(name)
        if vn is None:
            checks.append(_missing(name, "variant") | {"variant": name})
            continue
        if metric not in vb or metric not in vn:
            continue  # bench reports measure speed and memory only
        drop = vb[metric] - vn[metric]
        paired = _paired(pairing, name, vb, vn, notes) if pairing else {}
        noise = ""
        if paired.get("interval"):
            lo, hi = paired["interval"]
            noise = (
                f", 95% CI {lo * 100:+.2f}…{hi * 100:+.2f}, {paired['verdict']}; {paired['flipped_rows']} rows flipped"
            )
        check = _check(
            name,
            metric,
            vb[metric],
            vn[metric],
            -drop + 0.0,  # no "-0.00" for an unchanged accuracy
            thresholds.max_accuracy_drop,
            drop <= thresholds.max_accuracy_drop + _FLOAT_SLACK,
            f"{metric} {vb[metric]:.4f} → {vn[metric]:.4f} ({-drop * 100:+.2f} points{noise}; "
            f"allowed drop {thresholds.max_accuracy_drop * 100:.2f})",
        ) | {"variant": name}
        checks.append(check | paired)
    for name in new["variants"]:
        if name not in base["variants"]:
            notes.append(f"variant {name!r} is new (not in BASE); nothing to compare it with")
    return checks


def _quality_metric(report: dict[str, Any]) -> str:
    """The metric compare's quality check reads: accuracy for classifiers and reports that predate tasks;
    the task's primary metric otherwise (its higher-is-better direction is the only one compare knows)."""
    task = report.get("task") or {}
    primary = str(task.get("primary_metric", "accuracy"))
    higher = next((m.get("higher_is_better", True) for m in task.get("metrics", []) if m.get("name") == primary), True)
    return primary if higher else "accuracy"


def _pairing(base: dict[str, Any], new: dict[str, Any]) -> tuple[Any, list[Any], list[str], int] | str:
    """(task, eval targets, class names, seed) when both reports scored the same eval rows; else why not."""
    from optkit.evaluate.paired import decode_predictions
    from optkit.tasks import get_task

    db, dn = base.get("data") or {}, new.get("data") or {}
    missing = [label for label, d in (("BASE", db), ("NEW", dn)) if "eval_targets" not in d]
    if missing:
        verb = "stores" if len(missing) == 1 else "store"
        return f"{' and '.join(missing)} {verb} no eval predictions (written before schema 3)"
    if db.get("fingerprint") != dn.get("fingerprint"):
        return (
            f"the reports scored different eval data (fingerprint {str(db.get('fingerprint'))[:12]} vs "
            f"{str(dn.get('fingerprint'))[:12]}): rows cannot be paired"
        )
    targets = decode_predictions(db["eval_targets"])
    if targets != decode_predictions(dn["eval_targets"]):
        return "the reports' eval targets differ although their data fingerprints are equal: rows cannot be paired"
    name = (new.get("task") or {}).get("name", "text-classification")
    try:
        task = get_task(name)
    except OptkitError:
        return f"task {name!r} is not known to this optkit"
    seed = (base.get("seeds") or {}).get("recipe", 0)
    return task, targets, list(db.get("labels") or []), int(seed)


def _paired(
    pairing: tuple[Any, list[Any], list[str], int], name: str, vb: dict[str, Any], vn: dict[str, Any], notes: list[str]
) -> dict[str, Any]:
    """BASE's and NEW's predictions of one variant, paired row by row: interval, McNemar p, rows flipped."""
    from optkit.evaluate.paired import decode_predictions, paired_change

    task, targets, names, seed = pairing
    if "eval_predictions" not in vb or "eval_predictions" not in vn:
        notes.append(f"{name}: accuracy interval not available: a report has no eval predictions for this variant")
        return {}
    before, after = decode_predictions(vb["eval_predictions"]), decode_predictions(vn["eval_predictions"])
    if not len(before) == len(after) == len(targets):
        notes.append(f"{name}: accuracy interval not available: {len(before)} vs {len(after)} predictions stored")
        return {}
    change = paired_change(task, before, after, targets, names, seed=seed, per_class=False)
    primary = task.primary_metric
    return {
        "interval": change.get(f"{primary}_delta_ci95"),
        "verdict": change.get(f"{primary}_delta_verdict"),
        "mcnemar_p": change.get("mcnemar_p"),
        "flipped_rows": change["changed_rows"],
        "discordant_rows": change.get("discordant_rows"),
        "flipped_examples": _flipped(before, after, targets, names),
    }


def _flipped(before: list[Any], after: list[Any], targets: list[Any], names: list[str], most: int = 10) -> list[dict]:
    """The first ``most`` eval rows whose prediction differs: position in the eval split, target, BASE, NEW."""

    def shown(v: Any) -> Any:
        return names[v] if names and isinstance(v, int) and 0 <= v < len(names) else v

    rows = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b][:most]
    return [{"row": i, "label": shown(targets[i]), "base": shown(before[i]), "new": shown(after[i])} for i in rows]


def _speed_and_memory_checks(
    base: dict[str, Any], new: dict[str, Any], thresholds: Thresholds
) -> tuple[list[dict[str, Any]], bool, int]:
    """Latency and memory checks per measured row; whether a CI was approximated; regressions blamed on load."""
    checks: list[dict[str, Any]] = []
    rows_new = {_key(r): r for r in new["results"] if r["status"] == "measured"}
    approx, machine_suspects = False, 0
    for rb in base["results"]:
        if rb["status"] != "measured":
            continue
        key = _key(rb)
        rn = rows_new.get(key)
        if rn is None:
            if key[0] in new["variants"]:
                checks.append(_missing(_label(key), "latency") | _where(key))
            continue
        check, exact, busier = _latency_check(rb, rn, key, thresholds)
        checks.append(check | _where(key))
        approx |= not exact
        machine_suspects += busier
        checks += [c | _where(key) for c in _memory_checks(rb, rn, key, thresholds)]
    return checks, approx, machine_suspects


def _latency_check(
    rb: dict[str, Any], rn: dict[str, Any], key: tuple[str, str, int, int], thresholds: Thresholds
) -> tuple[dict[str, Any], bool, bool]:
    """The p50 check for one row: a regression only beyond both runs' intervals and the threshold."""
    lo_b, hi_b, exact_b = _ci(rb)
    lo_n, hi_n, exact_n = _ci(rn)
    p_b, p_n = rb["latency"]["p50_ms"], rn["latency"]["p50_ms"]
    change = p_n / p_b - 1
    beyond_noise = lo_n / hi_b - 1
    passed = beyond_noise <= thresholds.max_latency_regression + _FLOAT_SLACK
    busier = ""
    if passed and change > thresholds.max_latency_regression:
        verdict = "within noise"
    elif passed:
        verdict = "ok"
    else:
        busier = _busier(rb, rn)
        verdict = (
            f"REGRESSION: even the fastest reading of NEW is {beyond_noise * 100:+.1f}% vs the slowest of BASE{busier}"
        )
    check = _check(
        _label(key),
        "p50 latency",
        p_b,
        p_n,
        change,
        thresholds.max_latency_regression,
        passed,
        f"p50 {p_b:.2f} ms [{lo_b:.2f}–{hi_b:.2f}] → {p_n:.2f} ms [{lo_n:.2f}–{hi_n:.2f}] "
        f"({change * 100:+.1f}%; allowed {thresholds.max_latency_regression * 100:.0f}% beyond noise): {verdict}",
    )
    return check, exact_b and exact_n, bool(busier)


def _memory_checks(
    rb: dict[str, Any], rn: dict[str, Any], key: tuple[str, str, int, int], thresholds: Thresholds
) -> list[dict[str, Any]]:
    checks = []
    mem_b, mem_n = rb.get("memory") or {}, rn.get("memory") or {}
    for metric, unit in (("peak_rss_mb", "peak RSS"), ("gpu_peak_mb", "GPU memory")):
        if mem_b.get(metric) and mem_n.get(metric):
            mchange = mem_n[metric] / mem_b[metric] - 1
            checks.append(
                _check(
                    _label(key),
                    unit,
                    mem_b[metric],
                    mem_n[metric],
                    mchange,
                    thresholds.max_memory_regression,
                    mchange <= thresholds.max_memory_regression + _FLOAT_SLACK,
                    f"{unit} {mem_b[metric]:.0f} → {mem_n[metric]:.0f} MB ({mchange * 100:+.1f}%; "
                    f"allowed {thresholds.max_memory_regression * 100:.0f}%)",
                )
            )
    return checks


def _busier(rb: dict[str, Any], rn: dict[str, Any]) -> str:
    """Why a regression may be the machine's: NEW was timed while others took much more of the CPUs."""
    other_b = (rb.get("contention") or {}).get("other_cpu_share")
    other_n = (rn.get("contention") or {}).get("other_cpu_share")
    if other_n is None or other_n - (other_b or 0.0) <= _BUSIER_BY:
        return ""
    base = f"{other_b:.0%}" if other_b is not None else "not recorded"
    return f"; but other processes used {other_n:.0%} of the CPUs while NEW was timed (BASE {base}): likely the machine"


def _where(key: tuple[str, str, int, int]) -> dict[str, Any]:
    """The row a check is about, as fields: a CI summary names it without parsing ``item``."""
    return {"variant": key[0], "provider": key[1], "batch": key[2], "seq": key[3]}


def _check(
    item: str, metric: str, base: float, new: float, change: float, allowed: float, passed: bool, message: str
) -> dict[str, Any]:
    return {
        "item": item,
        "metric": metric,
        "base": base,
        "new": new,
        "change": change,
        "allowed": allowed,
        "passed": bool(passed),
        "message": f"{item}: {message}",
    }


def _missing(item: str, metric: str) -> dict[str, Any]:
    return {
        "item": item,
        "metric": metric,
        "base": None,
        "new": None,
        "change": None,
        "allowed": None,
        "passed": False,
        "message": f"{item}: measured in BASE but missing from NEW",
    }


def render_comparison(result: dict[str, Any]) -> str:
    """The diff as a Markdown table (fits a terminal and a CI step summary alike)."""
    lines = ["| | item | metric | BASE | NEW | change | allowed |", "|---|---|---|---|---|---|---|"]
    for c in result["checks"]:
        mark = "ok" if c["passed"] else "FAIL"
        if c["base"] is None:
            lines.append(f"| {mark} | {c['item']} | {c['metric']} | – | missing | | |")
            continue
        pct = c["metric"] != "accuracy"
        fmt = "{:.2f}" if pct else "{:.4f}"
        change = f"{c['change'] * 100:+.1f}%" if pct else f"{c['change'] * 100:+.2f} pts"
        if c.get("interval"):
            lo, hi = c["interval"]
            change += f" [{lo * 100:+.2f}…{hi * 100:+.2f}, {c['verdict']}]"
        allowed = f"{c['allowed'] * 100:.0f}%" if pct else f"-{c['allowed'] * 100:.2f} pts"
        lines.append(
            f"| {mark} | {c['item']} | {c['metric']} | {fmt.format(c['base'])} | {fmt.format(c['new'])} "
            f"| {change} | {allowed} |"
        )
    flips = [c for c in result["checks"] if "flipped_rows" in c]
    if flips:
        lines += ["", "Rows that flipped between BASE and NEW (same eval rows, paired):"]
        for c in flips:
            d = c.get("discordant_rows") or {}
            turned = (
                f": {d['variant_only_right']} now right, {d['reference_only_right']} now wrong, "
                f"McNemar p {c['mcnemar_p']:.3g}"
                if d and c.get("mcnemar_p") is not None
                else ""
            )
            lines.append(f"- {c['item']}: {c['flipped_rows']} rows{turned}")
            shown = c.get("flipped_examples") or []
            if shown:
                listed = "; ".join(f"row {e['row']} ({e['label']}): {e['base']} → {e['new']}" for e in shown)
                more = f" (first {len(shown)})" if c["flipped_rows"] > len(shown) else ""
                lines.append(f"  - eval rows{more}: {listed}")
    return "\n".join(lines) + "\n"

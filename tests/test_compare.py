"""optkit compare on the committed schema-1 report and on schema-2 reports derived from it."""

from __future__ import annotations

import copy
import json
import random
import statistics
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from optkit.cli import cli
from optkit.compare import (
    CompareError,
    EnvironmentMismatch,
    Thresholds,
    compare_reports,
    load_report,
    parse_fraction,
    render_comparison,
)
from optkit.evaluate.paired import decode_predictions, encode_predictions
from optkit.evaluate.stats import summarize
from optkit.reports.schema import validate_report

V1 = Path(__file__).parent / "reports" / "data" / "bert-int8-v1.json"


def _v2(seed: int = 0, slower: dict[str, float] | None = None, noise: float = 0.05) -> dict[str, Any]:
    """A schema-2 report from the v1 one: samples drawn around each p50 (scaled for ``slower`` variants)."""
    report = json.loads(V1.read_text())
    report.update(schema_version=2, kind="recipe", notes=[], steps=[])
    report["environment"]["cpu_affinity"] = [0, 1]
    rng = random.Random(seed)
    for r in report["results"]:
        if r["status"] != "measured":
            continue
        p50 = r["latency"]["p50_ms"] * (slower or {}).get(r["variant"], 1.0)
        samples = [p50 * (1 + rng.gauss(0, noise)) for _ in range(100)]
        r["latency"] = summarize(samples, r["batch"])
        r["samples_ms"] = samples
    return report


def _row(report: dict[str, Any], item: str) -> dict[str, Any]:
    """The measured result row a check's item (``variant provider bB×sS``) names."""
    return next(
        r
        for r in report["results"]
        if r["status"] == "measured" and f"{r['variant']} {r['provider']} b{r['batch']}×s{r['seq']}" == item
    )


def test_reads_schema_1_and_same_report_passes() -> None:
    base = load_report(V1)
    result = compare_reports(base, copy.deepcopy(base))
    assert result["passed"] and len(result["checks"]) == 4 + 8 + 8  # accuracy, latency and RSS checks
    assert any("schema-1 report stores no latency samples" in n for n in result["notes"])


def test_noise_alone_passes_a_real_slowdown_fails() -> None:
    assert validate_report(_v2()) == []
    quiet = compare_reports(_v2(seed=1), _v2(seed=2, noise=0.15))
    assert quiet["passed"], [c["message"] for c in quiet["checks"] if not c["passed"]]
    base, new = _v2(seed=1), _v2(seed=2, slower={"int8-dynamic": 1.4})
    slow = compare_reports(base, new)
    failed = [c for c in slow["checks"] if not c["passed"]]
    assert {c["item"] for c in failed} == {"int8-dynamic cpu b1×s128", "int8-dynamic cpu b8×s128"}
    for check in failed:  # the figures in the message are the inputs' own, worked out here without optkit
        rb, rn = _row(base, check["item"]), _row(new, check["item"])
        change = statistics.median(rn["samples_ms"]) / statistics.median(rb["samples_ms"]) - 1
        assert 0.3 < change < 0.5  # the 1.4x slow-down, moved by the 5% noise of 100 samples
        beyond = rn["latency"]["p50_ci95_ms"][0] / rb["latency"]["p50_ci95_ms"][1] - 1
        assert check["change"] == pytest.approx(change, rel=1e-12)
        assert f"({change * 100:+.1f}%; allowed 10% beyond noise): REGRESSION" in check["message"]
        assert f"even the fastest reading of NEW is {beyond * 100:+.1f}% vs the slowest of BASE" in check["message"]
    # a 12% slowdown that the noise cannot rule out does not fail at 10%
    close = compare_reports(_v2(seed=1, noise=0.2), _v2(seed=2, noise=0.2, slower={"fp32-onnx": 1.12}))
    assert close["passed"]
    assert any(n.startswith("NEW has 8 noisy row(s)") for n in close["notes"])


def test_a_regression_timed_on_a_busier_machine_says_so() -> None:
    base, new = _v2(seed=1), _v2(seed=2, slower={"int8-dynamic": 1.4})
    for report, share in ((base, 0.02), (new, 0.48)):
        for r in report["results"]:
            r["contention"] = {"other_cpu_share": share, "steal_share": 0.0, "window_s": 20.0, "cpus": 2}
    assert validate_report(new) == []
    result = compare_reports(base, new)
    failed = [c for c in result["checks"] if not c["passed"]]
    assert len(failed) == 2  # still a failure: the gate does not guess, it explains
    assert any(n.startswith("some regressions were timed while other processes") for n in result["notes"])
    assert "other processes used 48% of the CPUs while NEW was timed (BASE 2%)" in failed[0]["message"]
    for r in new["results"]:  # as busy as BASE: nothing to explain
        r["contention"]["other_cpu_share"] = 0.05
    failed = [c for c in compare_reports(base, new)["checks"] if not c["passed"]]
    assert len(failed) == 2 and "other processes" not in failed[0]["message"]


def test_accuracy_drop_memory_growth_and_missing_variant_fail() -> None:
    base, new = _v2(), _v2()
    new["variants"]["int8-static"]["accuracy"] -= 0.02
    new["results"][1]["memory"]["peak_rss_mb"] *= 1.3
    del new["variants"]["int8-dynamic"]
    new["results"] = [r for r in new["results"] if r["variant"] != "int8-dynamic"]
    result = compare_reports(base, new, Thresholds(max_accuracy_drop=0.01))
    failed = {(c["item"], c["metric"]) for c in result["checks"] if not c["passed"]}
    assert ("int8-static", "accuracy") in failed and ("int8-dynamic", "variant") in failed
    assert ("fp32-onnx cpu b1×s128", "peak RSS") in failed


def test_refuses_other_machines_unless_allowed() -> None:
    base, new = _v2(), _v2()
    new["environment"]["cpu"].update(model="Intel Xeon", isa=["AVX2", "AVX-512F", "AVX-512 VNNI"], int8_vnni=True)
    with pytest.raises(EnvironmentMismatch, match=r"'AMD EPYC' .* and NEW on 'Intel Xeon' .*VNNI yes"):
        compare_reports(base, new)
    assert compare_reports(base, new, allow_env_mismatch=True)["notes"][0].startswith("environment differs (allowed)")


def test_thresholds_parse_and_bad_reports_are_clear(tmp_path: Path) -> None:
    assert parse_fraction("10%") == pytest.approx(0.1) and parse_fraction("0.02") == 0.02
    with pytest.raises(CompareError, match="not a number"):
        parse_fraction("ten")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema_version": 9}))
    with pytest.raises(CompareError, match="schema_version 9"):
        load_report(bad)
    broken = _v2()
    del broken["results"][0]["latency"]["p50_ci95_ms"]
    bad.write_text(json.dumps(broken))
    with pytest.raises(CompareError, match="p50_ci95_ms"):
        load_report(bad)


def test_cli_exit_codes_table_and_junit(tmp_path: Path) -> None:
    base, slow, other = tmp_path / "base.json", tmp_path / "slow.json", tmp_path / "other.json"
    base.write_text(json.dumps(_v2(seed=1)))
    slow.write_text(json.dumps(_v2(seed=2, slower={"fp32-onnx": 1.5})))
    o = _v2()
    o["environment"]["cpus_available"] = 8
    other.write_text(json.dumps(o))
    runner = CliRunner()
    ok = runner.invoke(cli, ["compare", str(base), str(base)])
    assert ok.exit_code == 0 and "| ok | int8-dynamic cpu b1×s128 | p50 latency |" in ok.output
    junit = tmp_path / "compare.xml"
    bad = runner.invoke(
        cli, ["compare", str(base), str(slow), "--max-latency-regression", "10%", "--junit", str(junit)]
    )
    assert bad.exit_code == 1 and "FAIL fp32-onnx cpu b1×s128: p50" in bad.output
    assert 'failures="2"' in junit.read_text()
    env = runner.invoke(cli, ["compare", str(base), str(other)])
    assert env.exit_code == 2 and "--allow-env-mismatch" in env.output and "8 CPUs" in env.output


def test_the_table_shows_every_check_with_its_own_figures() -> None:
    """The Markdown table a CI step shows: one line per check, figures and limits as the user set them."""
    base, new = _v2(seed=1), _v2(seed=1)  # the same samples: latency unchanged
    new["variants"]["int8-static"]["accuracy"] -= 0.02
    new["results"][1]["memory"]["peak_rss_mb"] *= 1.3  # fp32-onnx b1
    del new["variants"]["int8-dynamic"]
    new["results"] = [r for r in new["results"] if r["variant"] != "int8-dynamic"]
    result = compare_reports(base, new, Thresholds(max_latency_regression=0.6))
    missing = {
        "item": "int8-dynamic",
        "metric": "variant",
        "base": None,
        "new": None,
        "change": None,
        "allowed": None,
        "passed": False,
        "message": "int8-dynamic: measured in BASE but missing from NEW",
        "variant": "int8-dynamic",  # the row as fields too, so a CI summary need not parse 'item'
    }
    assert missing in result["checks"] and len(result["checks"]) == 4 + 6 + 6  # accuracy, latency, RSS
    acc_b, acc_n = base["variants"]["int8-static"]["accuracy"], new["variants"]["int8-static"]["accuracy"]
    acc_0 = base["variants"]["baseline"]["accuracy"]
    rss_b, rss_n = base["results"][1]["memory"]["peak_rss_mb"], new["results"][1]["memory"]["peak_rss_mb"]
    p50 = base["results"][1]["latency"]["p50_ms"]
    table = render_comparison(result)
    lines = table.split("\n")
    assert lines[:2] == ["| | item | metric | BASE | NEW | change | allowed |", "|---|---|---|---|---|---|---|"]
    assert lines[-1] == "" and len(lines) == 2 + len(result["checks"]) + 1  # one line per check, newline-ended
    for row in (
        f"| ok | baseline | accuracy | {acc_0:.4f} | {acc_0:.4f} | +0.00 pts | -1.00 pts |",
        f"| FAIL | int8-static | accuracy | {acc_b:.4f} | {acc_n:.4f} | {(acc_n - acc_b) * 100:+.2f} pts | -1.00 pts |",
        "| FAIL | int8-dynamic | variant | – | missing | | |",
        f"| ok | fp32-onnx cpu b1×s128 | p50 latency | {p50:.2f} | {p50:.2f} | +0.0% | 60% |",
        f"| FAIL | fp32-onnx cpu b1×s128 | peak RSS | {rss_b:.2f} | {rss_n:.2f} | +30.0% | 10% |",
    ):
        assert row in lines, row
    latency = next(c for c in result["checks"] if c["item"] == "fp32-onnx cpu b1×s128" and c["metric"] == "p50 latency")
    assert latency["message"].endswith("(+0.0%; allowed 60% beyond noise): ok")
    assert lines.index("| FAIL | int8-dynamic | variant | – | missing | | |") < lines.index(
        f"| ok | fp32-onnx cpu b1×s128 | p50 latency | {p50:.2f} | {p50:.2f} | +0.0% | 60% |"
    )


def test_negative_or_nan_thresholds_are_refused_and_zero_is_allowed() -> None:
    assert parse_fraction("0") == 0.0 and parse_fraction(" 0% ") == 0.0  # "no regression at all" is a valid gate
    for text in ("-5%", "-0.1", "nan"):
        with pytest.raises(CompareError) as e:
            parse_fraction(text)
        assert str(e.value) == f"threshold {text!r} must be 0 or more"


def test_each_unreadable_report_names_its_file_and_why(tmp_path: Path) -> None:
    def error(path: Path) -> str:
        with pytest.raises(CompareError) as e:
            load_report(path)
        return str(e.value)

    gone = tmp_path / "gone.json"
    assert error(gone) == f"report {str(gone)!r} does not exist"
    torn = tmp_path / "torn.json"
    torn.write_text('{"schema_version": 2, "resu')
    assert error(torn).startswith(f"report {str(torn)!r} is not readable JSON: ")
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")  # JSON, but not a report
    assert error(listed) == f"report {str(listed)!r} has schema_version None; this optkit reads versions 1, 2, 3"
    future = tmp_path / "future.json"
    future.write_text(json.dumps({"schema_version": 9}))
    assert error(future) == f"report {str(future)!r} has schema_version 9; this optkit reads versions 1, 2, 3"
    broken = _v2()
    del broken["results"][0]["latency"]["p50_ci95_ms"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(broken))
    assert error(bad).startswith(f"report {str(bad)!r}: ")


def test_the_machine_mismatch_says_what_each_machine_is() -> None:
    base, new = _v2(), _v2()
    new["environment"]["cpu"].update(model="Old Atom", isa=[], int8_vnni=False)
    base["environment"]["cpu"].update(isa=["FMA", "AVX2"], int8_vnni=True)
    with pytest.raises(EnvironmentMismatch) as e:
        compare_reports(base, new)
    assert str(e.value) == (
        "BASE was measured on 'AMD EPYC' (2 CPUs, AVX2, FMA, VNNI yes) and NEW on 'Old Atom' (2 CPUs, no AVX2, VNNI no)"
        "; latency and memory are only comparable on the same kind of machine"
    )


def test_the_machine_is_blamed_only_when_new_was_timed_on_a_much_busier_one() -> None:
    def busy(report: dict[str, Any], share: float | None) -> dict[str, Any]:
        for r in report["results"]:
            r.pop("contention", None)
            if share is not None:
                r["contention"] = {"other_cpu_share": share, "steal_share": 0.0, "window_s": 20.0, "cpus": 2}
        return report

    def regressions(base_share: float | None, new_share: float | None) -> tuple[list[str], list[str]]:
        result = compare_reports(
            busy(_v2(seed=1), base_share), busy(_v2(seed=2, slower={"int8-dynamic": 1.4}), new_share)
        )
        return [c["message"] for c in result["checks"] if not c["passed"]], result["notes"]

    failed, notes = regressions(0.40, 0.45)  # both runs on a loaded machine, alike: nothing to explain
    assert len(failed) == 2 and all(m.endswith("vs the slowest of BASE") for m in failed)
    assert not any(n.startswith("some regressions were timed") for n in notes)
    failed, notes = regressions(None, 0.48)  # BASE predates contention figures
    assert len(failed) == 2 and all(
        m.endswith(
            "; but other processes used 48% of the CPUs while NEW was timed (BASE not recorded): likely the machine"
        )
        for m in failed
    )
    assert (
        "some regressions were timed while other processes took a much larger share of the CPUs than in BASE "
        "(recorded per row as contention.other_cpu_share): rerun NEW on a quiet machine before trusting them"
    ) in notes


def test_two_schema_2_reports_do_not_claim_an_approximated_interval() -> None:
    result = compare_reports(_v2(seed=1), _v2(seed=2))
    assert result["passed"] and not any("schema-1" in n for n in result["notes"])
    stored_v1 = compare_reports(load_report(V1), _v2(seed=2))  # an old stored baseline against a new run
    assert any(n.startswith("a schema-1 report stores no latency samples") for n in stored_v1["notes"])


def test_a_schema_1_interval_is_the_normal_approximation_of_the_median() -> None:
    """1.96 · 1.2533 · std / √runs either side of the p50, worked out here; it decides schema-1 regressions."""
    base = load_report(V1)
    new = copy.deepcopy(base)
    for r in new["results"]:
        if r["variant"] == "int8-dynamic":
            r["latency"] = {k: v * 1.4 if k.endswith("_ms") else v for k, v in r["latency"].items()}
    result = compare_reports(base, new)
    for item, passed in (("int8-dynamic cpu b1×s128", False), ("fp32-onnx cpu b1×s128", True)):
        (check,) = [c for c in result["checks"] if c["item"] == item and c["metric"] == "p50 latency"]
        lat_b, lat_n = _row(base, item)["latency"], _row(new, item)["latency"]
        (lo_b, hi_b), (lo_n, hi_n) = (
            (lat["p50_ms"] - h, lat["p50_ms"] + h)
            for lat in (lat_b, lat_n)
            for h in [1.96 * 1.2533 * lat["std_ms"] / lat["runs"] ** 0.5]
        )
        assert check["passed"] is passed
        assert f"[{lo_b:.2f}–{hi_b:.2f}] → {lat_n['p50_ms']:.2f} ms [{lo_n:.2f}–{hi_n:.2f}]" in check["message"]


def test_notes_name_what_differs_between_the_runs() -> None:
    """Threads, library versions and a variant only NEW has are not failures, but the reader is told."""
    base, new = _v2(seed=1), _v2(seed=1)
    new["threads"] = 4
    new["environment"]["libraries"].update(onnxruntime="1.33.0", tokenizers="0.22.0")  # tokenizers: NEW only
    new["variants"]["int4"] = copy.deepcopy(new["variants"]["int8-dynamic"])
    result = compare_reports(base, new)
    assert result["passed"] and result["notes"] == [
        "threads differ: BASE 2, NEW 4",
        "onnxruntime 1.32.0 → 1.33.0",
        "accuracy interval not available: BASE and NEW store no eval predictions (written before schema 3)",
        "variant 'int4' is new (not in BASE); nothing to compare it with",
    ]


def test_the_result_says_what_was_compared_and_under_which_limits() -> None:
    base = load_report(V1)
    result = compare_reports(base, copy.deepcopy(base), Thresholds(0.02, 0.05, 0.2))
    assert result["base"] == result["new"] == {"finished": base["finished"], "schema_version": 1}
    assert result["thresholds"] == {
        "max_accuracy_drop": 0.02,
        "max_latency_regression": 0.05,
        "max_memory_regression": 0.2,
    }
    assert result["notes"] == [
        "accuracy interval not available: BASE and NEW store no eval predictions (written before schema 3)",
        "a schema-1 report stores no latency samples: its 95% CI of the median is the normal approximation "
        "1.2533·std/√runs, not a bootstrap",
    ]
    noisy = compare_reports(_v2(seed=1, noise=0.2), _v2(seed=2))
    assert noisy["notes"] == [
        "accuracy interval not available: BASE and NEW store no eval predictions (written before schema 3)",
        "BASE has 8 noisy row(s) (robust CV above 0.10): a busy machine slows every variant alike, which reads as "
        "a regression here; rerun on a quiet machine or compare the speed-ups",
    ]


def test_unmeasured_rows_variants_without_accuracy_and_a_missing_shape() -> None:
    base, new = _v2(seed=1), _v2(seed=1)
    base["results"][0]["status"] = "failed"  # BASE could not time baseline b1: nothing to compare, the rest still is
    for report in (base, new):
        del report["variants"]["baseline"]["accuracy"]  # as in a bench report: speed and memory only
    del base["variants"]["fp32-onnx"]["accuracy"]  # BASE a bench report, NEW a recipe run
    base["variants"]["int8-static"]["accuracy"], new["variants"]["int8-static"]["accuracy"] = 0.83, 0.82
    new["results"] = [r for r in new["results"] if (r["variant"], r["batch"]) != ("fp32-onnx", 8)]
    result = compare_reports(base, new)
    checks = {(c["item"], c["metric"]): c for c in result["checks"]}
    assert len(result["checks"]) == 2 + 1 + 6 + 6  # accuracy, the missing shape, latency and RSS of the rest
    assert {item for item, metric in checks if metric == "accuracy"} == {"int8-dynamic", "int8-static"}
    exactly_one_point = checks["int8-static", "accuracy"]  # 0.83 - 0.82 is 0.010000000000000009 in floats
    assert exactly_one_point["passed"] and exactly_one_point["message"] == (
        "int8-static: accuracy 0.8300 → 0.8200 (-1.00 points; allowed drop 1.00)"
    )
    assert not checks["fp32-onnx cpu b8×s128", "latency"]["passed"]
    assert ("baseline cpu b8×s128", "p50 latency") in checks and ("baseline cpu b1×s128", "p50 latency") not in checks


def test_latency_verdicts_and_gpu_memory_checks_in_full() -> None:
    base, new = _v2(seed=1, noise=0.2), _v2(seed=2, noise=0.2, slower={"fp32-onnx": 1.12})
    for report, grown in ((base, 1.0), (new, 1.7)):
        for r in report["results"]:
            if r["variant"] != "baseline":  # baseline rows in BASE carry no GPU figure: no GPU check for them
                r["memory"]["gpu_peak_mb"] = 1000.0 * (grown if r["variant"] == "int8-static" else 1.0)
    _row(new, "baseline cpu b1×s128")["memory"]["gpu_peak_mb"] = 500.0  # NEW alone has it: still nothing to compare
    result = compare_reports(base, new, Thresholds(max_memory_regression=0.6))
    checks = {(c["item"], c["metric"]): c for c in result["checks"]}
    assert [m for i, m in checks if i == "baseline cpu b1×s128"] == ["p50 latency", "peak RSS"]
    assert checks["int8-static cpu b1×s128", "GPU memory"] == {
        "item": "int8-static cpu b1×s128",
        "metric": "GPU memory",
        "base": 1000.0,
        "new": 1700.0,
        "change": pytest.approx(0.7),
        "allowed": 0.6,
        "passed": False,
        "message": "int8-static cpu b1×s128: GPU memory 1000 → 1700 MB (+70.0%; allowed 60%)",
        "variant": "int8-static",
        "provider": "cpu",
        "batch": 1,
        "seq": 128,
    }
    assert checks["fp32-onnx cpu b1×s128", "GPU memory"]["passed"]
    for item, verdict in (("fp32-onnx cpu b1×s128", "within noise"), ("baseline cpu b1×s128", "ok")):
        lat_b, lat_n = _row(base, item)["latency"], _row(new, item)["latency"]
        (lo_b, hi_b), (lo_n, hi_n) = lat_b["p50_ci95_ms"], lat_n["p50_ci95_ms"]
        change = lat_n["p50_ms"] / lat_b["p50_ms"] - 1
        assert (change > 0.1) is (verdict == "within noise")  # 12% slower, but the 20% noise cannot rule it out
        check = checks[item, "p50 latency"]
        assert check["passed"] is True and check["change"] == pytest.approx(change, rel=1e-12)
        assert check["message"] == (
            f"{item}: p50 {lat_b['p50_ms']:.2f} ms [{lo_b:.2f}–{hi_b:.2f}] → {lat_n['p50_ms']:.2f} ms "
            f"[{lo_n:.2f}–{hi_n:.2f}] ({change * 100:+.1f}%; allowed 10% beyond noise): {verdict}"
        )


def test_a_change_of_exactly_the_allowed_amount_passes() -> None:
    """1000 -> 1100 MB is +0.10000000000000009 in floats; against a 10% limit it is exactly the limit."""
    from optkit.compare import _memory_checks

    assert 1100 / 1000 - 1 > 0.10  # the float edge this guards against
    limits = Thresholds(0.01, 0.10, 0.10)
    key = ("v", "cpu", 1, 128)
    (check,) = _memory_checks({"memory": {"peak_rss_mb": 1000.0}}, {"memory": {"peak_rss_mb": 1100.0}}, key, limits)
    assert check["passed"], check
    (over,) = _memory_checks({"memory": {"peak_rss_mb": 1000.0}}, {"memory": {"peak_rss_mb": 1100.2}}, key, limits)
    assert not over["passed"], over


def _v3(seed: int = 0, flips: dict[str, tuple[int, int]] | None = None) -> dict[str, Any]:
    """A schema-3 report: the v2 one with eval targets and each variant's predictions on 2,562 rows.

    ``flips`` maps a variant to (rows it now gets wrong, rows it now gets right) against the seed-0
    predictions, so two reports made from this differ on exactly those rows.
    """
    report = _v2(seed)
    report["schema_version"] = 3
    n = report["data"]["eval_rows"]
    targets = [(i * 7) % 3 % 2 for i in range(n)]
    report["data"]["eval_targets"] = encode_predictions(targets)
    for name, v in report["variants"].items():
        preds = [y if i % 6 else 1 - y for i, y in enumerate(targets)]  # 5 in 6 right
        lost, gained = (flips or {}).get(name, (0, 0))
        right = [i for i in range(n) if preds[i] == targets[i]][:lost]
        wrong = [i for i in range(n) if preds[i] != targets[i]][:gained]
        for i in right + wrong:
            preds[i] = 1 - preds[i]
        v["eval_predictions"] = encode_predictions(preds)
        v["accuracy"] = sum(p == y for p, y in zip(preds, targets, strict=True)) / n
    return report


def test_compare_pairs_the_rows_of_two_reports_of_the_same_data() -> None:
    base, new = _v3(), _v3(flips={"int8-dynamic": (7, 5)})
    assert validate_report(base) == []
    result = compare_reports(base, new)
    check = next(c for c in result["checks"] if c["item"] == "int8-dynamic" and c["metric"] == "accuracy")
    assert check["flipped_rows"] == 12 and check["discordant_rows"] == {
        "reference_only_right": 7,
        "variant_only_right": 5,
    }
    assert check["mcnemar_p"] == pytest.approx(2 * 1586 / 4096)  # 2 * P(Binomial(12, 1/2) <= 5)
    lo, hi = check["interval"]
    assert lo < -2 / 2562 < hi and check["verdict"] == "within noise"
    assert f"(-0.08 points, 95% CI {lo * 100:+.2f}…{hi * 100:+.2f}, within noise; 12 rows flipped;" in check["message"]
    assert check["variant"] == "int8-dynamic"  # the CI summary reads the row's fields, not the item text
    rerun = compare_reports(base, new)["checks"]
    again = next(c for c in rerun if c["item"] == "int8-dynamic" and c["metric"] == "accuracy")
    assert again["interval"] == check["interval"]  # the bootstrap is seeded from the report: same pair, same CI
    from optkit.evaluate.paired import paired_change
    from optkit.tasks import get_task

    before, after = (decode_predictions(r["variants"]["int8-dynamic"]["eval_predictions"]) for r in (base, new))
    truth = decode_predictions(base["data"]["eval_targets"])
    direct = paired_change(get_task("text-classification"), before, after, truth, ["rotten", "fresh"], seed=42)
    assert check["interval"] == direct["accuracy_delta_ci95"]  # seeded with BASE's recipe seed (42)
    same = next(c for c in result["checks"] if c["item"] == "fp32-onnx" and c["metric"] == "accuracy")
    assert same["flipped_rows"] == 0 and same["interval"] == [0.0, 0.0]
    table = render_comparison(result)
    assert f"| -0.08 pts [{lo * 100:+.2f}…{hi * 100:+.2f}, within noise] |" in table
    assert "- int8-dynamic: 12 rows: 5 now right, 7 now wrong, McNemar p 0.774" in table
    # the rows themselves: the first ten eval positions whose prediction differs, with target and both predictions
    names = base["data"]["labels"]
    b, n = (decode_predictions(r["variants"]["int8-dynamic"]["eval_predictions"]) for r in (base, new))
    targets = decode_predictions(base["data"]["eval_targets"])
    rows = [i for i in range(len(b)) if b[i] != n[i]]
    assert len(rows) == 12 and [e["row"] for e in check["flipped_examples"]] == rows[:10]
    first = check["flipped_examples"][0]
    assert (first["label"], first["base"], first["new"]) == (
        names[targets[rows[0]]],
        names[b[rows[0]]],
        names[n[rows[0]]],
    )
    assert f"  - eval rows (first 10): row {rows[0]} ({first['label']}): {first['base']} → {first['new']};" in table
    assert not any("interval not available" in n for n in result["notes"])


def test_compare_says_why_no_interval_for_other_data_or_an_older_report() -> None:
    base, new = _v3(), _v3()
    new["data"]["fingerprint"] = "0123456789abcdef" + new["data"]["fingerprint"][16:]
    notes = compare_reports(base, new)["notes"]
    assert "the reports scored different eval data (fingerprint cfb69bc647b6 vs 0123456789ab): rows cannot be" in (
        "\n".join(notes)
    )
    # the same fingerprint but other targets, or a task this optkit does not know: no pairing, and why
    base, new = _v3(), _v3()
    new["data"]["eval_targets"] = encode_predictions([1 - y for y in decode_predictions(new["data"]["eval_targets"])])
    assert (
        "accuracy interval not available: the reports' eval targets differ although their data fingerprints are "
        "equal: rows cannot be paired" in compare_reports(base, new)["notes"]
    )
    base, new = _v3(), _v3()
    new["task"] = {"name": "speech-recognition", "primary_metric": "accuracy", "metrics": []}
    assert (
        "accuracy interval not available: task 'speech-recognition' is not known to this optkit"
        in (compare_reports(base, new)["notes"])
    )
    # one variant without stored predictions, another with a different number of them: said per variant
    base, new = _v3(), _v3()
    del new["variants"]["int8-dynamic"]["eval_predictions"]
    new["variants"]["int8-static"]["eval_predictions"] = base["variants"]["int8-static"]["eval_predictions"][:-1]
    result = compare_reports(base, new)
    assert (
        "int8-dynamic: accuracy interval not available: a report has no eval predictions for this variant"
        in result["notes"]
    )
    assert "int8-static: accuracy interval not available: 2562 vs 2561 predictions stored" in result["notes"]
    checks = {c["item"]: c for c in result["checks"] if c["metric"] == "accuracy"}
    assert "interval" not in checks["int8-dynamic"] and "interval" in checks["fp32-onnx"]
    result = compare_reports(_v2(), _v3())
    assert (
        "accuracy interval not available: BASE stores no eval predictions (written before schema 3)" in result["notes"]
    )
    assert all("interval" not in c for c in result["checks"])  # the checks themselves work as before
    assert load_report(V1)["schema_version"] == 1  # every version is still read

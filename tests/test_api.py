"""End to end on the tiny model: build, evaluate, report, cache reuse."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from optkit.api import RunOutcome, run_recipe
from optkit.errors import EvaluationError, PassError


@pytest.fixture
def first_run(tiny_e2e: tuple[Path, Path, RunOutcome], tmp_path: Path) -> tuple[Path, Path, RunOutcome]:
    """A private copy of the run (recipe, workspace, reports and outcome) for each test.

    Tests rerun, force and corrupt this run; on a shared one the outcome would depend on which test
    ran first (a rerun with a changed recipe rewrites report.json that another test compares).
    """
    import copy
    import shutil

    root, path, outcome = tiny_e2e
    mine = tmp_path / "e2e"
    shutil.copytree(root, mine)
    paths = [mine / p.relative_to(root) for p in outcome.paths]
    return mine, mine / path.name, RunOutcome(report=copy.deepcopy(outcome.report), paths=paths)


def test_report_has_every_variant_provider_and_shape(first_run) -> None:  # type: ignore[no-untyped-def]
    root, _, outcome = first_run
    report = json.loads((root / "reports" / "tiny" / "report.json").read_text())
    assert report == json.loads(json.dumps(outcome.report, default=str))
    assert report["schema_version"] == 3 and report["reference"] == "fp32-onnx"
    assert set(report["variants"]) == {"baseline", "fp32-onnx", "int8-dynamic", "int8-static"}
    assert report["variants"]["baseline"]["accuracy"] >= 0.8
    assert report["variants"]["fp32-onnx"]["agreement_with_baseline"] == 1.0
    assert report["variants"]["int8-dynamic"]["size_ratio"] < 1.0
    rows = {(r["variant"], r["provider"]): r for r in report["results"]}
    assert len(report["results"]) == 8  # 4 variants x 2 providers x 1 shape
    cpu = rows[("int8-dynamic", "cpu")]
    assert cpu["status"] == "measured" and cpu["latency"]["runs"] == 5 and cpu["threads"] == 1
    assert rows[("fp32-onnx", "cpu")]["speedup_vs_reference"] == pytest.approx(1.0)
    assert rows[("baseline", "cpu")]["status"] == "measured"  # PyTorch is timed too
    cuda = rows[("int8-dynamic", "cuda")]["status"]
    assert cuda.startswith("not measured: CUDAExecutionProvider not available in this onnxruntime build")
    env = report["environment"]
    assert {"cpu", "libraries", "onnxruntime_providers"} <= set(env) and "isa" in env["cpu"]
    assert report["seeds"] == {"recipe": 7} and report["data"]["eval_rows"] == 60
    assert outcome.passed and report["gates"][0]["gate"] == "max_accuracy_drop"


def test_each_variant_change_has_its_paired_interval_and_changed_rows(first_run) -> None:  # type: ignore[no-untyped-def]
    from optkit.evaluate.paired import decode_predictions

    root, _, outcome = first_run
    report = outcome.report
    v = report["variants"]
    targets = decode_predictions(report["data"]["eval_targets"])
    assert len(targets) == 60 and all(len(decode_predictions(x["eval_predictions"])) == 60 for x in v.values())
    base = decode_predictions(v["baseline"]["eval_predictions"])
    assert v["baseline"]["accuracy"] == pytest.approx(sum(p == y for p, y in zip(base, targets, strict=True)) / 60)
    # export changes no prediction: a zero change, a zero-width interval, McNemar p 1
    onnx = v["fp32-onnx"]
    assert onnx["changed_rows"] == 0 and onnx["accuracy_delta_ci95"] == [0.0, 0.0] and onnx["mcnemar_p"] == 1.0
    assert onnx["accuracy_delta_verdict"] == "within noise" and onnx["changed_examples"] == []
    for name in ("int8-dynamic", "int8-static"):
        x = v[name]
        lo, hi = x["accuracy_delta_ci95"]
        assert lo <= x["accuracy_delta"] <= hi
        changed = sum(a != b for a, b in zip(decode_predictions(x["eval_predictions"]), base, strict=True))
        assert x["changed_rows"] == changed and len(x["changed_examples"]) == min(changed, 10)
        assert sum(c["support"] for c in x["per_class"].values()) == 60 and x["worst_class"]["class"] in x["per_class"]
        assert sum(g["rows"] for g in x["slices"]["length"].values()) == 60
        assert set(x["slices"]["label"]) == {"rotten", "fresh"} and x["worst_slice"]["slice"] in ("length", "label")
    assert set(v["baseline"]["slices"]) == {"length", "label"} and "worst_slice" not in v["baseline"]
    md = (root / "reports" / "tiny" / "report.md").read_text()
    assert (
        "## Change against the baseline" in md and "| fp32-onnx | +0.00 pts (95% CI +0.00…+0.00, within noise) |" in md
    )


def test_markdown_report_shows_the_table(first_run) -> None:  # type: ignore[no-untyped-def]
    root, _, _ = first_run
    md = (root / "reports" / "tiny" / "report.md").read_text()
    assert "| variant | runtime | accuracy | Δ acc (pts) |" in md
    assert "| fp32-onnx (ref) | onnxruntime |" in md
    assert "cuda: not measured: CUDAExecutionProvider not available" in md
    assert "| int8-dynamic | cpu | b1×s16 |" in md  # latency detail


def test_common_prefix_is_built_once(first_run) -> None:  # type: ignore[no-untyped-def]
    _, _, outcome = first_run
    steps = outcome.report["steps"]
    built = [(s["variant"], s["kind"]) for s in steps if s["status"] == "built"]
    assert built == [
        ("baseline", "finetune"),
        ("fp32-onnx", "export"),
        ("int8-dynamic", "quantize"),
        ("int8-static", "quantize"),
    ]
    assert len({s["key"] for s in steps if s["kind"] == "export"}) == 1


def test_second_run_reuses_everything_and_a_changed_step_rebuilds_only_itself(first_run) -> None:  # type: ignore[no-untyped-def]
    import yaml

    root, path, _ = first_run
    again = run_recipe(path, output=root / "reports", workspace=root / "ws")
    assert {s["status"] for s in again.report["steps"]} == {"cached", "shared"}
    assert [s["status"] for s in again.report["steps"][:2]] == ["cached", "shared"]  # baseline, fp32-onnx finetune
    data = yaml.safe_load(path.read_text())
    data["variants"]["int8-static"][1] = {"quantize": {"mode": "static", "calibration": "percentile"}}
    changed = root / "changed.yaml"
    changed.write_text(yaml.safe_dump(data))
    third = run_recipe(changed, output=root / "reports", workspace=root / "ws")
    rebuilt = [(s["variant"], s["kind"]) for s in third.report["steps"] if s["status"] == "built"]
    assert rebuilt == [("int8-static", "quantize")]


def test_a_corrupted_cached_onnx_file_is_rebuilt(first_run) -> None:  # type: ignore[no-untyped-def]
    root, path, outcome = first_run
    key = next(s["key"] for s in outcome.report["steps"] if s["kind"] == "export")
    onnx_file = root / "ws" / "cache" / key / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[:1000])  # truncated, as by a full disk
    rerun = run_recipe(path, output=root / "reports", workspace=root / "ws")
    export_steps = [s for s in rerun.report["steps"] if s["kind"] == "export"]
    assert [s["status"] for s in export_steps] == ["built", "shared", "shared"]
    assert onnx_file.stat().st_size > 1000


def test_corrupt_onnx_file_gives_a_clear_error(tmp_path: Path) -> None:
    from optkit.evaluate.predict import create_session

    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07garbage, not a protobuf")
    with pytest.raises(EvaluationError, match=r"could not be loaded by ONNX Runtime .* truncated or corrupt"):
        create_session(bad)


def test_baseline_without_finetune_needs_a_classifier_head(recipe_dict: dict, write_recipe, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    recipe_dict["baseline"] = []
    with pytest.raises(PassError, match=r"has no sequence-classification head .* add '- finetune: \{\}'"):
        run_recipe(write_recipe(recipe_dict), output=tmp_path / "r", workspace=tmp_path / "ws")


def test_a_head_with_other_label_order_is_refused(
    recipe_dict: dict,
    write_recipe,
    finetuned,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    recipe_dict["model"]["source"] = str(finetuned.path)  # head: 0 = rotten, 1 = fresh
    recipe_dict["baseline"] = []
    recipe_dict["data"]["labels"] = ["fresh", "rotten"]
    with pytest.raises(PassError, match=r"do not match the model head's labels \['rotten', 'fresh'\]"):
        run_recipe(write_recipe(recipe_dict), output=tmp_path / "r", workspace=tmp_path / "ws")


def test_force_rebuilds_every_step(first_run) -> None:  # type: ignore[no-untyped-def]
    root, path, _ = first_run
    forced = run_recipe(path, output=root / "forced", workspace=root / "ws", force=True)
    assert [s["status"] for s in forced.report["steps"] if s["variant"] == "int8-static"] == [
        "shared",
        "shared",
        "built",
    ]
    assert {s["status"] for s in forced.report["steps"]} == {"built", "shared"}


def test_cli_force_is_refused_with_exit_2_while_another_process_uses_an_entry(first_run) -> None:  # type: ignore[no-untyped-def]
    """README: ``--force`` is refused (exit 2) while another run is using the same cached entries."""
    import subprocess
    import sys
    import textwrap

    from click.testing import CliRunner

    from optkit.cache import ArtifactCache
    from optkit.cli import cli

    root, path, outcome = first_run
    key = next(s["key"] for s in outcome.report["steps"] if s["variant"] == "baseline")
    cache = ArtifactCache(root / "ws" / "cache")
    before = cache.lookup(key)
    assert before is not None
    # the other run: holds the entry's shared "in use" lock, as a run that found it cached does
    user = textwrap.dedent(f"""
        import fcntl, sys
        fh = open({str(cache._use_file(key))!r}, "a+")
        fcntl.flock(fh, fcntl.LOCK_SH)
        print("using", flush=True)
        sys.stdin.readline()
    """)
    proc = subprocess.Popen([sys.executable, "-c", user], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "using\n"
        args = ["run", str(path), "--output", str(root / "forced"), "--workspace", str(root / "ws"), "--force"]
        result = CliRunner().invoke(cli, args)
    finally:
        proc.communicate("done\n", timeout=60)
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"error: --force: cache entry {key[:12]} (baseline[0] finetune) in ")
    assert "is in use by another optkit process" in last and "Traceback" not in result.output
    assert cache.lookup(key) == before  # the entry the other run reads is still there, whole
    assert not (root / "forced").exists()


def test_report_matches_its_json_schema_and_records_placement_and_stats(first_run) -> None:  # type: ignore[no-untyped-def]
    from optkit.reports.schema import validate_report

    root, _, _ = first_run
    report = json.loads((root / "reports" / "tiny" / "report.json").read_text())
    assert validate_report(report) == []
    row = next(r for r in report["results"] if r["variant"] == "int8-static" and r["provider"] == "cpu")
    lo, hi = row["latency"]["p50_ci95_ms"]
    assert lo <= row["latency"]["p50_ms"] <= hi and len(row["samples_ms"]) == 5
    contention = row["contention"]  # how busy the machine was while this shape was timed
    assert 0.0 <= contention["other_cpu_share"] <= 1.0 and contention["window_s"] > 0 and contention["cpus"] >= 1
    assert (
        row["placement"]["fallback_share"] == 0.0 and row["placement"]["session_providers"][0] == "CPUExecutionProvider"
    )
    census = report["variants"]["int8-static"]["explain"]["optimized"]
    assert census["quantized_compute"] > 0
    assert report["environment"]["cpu_affinity"]


def test_html_and_junit_reports(first_run) -> None:  # type: ignore[no-untyped-def]
    root, _, _ = first_run
    page = (root / "reports" / "tiny" / "report.html").read_text()
    assert page.startswith("<!doctype html>") and page.count("<svg") >= 3
    fetches = re.findall(r"""(?:src|href)\s*=\s*["']?(?!#|data:)[a-z]+:|url\((?!#|data:)|@import""", page)
    assert not fetches  # nothing to fetch: no external src/href, url() or @import
    assert "https://" not in page and "http://" not in page.replace("http://www.w3.org/", "")
    assert "<script" not in page and "cuda: not measured: CUDAExecutionProvider not available" in page
    assert "Why is it fast or slow?" in page and "AVX2" in page
    xml = (root / "reports" / "tiny" / "gates.xml").read_text()
    assert '<testsuite name="optkit gates: tiny" tests="1" failures="0"' in xml
    assert '<testcase classname="optkit.tiny.int8-dynamic" name="max_accuracy_drop"' in xml


def test_pareto_front_in_html_marks_undominated_variants(first_run) -> None:  # type: ignore[no-untyped-def]
    from optkit.reports.html import render_html
    from optkit.reports.pareto import pareto_front

    _, _, outcome = first_run
    report = json.loads(json.dumps(outcome.report, default=str))
    rows = {r["variant"]: r for r in report["results"] if r["provider"] == "cpu"}
    points = {n: (rows[n]["latency"]["p50_ms"], v["accuracy"]) for n, v in report["variants"].items()}
    front = pareto_front(points)
    fastest = min(points, key=lambda n: points[n][0])
    best = max(points, key=lambda n: (points[n][1], -points[n][0]))
    assert fastest in front and best in front
    for n in points:
        dominated = any(
            o != n and points[o][0] <= points[n][0] and points[o][1] >= points[n][1] and points[o] != points[n]
            for o in points
        )
        assert (n in front) == (not dominated)
    page = render_html(report)
    for n in points:
        assert (f'<tr class="front"><td class="l">{n}' in page) == (n in front)


def test_a_variant_left_untimed_is_said_so_and_compare_does_not_count_it_missing(first_run) -> None:  # type: ignore[no-untyped-def]
    """CI can skip timing the PyTorch baseline; its accuracy is still scored and compared, its speed is not."""
    import yaml

    from optkit.compare import compare_reports
    from optkit.reports.schema import validate_report

    root, path, outcome = first_run
    data = yaml.safe_load(path.read_text())
    data["evaluate"]["latency"]["skip"] = ["baseline"]
    untimed = root / "untimed.yaml"
    untimed.write_text(yaml.safe_dump(data))
    new = run_recipe(untimed, output=root / "untimed-reports", workspace=root / "ws").report
    validate_report(new)
    rows = {r["variant"]: r for r in new["results"] if r["provider"] == "cpu"}
    assert rows["baseline"]["status"] == "not measured: left untimed on purpose (evaluate.latency.skip)"
    assert rows["baseline"]["untimed"] is True and "latency" not in rows["baseline"]
    assert all(rows[v]["status"] == "measured" for v in ("fp32-onnx", "int8-dynamic", "int8-static"))
    assert "accuracy" in new["variants"]["baseline"]
    result = compare_reports(outcome.report, new)
    checked = {c["variant"] for c in result["checks"] if c["metric"] == "p50 latency"}
    assert "baseline" not in checked and "fp32-onnx" in checked
    assert any("left baseline untimed on purpose" in n for n in result["notes"])
    assert not [c for c in result["checks"] if "missing from NEW" in c["message"]]
    # the other way round BASE's untimed rows are simply not there to compare: nothing fails for them
    assert not [
        c for c in compare_reports(new, outcome.report)["checks"] if c["variant"] == "baseline" and "p50" in c["metric"]
    ]

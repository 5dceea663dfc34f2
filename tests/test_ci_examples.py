"""The CI examples run: their own shell steps, on a tiny recipe and a baseline stored by `optkit baseline update`.

Not the CI services: the `run:` steps of examples/ci/github-actions.yml (all but Install) and the
`script` / `after_script` of examples/ci/gitlab-ci.yml, read from the files and run with bash in a
scratch checkout, with `optkit` on PATH running this source tree. Once unchanged (exit 0), once with
one variant really slower (exit 1, named in the summary): the test hook OPTKIT_TEST_SLOW_VARIANT
sleeps 20 ms in each of its timed calls, against a p50 of about 0.1 ms. The recipe's latency limit
is raised to 1000% beyond noise so that a busy machine cannot fail the unchanged case, and the
slowed variant, about 200x slower, still fails by far.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "ci"
RECIPE = "recipes/ci-tiny.yaml"
BASELINE = "baselines/ci-tiny.json"
SLOW = {"OPTKIT_TEST_SLOW_VARIANT": "int8-dynamic:20"}


def _bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """As the runners do: bash without profiles, stopping at the first failing command."""
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CI checkout: the tiny recipe and its assets, constraints.txt, and a baseline promoted from one run."""
    co = tmp_path_factory.mktemp("checkout")
    recipe = yaml.safe_load((ROOT / RECIPE).read_text())
    recipe["evaluate"]["memory"] = False  # seconds per variant, and not what these steps are about
    recipe["report"]["compare"]["max_latency_regression"] = 10.0
    (co / "recipes").mkdir()
    (co / RECIPE).write_text(yaml.safe_dump(recipe, sort_keys=False))
    shutil.copy(ROOT / "constraints.txt", co / "constraints.txt")
    spec = importlib.util.spec_from_file_location("tiny_assets", ROOT / "scripts" / "tiny_assets.py")
    assert spec is not None and spec.loader is not None
    assets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(assets)
    assert assets.main([str(co / ".ci" / "tiny")]) == 0
    bin_dir = co.parent / f"{co.name}-bin"
    bin_dir.mkdir()
    (bin_dir / "optkit").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m optkit "$@"\n')
    (bin_dir / "optkit").chmod(0o755)
    made = _bash(f"optkit run {RECIPE} && optkit baseline update {RECIPE} --to {BASELINE}", co, _env(co))
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    return co


def _env(co: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPTKIT_TEST_", "GITHUB_", "CI_"))}
    env.update(
        PATH=f"{co.parent / (co.name + '-bin')}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


def _github(co: Path, tmp_path: Path, **extra: str) -> tuple[int, str, dict[str, Any]]:
    """The workflow's shell steps in order, as a job would run them; (exit code, step summary, outputs)."""
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    assert set(workflow["env"]) == {"RECIPE", "BASELINE"}
    steps = workflow["jobs"]["optkit"]["steps"]
    shell = [s for s in steps if "run" in s]
    assert [s["name"] for s in shell if s["name"] == "Install"] == ["Install"]
    summary, outputs = tmp_path / "step-summary.md", tmp_path / "outputs"
    summary.write_text("")
    env = _env(co, RECIPE=RECIPE, BASELINE=BASELINE, RUNNER_OS="Linux", **extra)
    env.update(GITHUB_STEP_SUMMARY=str(summary), GITHUB_OUTPUT=str(outputs), GITHUB_PATH=str(tmp_path / "path"))
    code = 0
    for step in shell:
        if step["name"] == "Install":  # the test's environment is installed already
            continue
        assert "if" not in step, f"step {step['name']!r}: a conditional shell step is not run here"
        done = _bash(step["run"], co, env)
        if done.returncode:
            code = done.returncode
            break
    found = dict(line.split("=", 1) for line in outputs.read_text().splitlines()) if outputs.exists() else {}
    return code, summary.read_text(), {"outputs": found, "steps": steps}


def _gitlab(co: Path, **extra: str) -> tuple[int, str]:
    """The job's script, then its after_script (always run); (exit code of script, job log)."""
    job = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())["optkit"]
    assert set(job["variables"]) == {"RECIPE", "BASELINE"}
    env = _env(co, RECIPE=RECIPE, BASELINE=BASELINE, **extra)
    script = _bash("\n".join(job["script"]), co, env)
    after = _bash("\n".join(job["after_script"]), co, env)
    return script.returncode, script.stdout + script.stderr + after.stdout + after.stderr


def test_github_unchanged_passes_caches_and_publishes(checkout: Path, tmp_path: Path) -> None:
    code, summary, seen = _github(checkout, tmp_path)
    assert code == 0, summary
    assert summary.startswith("### optkit ci-tiny: PASS: no regression vs the baseline\n")
    recipe_sha = hashlib.sha256((checkout / RECIPE).read_bytes()).hexdigest()[:16]
    lock_sha = hashlib.sha256((checkout / "constraints.txt").read_bytes()).hexdigest()[:16]
    assert seen["outputs"]["key"] == f"optkit-Linux-recipe-{recipe_sha}-lock-{lock_sha}"
    cached = [s for s in seen["steps"] if str(s.get("uses", "")).startswith("actions/cache")]
    assert {s["with"]["path"] for s in cached} == {".optkit"} and (checkout / ".optkit" / "cache").is_dir()
    upload = next(s for s in seen["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["with"]["path"] == "reports/"
    for name in ("report.json", "comparison.json", "comparison.md", "comparison.xml"):
        assert (checkout / "reports" / "ci-tiny" / name).is_file()
    assert json.loads((checkout / "reports" / "ci-tiny" / "comparison.json").read_text())["status"] == "passed"


def test_github_slower_variant_fails_naming_it(checkout: Path, tmp_path: Path) -> None:
    code, summary, _ = _github(checkout, tmp_path, **SLOW)
    assert code == 1, summary
    lines = summary.splitlines()
    assert lines[0] == "### optkit ci-tiny: FAIL: 1 regression(s) vs the baseline"
    regressions = [x for x in lines if x.startswith("- **regression**")]
    assert len(regressions) == 1 and regressions[0].startswith("- **regression**: int8-dynamic: p50 at b1×s16 ")
    assert "(allowed +1000% beyond noise)" in regressions[0]
    junit = (checkout / "reports" / "ci-tiny" / "comparison.xml").read_text()
    assert junit.count("<failure") == 1 and 'classname="optkit.compare.int8-dynamic cpu b1×s16"' in junit


def test_gitlab_unchanged_then_slower(checkout: Path) -> None:
    code, log = _gitlab(checkout)
    assert code == 0, log[-3000:]
    assert "### optkit ci-tiny: PASS: no regression vs the baseline" in log
    assert (checkout / "optkit-summary.md").read_text().startswith("### optkit ci-tiny: PASS")
    code, log = _gitlab(checkout, **SLOW)
    assert code == 1, log[-3000:]
    assert "- **regression**: int8-dynamic: p50 at b1×s16 " in log and "#### Every check" in log


def test_a_baseline_from_another_cpu_is_refused_not_failed(checkout: Path) -> None:
    other = json.loads((checkout / BASELINE).read_text())
    other["environment"]["cpu"]["model"] = "Some Other CPU"
    (checkout / "baselines" / "other.json").write_text(json.dumps(other))
    before = (checkout / "reports" / "ci-tiny" / "report.json").stat().st_mtime_ns
    done = _bash(f"optkit run {RECIPE} --baseline baselines/other.json", checkout, _env(checkout))
    assert done.returncode == 2, done.stderr[-2000:]
    assert "refusing to compare with 'baselines/other.json'" in done.stderr and "Some Other CPU" in done.stderr
    comparison = json.loads((checkout / "reports" / "ci-tiny" / "comparison.json").read_text())
    assert comparison["status"] == "refused" and comparison["exit_code"] == 2
    assert (checkout / "reports" / "ci-tiny" / "report.json").stat().st_mtime_ns > before  # the run's report is kept

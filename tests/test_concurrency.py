"""Two ``optkit run`` processes on one workspace: one builds, the other waits and says so, both finish.

The first process is held inside its export (test hook) while it owns that entry's lock, until
the second one says it is waiting for it; without the hook the overlap would be down to luck.
A second recipe with a different name shares the same cache and reuses what the first built.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


def _start(recipe: Path, ws: Path, out: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "optkit", "run", str(recipe), "--workspace", str(ws), "-o", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_two_runs_on_one_workspace_both_finish_and_share_the_cache(base_recipe: dict[str, Any], tmp_path: Path) -> None:
    recipe = copy.deepcopy(base_recipe)
    recipe["baseline"] = [{"finetune": {"epochs": 4, "learning_rate": 3e-3, "batch_size": 16}}]
    recipe["variants"] = {"fp32-onnx": [{"export": {}}], "int8-dynamic": [{"export": {}}, {"quantize": {}}]}
    recipe["report"] = {"formats": ["json"]}
    first = tmp_path / "a.yaml"
    first.write_text(yaml.safe_dump(recipe))
    other = dict(recipe, name="tiny-other", variants={"int8-dynamic": recipe["variants"]["int8-dynamic"]})
    second = tmp_path / "b.yaml"
    second.write_text(yaml.safe_dump(other))
    ws = tmp_path / "ws"

    resume = tmp_path / "resume-a"
    hold = {"OPTKIT_TEST_PAUSE_AT": "export:600", "OPTKIT_TEST_RESUME_FILE": str(resume)}
    a = _start(first, ws, tmp_path / "out-a", {**os.environ, **hold})
    b = None
    try:
        assert a.stderr is not None
        for line in a.stderr:  # a holds the export entry's lock from here until `resume` exists
            if "paused at export" in line:
                break
        b = _start(second, ws, tmp_path / "out-b", dict(os.environ))
        assert b.stderr is not None
        err_b = ""
        for line in b.stderr:
            err_b += line
            if "waiting for pid" in line:  # b has met a's lock: let a go on
                resume.touch()
                break
        resume.touch()  # whatever b printed, a must not stay paused
        _, more_b = b.communicate(timeout=900)
        err_b += more_b
        _, err_a = a.communicate(timeout=900)
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert a.returncode == 0 and b.returncode == 0, (err_a, err_b)
    assert "waiting for pid" in err_b and "which is building the same cache entry" in err_b, err_b

    report_a = json.loads((tmp_path / "out-a" / "tiny" / "report.json").read_text())
    report_b = json.loads((tmp_path / "out-b" / "tiny-other" / "report.json").read_text())
    steps_a = {(s["variant"], s["kind"]): s for s in report_a["steps"]}
    steps_b = {(s["variant"], s["kind"]): s for s in report_b["steps"]}
    assert steps_a[("baseline", "finetune")]["status"] == "built"
    assert steps_b[("baseline", "finetune")]["status"] == "cached"  # built by a, reused
    assert steps_b[("int8-dynamic", "export")]["status"] == "cached"  # waited for a's export, then reused it
    assert steps_b[("int8-dynamic", "export")]["key"] == steps_a[("fp32-onnx", "export")]["key"]
    # Same artifacts, same predictions: the shared variant's accuracy is identical in both reports.
    assert report_a["variants"]["int8-dynamic"]["accuracy"] == report_b["variants"]["int8-dynamic"]["accuracy"]
    cache = ws / "cache"
    assert not [p for p in cache.iterdir() if p.name.startswith((".tmp-", ".trash-"))]

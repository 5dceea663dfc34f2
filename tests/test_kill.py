"""Kill a real ``optkit run`` subprocess with a real signal at every stage; nothing is lost.

For each stage (fine-tune, export, quantisation, evaluation, packaging, report writing) and each signal
(SIGINT as Ctrl-C, SIGKILL as the OOM killer or a power cut; SIGTERM, as from a cancelled CI
job, at three stages): the earlier report's bytes stay unchanged, no half-built cache entry is
ever committed, and the same command run again completes, reusing every step that finished
before the kill.

Where the kill lands: fine-tune and evaluation are long enough on the tiny model to hit from
outside, so the test waits for their progress line (training / latency, with ETA) on stderr.
Export, quantisation, packaging and the report's final renames take milliseconds, so the run is paused
there with the test-only hook ``OPTKIT_TEST_PAUSE_AT`` (see ``optkit/testhooks.py``): after the pass
has written its files into the temporary folder, before the entry is committed.
"""

from __future__ import annotations

import copy
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from optkit.api import run_recipe
from optkit.cache import ArtifactCache
from optkit.ship import read_package
from tests.conftest import restore_sigint

_KINDS = ["finetune", "export", "quantize"]
_TOKEN = "hf_" + "kIlLtEsT" * 4


@pytest.fixture(scope="module")
def finished(base_recipe: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One complete run: its workspace, its report folder and the report's bytes."""
    root = tmp_path_factory.mktemp("kill")
    recipe = copy.deepcopy(base_recipe)
    recipe["baseline"] = [{"finetune": {"epochs": 16, "learning_rate": 3e-3, "batch_size": 8}}]
    recipe["variants"] = {"fp32-onnx": [{"export": {}}], "int8-dynamic": [{"export": {}}, {"quantize": {}}]}
    recipe["report"] = {"formats": ["json", "md"]}
    recipe["model"]["revision"] = _TOKEN  # a token pasted into the wrong field must not reach any file
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_TOKEN", _TOKEN)
        outcome = run_recipe(path, output=root / "out", workspace=root / "ws")
    keys = {s["kind"]: s["key"] for s in outcome.report["steps"]}
    return {"root": root, "recipe": recipe, "keys": keys}


def test_no_token_in_reports_or_cache(finished: dict[str, Any]) -> None:
    written = [*(finished["root"] / "out").rglob("*"), *(finished["root"] / "ws").rglob("*.json")]
    assert written and not [p for p in written if p.is_file() and _TOKEN.encode() in p.read_bytes()]
    report = json.loads((finished["root"] / "out" / "tiny" / "report.json").read_text())
    assert report["recipe"]["model"]["revision"] == "<redacted>"
    assert report["source_model"]["trust_remote_code"] is False  # recorded, and off unless the recipe sets it


class _StderrTail:
    """Collect a subprocess's stderr on a thread, so waiting for a line never misses one.

    ``select`` on the pipe plus ``readline`` is not enough: ``readline`` may pull several lines
    into Python's buffer, and ``select`` then reports nothing more to read while the line we
    want sits in that buffer (a paused run writes nothing else, so the wait never ends).
    """

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.text = ""
        self._thread = threading.Thread(target=self._pump, args=(proc.stderr,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, marker: str, timeout: float = 300.0) -> str:
        """Return everything read up to and including the first line containing ``marker``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if line is None:
                break
            self.text += line
            if marker in line:
                return self.text
        raise AssertionError(f"never saw {marker!r}; stderr so far:\n{self.text}")

    def rest(self, timeout: float = 300.0) -> str:
        """Everything the process wrote, once its stderr has closed."""
        self._thread.join(timeout)
        while not self._lines.empty():
            self.text += self._lines.get() or ""
        return self.text


_STAGES = ["finetune", "export", "quantize", "evaluate", "package", "report"]
# What the final "interrupted during ..." line names: the step's label (chain[index] kind; the
# export is first built for fp32-onnx and shared with int8-dynamic), or the stage after the build.
_WHERE = {
    "finetune": "baseline[0] finetune",
    "export": "fp32-onnx[1] export",
    "quantize": "int8-dynamic[2] quantize",
    "evaluate": "evaluation",
    "package": "packaging",
    "report": "report writing",
}
_CASES = [(stage, sig) for sig in (signal.SIGINT, signal.SIGKILL) for stage in _STAGES]
_CASES += [(stage, signal.SIGTERM) for stage in ("finetune", "export", "evaluate")]  # SIGTERM takes Ctrl-C's path


@pytest.mark.parametrize(("stage", "sig"), _CASES, ids=[f"{stage}-{sig.name}" for stage, sig in _CASES])
def test_a_killed_run_loses_nothing_and_the_rerun_completes(
    finished: dict[str, Any], stage: str, sig: signal.Signals, tmp_path: Path
) -> None:
    ws, out = tmp_path / "ws", tmp_path / "out"
    shutil.copytree(finished["root"] / "ws", ws)
    shutil.copytree(finished["root"] / "out", out)
    report = out / "tiny" / "report.json"
    before = _files(report.parent)

    recipe = copy.deepcopy(finished["recipe"])
    rebuilt = _KINDS[_KINDS.index(stage) :] if stage in _KINDS else []
    for kind in rebuilt:  # what the killed run has to build; steps before it stay cached
        shutil.rmtree(ws / "cache" / finished["keys"][kind])
    env = dict(os.environ)
    if stage == "finetune":
        marker = "training:"  # the plain-text progress line (with ETA) at 25 %
    elif stage == "evaluate":
        recipe["evaluate"]["latency"]["runs"] = 4000  # long enough to be caught mid-way
        recipe["evaluate"]["latency"]["block"] = 200  # 20 rounds: each turn settles for 0.1 s before its block
        marker = "latency"
    else:
        env["OPTKIT_TEST_PAUSE_AT"] = stage
        marker = f"paused at {stage}"
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))

    cmd = [sys.executable, "-m", "optkit", "run", str(path), "--workspace", str(ws), "-o", str(out)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=restore_sigint
    )
    tail = _StderrTail(proc)
    try:
        seen = tail.wait_for(marker)
        proc.send_signal(sig)
        proc.wait(timeout=300)
        err = tail.rest()
    finally:
        if proc.poll() is None:  # a failed wait must not leave a paused run behind
            proc.kill()
            proc.wait()
    if stage == "evaluate":
        assert "eta" in seen.splitlines()[-1]  # long steps show progress and an ETA

    assert "Traceback" not in err
    if sig in (signal.SIGINT, signal.SIGTERM):
        assert proc.returncode == (130 if sig == signal.SIGINT else 143), err
        assert ("terminated (SIGTERM)" in err) == (sig == signal.SIGTERM), err
        prefix = "terminated (SIGTERM): " if sig == signal.SIGTERM else ""
        assert err.splitlines()[-1].startswith(f"{prefix}interrupted during {_WHERE[stage]}; "), err
        assert "Run the same command again to resume" in err
    else:
        assert proc.returncode == -signal.SIGKILL
    assert _files(report.parent) == before  # the report and every package, byte for byte
    for package in (report.parent / "packages").iterdir():  # whole, or not there: never half
        if package.name.startswith("."):  # staged by the killed run: only SIGKILL leaves one, the rerun sweeps it
            assert sig == signal.SIGKILL, f"a staged package was left behind: {package}"
        else:
            read_package(package)

    cache = ArtifactCache(ws / "cache")  # opening it sweeps what the killed process left behind
    for kind in rebuilt:
        assert not cache.path(finished["keys"][kind]).exists(), f"half-built {kind} entry was committed"
    assert not [p for p in (ws / "cache").iterdir() if p.name.startswith((".tmp-", ".trash-"))]

    again = run_recipe(path, output=out, workspace=ws)  # the same command, run again
    status = {s["kind"]: s["status"] for s in again.report["steps"] if s["status"] != "shared"}
    assert status == {k: ("built" if k in rebuilt else "cached") for k in _KINDS}
    fresh = json.loads(report.read_text())
    assert fresh["started"] == again.report["started"] and len(fresh["variants"]) == 3
    assert sorted(p.name for p in report.parent.iterdir()) == ["packages", "report.json", "report.md"]  # no temps
    assert sorted(p.name for p in (report.parent / "packages").iterdir()) == ["fp32-onnx", "int8-dynamic"]
    for package in (report.parent / "packages").iterdir():
        assert read_package(package)["recipe"]["sha256"] == fresh["recipe_sha256"]


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (not hidden ones) by relative path: what a kill must not change."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }

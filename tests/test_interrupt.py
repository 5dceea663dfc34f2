"""Ctrl-C in the middle of a step: a clear message, exit 130, nothing half-built, and a rerun resumes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import restore_sigint


def test_sigint_during_finetune_keeps_nothing_and_rerun_completes(
    recipe_dict: dict[str, Any],
    write_recipe,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    recipe_dict["baseline"] = [{"finetune": {"epochs": 100, "learning_rate": 3e-3, "batch_size": 16}}]
    recipe_dict["variants"] = {"fp32-onnx": [{"export": {}}]}
    recipe_dict["report"] = {}
    path = write_recipe(recipe_dict)
    ws, out = tmp_path / "ws", tmp_path / "reports"
    cmd = [sys.executable, "-m", "optkit", "run", str(path), "--workspace", str(ws), "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=restore_sigint)
    assert proc.stderr is not None
    for line in proc.stderr:  # wait until training has started
        if "finetune key" in line:
            break
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted during baseline[0] finetune" in err and "Traceback" not in err
    cache = ws / "cache"
    assert not [p for p in cache.iterdir() if not p.name.startswith(".locks")], list(cache.iterdir())

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)  # the same command resumes
    assert done.returncode == 0, done.stderr
    assert "baseline[0] finetune: built" in done.stderr
    assert (out / "tiny" / "report.json").is_file()

"""Test-only hook: pause a run at a named stage so kill tests can send a signal there reliably.

Tiny-model stages (export, quantize) finish in well under a second, too fast to hit with a real
signal from outside. With ``OPTKIT_TEST_PAUSE_AT=<stage>`` (``finetune``, ``export``,
``quantize``, ``report``; optionally ``<stage>:<seconds>``) a run prints
``optkit test hook: paused at <stage>`` on stderr and sleeps there: for a step, after the pass
has written its files into the temporary folder but before the cache entry is committed; for
``report``, after the new report files are staged but before they replace the old ones. It does
nothing when the variable is unset, which is always the case outside the test suite. With
``OPTKIT_TEST_RESUME_FILE=<path>`` as well, the pause ends as soon as that file exists, so a test
can hold a run exactly until another process has reached the point it is testing.

``OPTKIT_TEST_SLOW_VARIANT=<variant>:<milliseconds>`` makes every timed call of that variant's
ONNX session sleep that long first: a variant that is really slower in the measured run, so the
CI examples' test can show a regression end to end without editing any stored figure. Only the
timing loop sees it; accuracy, memory and the built artifacts are untouched.

``OPTKIT_TEST_KILL_RANK=<rank>:<step>`` makes that rank of a multi-process training SIGKILL itself
right after that optimiser step: the multi-process kill test's dying rank.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from optkit.interrupts import check

__all__ = ["KILL_ENV", "PAUSE_ENV", "RESUME_ENV", "SLOW_ENV", "kill_point", "pause_point", "slowed"]

PAUSE_ENV = "OPTKIT_TEST_PAUSE_AT"
RESUME_ENV = "OPTKIT_TEST_RESUME_FILE"
SLOW_ENV = "OPTKIT_TEST_SLOW_VARIANT"
KILL_ENV = "OPTKIT_TEST_KILL_RANK"


def pause_point(stage: str) -> None:
    """Sleep here if the test hook names ``stage`` (default one hour, i.e. until killed)."""
    wanted = os.environ.get(PAUSE_ENV)
    if not wanted:
        return
    name, _, seconds = wanted.partition(":")
    if name != stage:
        return
    print(f"optkit test hook: paused at {stage}", file=sys.stderr, flush=True)
    deadline = time.monotonic() + (float(seconds) if seconds else 3600.0)
    resume = os.environ.get(RESUME_ENV)
    while (left := deadline - time.monotonic()) > 0:
        check()
        if resume and os.path.exists(resume):
            return
        time.sleep(min(left, 0.1))


def slowed(variant: str, run: Callable[[], Any]) -> Callable[[], Any]:
    """``run``, or ``run`` preceded by a sleep when the test hook names ``variant``."""
    wanted = os.environ.get(SLOW_ENV)
    if not wanted:
        return run
    name, _, millis = wanted.rpartition(":")
    if name != variant:
        return run
    delay = float(millis) / 1000

    def slow() -> Any:
        time.sleep(delay)
        return run()

    return slow


def kill_point(rank: int, step: int) -> None:
    """SIGKILL this process after training step ``step`` if the test hook names its rank and that step.

    ``OPTKIT_TEST_KILL_RANK=<rank>:<step>``: a rank dying mid-training (the OOM killer, a lost node),
    at a point a test can name, with no cleanup of any kind, as a real SIGKILL gives none.
    """
    wanted = os.environ.get(KILL_ENV)
    if not wanted:
        return
    who, _, when = wanted.partition(":")
    if int(who) == rank and int(when or 1) == step:
        print(f"optkit test hook: killing rank {rank} at training step {step}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

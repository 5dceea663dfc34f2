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
"""

from __future__ import annotations

import os
import sys
import time

from optkit.interrupts import check

__all__ = ["PAUSE_ENV", "RESUME_ENV", "pause_point"]

PAUSE_ENV = "OPTKIT_TEST_PAUSE_AT"
RESUME_ENV = "OPTKIT_TEST_RESUME_FILE"


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

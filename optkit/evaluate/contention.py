"""How much of the machine other processes took while optkit was timing.

A latency median taken on a shared CI runner mixes the model's speed with its neighbours'. The
figure kept here, CPU time spent outside this process (a VM's steal time included) as a share of
all CPUs over the timing window, is stored beside each latency row. The report can then say
that a shape was timed on a busy machine, and ``compare`` can say that a slower NEW was timed
on a busier machine than BASE, instead of only calling it a regression of the model.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["BUSY_SHARE", "busy_note", "other_cpu_share", "watch_other_cpu"]

BUSY_SHARE = 0.25  # above this share of all CPUs used by others, a timing window is called busy

_BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq", "steal")  # guest time is already inside user


def other_cpu_share(sys0: Any, sys1: Any, own0: Any, own1: Any, wall_s: float, cpus: int) -> dict[str, float]:
    """Shares of the window's CPU capacity (``wall_s`` × ``cpus``) used by others and stolen by the host.

    ``sys*`` are ``psutil.cpu_times()`` and ``own*`` this process's ``cpu_times()`` at the window's
    start and end. Clamped to [0, 1]: counters tick in 10 ms steps, so short windows jitter.
    """

    def busy(t: Any) -> float:
        return sum(getattr(t, f, 0.0) for f in _BUSY_FIELDS)

    def own(p: Any) -> float:
        return p.user + p.system  # this process's threads only: a child's time counts as someone else's

    capacity = max(wall_s * cpus, 1e-9)
    other = (busy(sys1) - busy(sys0)) - (own(own1) - own(own0))
    steal = getattr(sys1, "steal", 0.0) - getattr(sys0, "steal", 0.0)
    return {
        "other_cpu_share": round(min(max(other / capacity, 0.0), 1.0), 3),
        "steal_share": round(min(max(steal / capacity, 0.0), 1.0), 3),
        "window_s": round(wall_s, 2),
        "cpus": cpus,
    }


@contextlib.contextmanager
def watch_other_cpu(record: dict[str, Any]) -> Iterator[None]:
    """Fill ``record`` with ``other_cpu_share`` for the ``with`` block (left empty if psutil cannot tell)."""
    import psutil

    me = psutil.Process()
    try:
        sys0, own0, t0 = psutil.cpu_times(), me.cpu_times(), time.monotonic()
    except (OSError, psutil.Error):
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError, psutil.Error):
            record.update(
                other_cpu_share(
                    sys0, psutil.cpu_times(), own0, me.cpu_times(), time.monotonic() - t0, psutil.cpu_count()
                )
            )


def busy_note(contention: dict[str, Any] | None) -> str | None:
    """'other processes used 45% of the 2 CPUs while it was timed (host steal 3%)' when busy, else None."""
    if not contention or contention.get("other_cpu_share", 0.0) <= BUSY_SHARE:
        return None
    steal = contention.get("steal_share", 0.0)
    return (
        f"other processes used {contention['other_cpu_share']:.0%} of the {contention['cpus']} CPUs while it was "
        f"timed{f' (host steal {steal:.0%})' if steal >= 0.01 else ''}"
    )

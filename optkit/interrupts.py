"""Ctrl-C and SIGTERM that are never lost.

Python turns SIGINT into ``KeyboardInterrupt`` at whichever bytecode runs next. When that is
inside a weakref callback or a ``__del__`` (importlib's module-lock callback during a lazy import,
seen in our interrupt tests), Python prints "Exception ignored" and carries on: the fine-tune ran
to the end and the run exited 0 after Ctrl-C. So the handler also records the request, and
``check()`` raises it again at the next safe point: every progress update, every step boundary,
and before the report replaces the old one.

SIGTERM (a cancelled CI job, ``kill``, ``docker stop``) takes the same path, because Python's
default would end the process on the spot, skipping the cleanup that keeps the cache and the
reports whole and the message that says where the run stopped.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any

__all__ = ["check", "handling", "requested"]

_state: dict[str, int | None] = {"signal": None}


def requested() -> int | None:
    """The signal that asked this run to stop (``signal.SIGINT`` or ``SIGTERM``), or None."""
    return _state["signal"]


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a stop was asked for, even if the first one was swallowed."""
    if _state["signal"] is not None:
        raise KeyboardInterrupt


def _on_signal(signum: int, frame: Any) -> None:
    again = _state["signal"] is not None
    _state["signal"] = _state["signal"] or signum
    if again and signum == signal.SIGTERM:
        return  # a repeated SIGTERM must not cut the first one's cleanup short
    raise KeyboardInterrupt


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Install the handlers for a command and restore the caller's afterwards (tests run commands in-process)."""
    _state["signal"] = None
    previous: dict[int, Any] = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) is not signal.SIG_IGN:  # nohup and background jobs ignore SIGINT on purpose
                previous[sig] = signal.signal(sig, _on_signal)
    except ValueError:  # not the main thread: signals cannot be handled here anyway
        pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:  # None: installed from C, nothing Python can put back
                signal.signal(sig, handler)
        # the request belonged to this command (the CLI has read it by now): a later run_recipe() in the
        # same process (a notebook, the test suite) must not stop at its first progress step because of it
        _state["signal"] = None

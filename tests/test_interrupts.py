"""A Ctrl-C that Python swallows is raised again at the next safe point; SIGTERM follows the same path."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from optkit import interrupts
from optkit.progress import SilentProgress


class _Swallowed:
    """A Ctrl-C landing in ``__del__`` (or a weakref callback) is printed as 'Exception ignored' and lost."""

    def __del__(self) -> None:
        interrupts._on_signal(signal.SIGINT, None)  # what the handler does when the signal lands here


@pytest.fixture
def sigint_as_in_a_terminal() -> Iterator[None]:
    """Python's own Ctrl-C handler, whatever the suite inherited: under ``nohup`` or ``cmd &`` SIGINT starts
    ignored, and ``handling()`` rightly leaves an ignored SIGINT alone (tested below)."""
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, inherited)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_swallowed_ctrl_c_is_raised_at_the_next_progress_step(sigint_as_in_a_terminal: None) -> None:
    before = signal.getsignal(signal.SIGINT)
    with interrupts.handling():
        assert signal.getsignal(signal.SIGINT) is interrupts._on_signal
        obj = _Swallowed()
        del obj  # KeyboardInterrupt raised inside __del__: Python ignores it
        assert interrupts.requested() == signal.SIGINT
        with SilentProgress().task("training", total=10) as advance, pytest.raises(KeyboardInterrupt):
            advance(1)
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler is back
    assert interrupts.requested() is None  # and the request ended with the command that got it
    interrupts.check()


def test_a_repeated_sigterm_does_not_cut_the_cleanup_short() -> None:
    with interrupts.handling():
        with pytest.raises(KeyboardInterrupt):
            interrupts._on_signal(signal.SIGTERM, None)
        interrupts._on_signal(signal.SIGTERM, None)  # ignored while the first one unwinds
        assert interrupts.requested() == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C still gets out faster
            interrupts._on_signal(signal.SIGINT, None)
        assert interrupts.requested() == signal.SIGTERM  # the first signal decides the exit code
    with interrupts.handling():
        assert interrupts.requested() is None  # every command starts clean
        interrupts.check()


def test_an_ignored_sigint_stays_ignored_and_sigterm_is_still_handled() -> None:
    """``nohup`` and background jobs ignore SIGINT on purpose; a run started that way must not undo it."""
    inherited = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts.handling():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is interrupts._on_signal
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, inherited)

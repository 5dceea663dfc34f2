"""Progress output for long steps: one rich console on stderr, bars with ETA.

Passes and the harness receive a ``Progress`` and never talk to the terminal themselves,
so tests can run them silently and the CLI decides how things look.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from optkit.interrupts import check

__all__ = ["Progress", "SilentProgress"]


class Progress:
    """Step lines and progress bars on stderr (stdout stays for the report table)."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        if not self.console.is_terminal:
            # Logs and CI: rich would wrap at 80 columns and truncate the report table.
            self.console = Console(stderr=True, highlight=False, width=200)

    def log(self, message: str) -> None:
        self.console.print(message)

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[..., None]]:
        """Yield ``advance(n=1, info="")``; shows done/total, elapsed, ETA and the latest info."""
        if not self.console.is_terminal:
            with self._plain_task(description, total) as advance:
                yield advance
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        columns = (
            TextColumn("  {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
        )
        with RichProgress(*columns, console=self.console, transient=False) as bar:
            task_id = bar.add_task(description, total=total, info="")

            def advance(n: int = 1, info: str = "") -> None:
                check()  # each step of a long task is a safe point to act on a Ctrl-C that Python swallowed
                bar.update(task_id, advance=n, info=info)

            yield advance

    @contextlib.contextmanager
    def _plain_task(self, description: str, total: int) -> Iterator[Callable[..., None]]:
        """Logs and CI have no live bar: print a line every 25% or 30 s, with the ETA."""
        start = time.perf_counter()
        state = {"done": 0, "printed_at": start, "pct": 0}

        def advance(n: int = 1, info: str = "") -> None:
            check()
            state["done"] += n
            now = time.perf_counter()
            pct = int(100 * state["done"] / max(total, 1))
            if state["done"] >= total or pct >= state["pct"] + 25 or now - state["printed_at"] >= 30:
                elapsed = now - start
                eta = elapsed / state["done"] * (total - state["done"]) if state["done"] else 0.0
                self.console.print(
                    f"  {description}: {state['done']}/{total} ({pct}%) elapsed {_hms(elapsed)} eta {_hms(eta)} {info}"
                )
                state.update(printed_at=now, pct=pct)

        yield advance


def _hms(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


class SilentProgress(Progress):
    """For library use and tests: messages go to a list, bars are no-ops."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def log(self, message: str) -> None:
        self.messages.append(message)

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[..., None]]:
        yield lambda n=1, info="": check()

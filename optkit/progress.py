"""Progress output for long steps: one rich console on stderr, bars with ETA.

Passes and the harness receive a ``Progress`` and never talk to the terminal themselves,
so tests can run them silently and the CLI decides how things look.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

__all__ = ["Progress", "SilentProgress"]


class Progress:
    """Step lines and progress bars on stderr (stdout stays for the report table)."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)

    def log(self, message: str) -> None:
        self.console.print(message)

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[..., None]]:
        """Yield ``advance(n=1, info="")``; shows done/total, elapsed, ETA and the latest info."""
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
                bar.update(task_id, advance=n, info=info)

            yield advance


class SilentProgress(Progress):
    """For library use and tests: messages go to a list, bars are no-ops."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def log(self, message: str) -> None:
        self.messages.append(message)

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[..., None]]:
        yield lambda n=1, info="": None

"""Error types the CLI turns into a clean message and an exit code.

Anything that is *not* an ``OptkitError`` is a bug in optkit and keeps its traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = [
    "CacheError",
    "DataError",
    "EvaluationError",
    "InternalError",
    "ModelSourceError",
    "OptkitError",
    "PackageError",
    "PassError",
    "RecipeError",
    "ResourceError",
    "RunInterrupted",
    "unexpected_errors",
]


class OptkitError(Exception):
    """Bad input or an environment problem the user can fix; exit code 2."""

    exit_code = 2


class RecipeError(OptkitError):
    """The recipe file is malformed or inconsistent."""


class ModelSourceError(OptkitError):
    """The model could not be found or loaded."""


class DataError(OptkitError):
    """The data set could not be read, or does not fit the recipe."""


class PassError(OptkitError):
    """A pass failed on its input artifact."""


class CacheError(OptkitError):
    """The artifact cache is unusable."""


class EvaluationError(OptkitError):
    """An artifact could not be evaluated."""


class PackageError(OptkitError):
    """A deployable package is missing, incomplete or altered, or cannot be written."""


class ResourceError(OptkitError):
    """The machine cannot hold what the recipe asks for (memory, disk); refused before the work starts."""


class RunInterrupted(OptkitError):
    """Ctrl-C during a step; what finished before it is cached. Exit code 130, as for SIGINT."""

    exit_code = 130


class InternalError(OptkitError):
    """An exception optkit did not expect (a bug here or in a library it calls); exit code 1, as for any failure
    that is not the user's input. The original exception is chained, so ``--debug`` shows its traceback."""

    exit_code = 1


@contextlib.contextmanager
def unexpected_errors(stage: str) -> Iterator[None]:
    """Turn an exception that is not an ``OptkitError`` into one line that says where it happened."""
    try:
        yield
    except OptkitError:
        raise
    except Exception as e:
        raise InternalError(describe_unexpected(e, stage)) from e


def describe_unexpected(error: BaseException, stage: str | None = None) -> str:
    """``unexpected ValueError during evaluation: <first line>``, plus what to do about it."""
    lines = str(error).strip().splitlines()
    first = lines[0] if lines else "(no message)"
    first = first if len(first) <= 300 else first[:297] + "..."
    where = f" during {stage}" if stage else ""
    return (
        f"unexpected {type(error).__name__}{where}: {first}. optkit did not expect this: rerun with --debug "
        f"for the traceback, and report it as a bug if the recipe and its inputs are valid"
    )

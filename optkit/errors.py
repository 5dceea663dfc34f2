"""Error types the CLI turns into a clean message and an exit code.

Anything that is *not* an ``OptkitError`` is a bug in optkit and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "CacheError",
    "DataError",
    "EvaluationError",
    "ModelSourceError",
    "OptkitError",
    "PassError",
    "RecipeError",
    "ResourceError",
    "RunInterrupted",
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


class ResourceError(OptkitError):
    """The machine cannot hold what the recipe asks for (memory, disk); refused before the work starts."""


class RunInterrupted(OptkitError):
    """Ctrl-C during a step; what finished before it is cached. Exit code 130, as for SIGINT."""

    exit_code = 130

"""Error types the CLI turns into a clean message and an exit code.

Anything that is *not* an ``OptkitError`` is a bug in optkit and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "CacheError",
    "DataError",
    "EvaluationError",
    "GateFailure",
    "ModelSourceError",
    "OptkitError",
    "PassError",
    "RecipeError",
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


class GateFailure(OptkitError):
    """One or more report gates were violated; exit code 1 (like a failed test)."""

    exit_code = 1

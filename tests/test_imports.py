"""Every module imports on its own, and in any order: no import circle held apart by luck."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for p in (ROOT / "optkit").rglob("*.py")
    if p.name != "__main__.py"
)


def _import_in_fresh_interpreter(modules: list[str]) -> subprocess.CompletedProcess[str]:
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    return subprocess.run([sys.executable, "-c", code, *modules], capture_output=True, text=True, cwd=ROOT)


def test_the_module_list_is_the_package() -> None:
    assert "optkit.recipe" in MODULES and "optkit.passes.registry" in MODULES and len(MODULES) > 40


@pytest.mark.parametrize("order", ["alphabetical", "reverse"])
def test_every_module_imports_in_one_interpreter_in_either_order(order: str) -> None:
    modules = MODULES if order == "alphabetical" else MODULES[::-1]
    done = _import_in_fresh_interpreter(modules)
    assert done.returncode == 0, done.stderr[-3000:]


def test_each_module_imports_alone_in_a_fresh_interpreter() -> None:
    """One interpreter per module: a module that only works once another was imported first fails here."""
    code = (
        "import subprocess, sys\n"
        "bad = []\n"
        "for m in sys.argv[1:]:\n"
        "    r = subprocess.run([sys.executable, '-c', f'import {m}'], capture_output=True, text=True)\n"
        "    if r.returncode: bad.append(m + ': ' + r.stderr.strip().splitlines()[-1])\n"
        "print('\\n'.join(bad)); sys.exit(1 if bad else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, *MODULES], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout


def test_no_pass_is_named_outside_passes() -> None:
    """A pass owns what concerns it: the layers above ask it through its config, never by its name."""
    from optkit.passes.registry import list_passes

    names = "|".join(map(re.escape, list_passes()))
    pattern = re.compile(rf"""["']({names})["']""")
    leaks = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in sorted((ROOT / "optkit").rglob("*.py"))
        if "passes" not in p.relative_to(ROOT / "optkit").parts
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line) and not line.lstrip().startswith("#")
    ]
    assert not leaks, "\n".join(leaks)


@pytest.mark.parametrize("module", ["api.py", "compare.py", "bench.py", "passes/distill.py", "evaluate/suite.py"])
def test_entry_points_and_the_distill_pass_have_no_function_over_80_lines(module: str) -> None:
    import ast

    tree = ast.parse((ROOT / "optkit" / module).read_text())
    long = [
        f"{n.name} ({n.end_lineno - n.lineno + 1} lines)"
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.end_lineno - n.lineno + 1 > 80
    ]
    assert not long, long

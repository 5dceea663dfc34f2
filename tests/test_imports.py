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


@pytest.mark.parametrize(
    "module", ["api.py", "ci.py", "compare.py", "bench.py", "passes/distill.py", "evaluate/suite.py"]
)
def test_entry_points_and_the_distill_pass_have_no_function_over_80_lines(module: str) -> None:
    import ast

    tree = ast.parse((ROOT / "optkit" / module).read_text())
    long = [
        f"{n.name} ({n.end_lineno - n.lineno + 1} lines)"
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.end_lineno - n.lineno + 1 > 80
    ]
    assert not long, long


# The house's layers, lowest first: a module may import only from its own layer or below. The
# catalogues (pass registry and base, task registry and base) sit under the recipe, which builds
# its step types and checks its task names from them; they load the implementations on first use.
LAYERS = [
    (
        "core",
        [
            "optkit",
            "optkit.artifact",
            "optkit.cache",
            "optkit.envinfo",
            "optkit.distributed",
            "optkit.errors",
            "optkit.guards",
            "optkit.interrupts",
            "optkit.progress",
            "optkit.provider_names",
            "optkit.redact",
            "optkit.testhooks",
        ],
    ),
    (
        "catalogue",
        ["optkit.passes.base", "optkit.passes.options", "optkit.passes.registry", "optkit.tasks", "optkit.tasks.base"],
    ),
    ("recipe", ["optkit.recipe"]),
    ("tasks and sources", ["optkit.tasks.*", "optkit.sources", "optkit.sources.*"]),
    (
        "runtime",
        [
            "optkit.evaluate.inputs",
            "optkit.evaluate.predict",
            "optkit.evaluate.providers",
            # timing and its statistics: stdlib-only primitives that a measuring pass (tune) uses too
            "optkit.evaluate.latency",
            "optkit.evaluate.stats",
        ],
    ),
    ("passes", ["optkit.passes", "optkit.passes.*", "optkit.structure"]),
    ("measure", ["optkit.evaluate", "optkit.evaluate.*"]),
    ("build", ["optkit.preflight", "optkit.runner"]),
    ("evaluate a build", ["optkit.evaluate.harness"]),
    ("reports", ["optkit.reports", "optkit.reports.*", "optkit.compare"]),
    ("packages", ["optkit.ship"]),
    ("entry points", ["optkit.api", "optkit.bench", "optkit.ci"]),
    ("command line", ["optkit.cli", "optkit.__main__"]),
]
# Loading the implementations a catalogue lists is the catalogue's job, not a dependency on them.
_LOADERS = {("optkit.passes.registry", "_load_passes"), ("optkit.tasks", "_load_tasks")}


def _layer(module: str) -> int:
    """The most specific pattern wins: 'optkit.evaluate.harness' over 'optkit.evaluate.*'."""
    best, length = -1, -1
    for i, (_, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            prefix = pattern.removesuffix(".*")
            matches = module.startswith(prefix + ".") if pattern.endswith(".*") else module == prefix
            if matches and len(pattern) > length:
                best, length = i, len(pattern)
    return best


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    """optkit imports made at run time (not under TYPE_CHECKING, not in a catalogue's loader)."""
    import ast

    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        typing_only = isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        loader = isinstance(node, ast.FunctionDef) and (module, node.name) in _LOADERS
        if typing_only or loader:
            skip |= {id(n) for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("optkit"):
            found += [(node.lineno, node.module)]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("optkit")]
    return found


def test_every_module_imports_only_from_its_own_layer_or_below() -> None:
    upward = []
    for module in MODULES:
        path = ROOT / (module.replace(".", "/") + ".py")
        if not path.is_file():
            path = ROOT / module.replace(".", "/") / "__init__.py"
        mine = _layer(module)
        assert mine >= 0, f"{module} is in no layer; add it to LAYERS"
        for line, target in _imports(path, module):
            if _layer(target) > mine:
                upward.append(f"{module}:{line} ({LAYERS[mine][0]}) imports {target} ({LAYERS[_layer(target)][0]})")
    assert not upward, "\n".join(upward)

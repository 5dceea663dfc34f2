"""Static guarantees over optkit's own source: no unsafe loaders anywhere, remote code off by default."""

from __future__ import annotations

import re
from pathlib import Path

from optkit.recipe import ModelSpec

SOURCE = sorted((Path(__file__).resolve().parents[1] / "optkit").rglob("*.py"))
UNSAFE = {
    r"yaml\.load\(|yaml\.unsafe_load|yaml\.full_load|Loader=yaml\.(Unsafe|Full)?Loader": "YAML must be safe_load",
    r"\bpickle\.loads?\(|\bdill\b|cloudpickle|joblib\.load|read_pickle": "no unpickling",
    r"allow_pickle\s*=\s*True": "numpy must not unpickle",
    r"weights_only\s*=\s*False": "torch.load must keep weights_only=True",
    r"trust_remote_code\s*=\s*True": "remote code only when the recipe says so",
    r"(?<![.\w])(eval|exec)\(": "no eval/exec of strings",
}


def test_no_unsafe_loading_in_optkit_source() -> None:
    problems = []
    for path in SOURCE:
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            for pattern, why in UNSAFE.items():
                if re.search(pattern, code):
                    problems.append(f"{path.name}:{lineno}: {why}: {line.strip()}")
    assert not problems, "\n".join(problems)


def test_every_torch_load_sets_weights_only() -> None:
    calls = [
        (p.name, line.strip())
        for p in SOURCE
        for line in p.read_text().splitlines()
        if "torch.load(" in line and "weights_only=True" not in line
    ]
    assert not calls, calls


def test_trust_remote_code_is_off_unless_set() -> None:
    assert ModelSpec(source="x").trust_remote_code is False

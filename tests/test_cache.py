from __future__ import annotations

import json
from pathlib import Path

import pytest

from optkit.cache import ArtifactCache, cache_key, write_atomic


def _make(content: str, calls: list[str]):  # type: ignore[no-untyped-def]
    def make(out: Path) -> dict:
        calls.append(content)
        (out / "model.bin").write_text(content)
        return {"note": content}

    return make


def test_same_key_hits_and_a_changed_field_misses(tmp_path: Path) -> None:
    cache, calls = ArtifactCache(tmp_path), []
    k1 = cache_key({"kind": "export", "config": {"opset": 17}, "input": "abc", "version": 1})
    k2 = cache_key({"kind": "export", "config": {"opset": 18}, "input": "abc", "version": 1})
    k3 = cache_key({"kind": "export", "config": {"opset": 17}, "input": "abc", "version": 2})
    assert len({k1, k2, k3}) == 3
    assert cache_key({"b": 1, "a": 2}) == cache_key({"a": 2, "b": 1})  # canonical JSON
    meta, built = cache.build(k1, _make("one", calls))
    assert built and meta["note"] == "one" and meta["manifest"]["model.bin"][0] == 3
    meta, built = cache.build(k1, _make("again", calls))
    assert not built and calls == ["one"]
    cache.build(k2, _make("two", calls))
    assert calls == ["one", "two"]


def test_a_damaged_entry_is_rebuilt_not_trusted(tmp_path: Path) -> None:
    cache, calls = ArtifactCache(tmp_path), []
    key = cache_key({"x": 1})
    cache.build(key, _make("good", calls))
    (cache.path(key) / "model.bin").write_text("bad!")  # same size, other bytes
    assert cache.lookup(key) is None
    _, built = cache.build(key, _make("good", calls))
    assert built and (cache.path(key) / "model.bin").read_text() == "good"


def test_an_entry_without_meta_is_not_trusted(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    key = cache_key({"x": 2})
    cache.path(key).mkdir()
    (cache.path(key) / "model.bin").write_text("half-written")
    assert cache.lookup(key) is None and not cache.path(key).exists()


def test_a_failing_build_leaves_nothing_behind(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    key = cache_key({"x": 3})

    def boom(out: Path) -> dict:
        (out / "partial.onnx").write_text("...")
        raise RuntimeError("killed mid-way")

    with pytest.raises(RuntimeError):
        cache.build(key, boom)
    assert not cache.path(key).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_write_atomic_replaces_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "report.json"
    write_atomic(target, json.dumps({"v": 1}))
    write_atomic(target, json.dumps({"v": 2}))
    assert json.loads(target.read_text()) == {"v": 2}
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]

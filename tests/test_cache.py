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


def test_leftovers_of_a_dead_process_are_swept_and_a_live_ones_kept(tmp_path: Path) -> None:
    import os

    dead = _dead_pid()
    (tmp_path / f".tmp-{'a' * 16}-{dead}-12345678").mkdir()
    (tmp_path / f".report.json.tmp-{dead}-12345678").write_text("half")
    (tmp_path / ".trash-abc-12345678").mkdir()
    live = tmp_path / f".tmp-{'b' * 16}-{os.getpid()}-12345678"
    live.mkdir()
    ArtifactCache(tmp_path)  # opening the cache sweeps
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".locks") == [live.name]


def test_write_files_atomic_keeps_the_old_set_until_all_are_staged(tmp_path: Path) -> None:
    from optkit.cache import write_files_atomic

    a, b = tmp_path / "report.json", tmp_path / "report.md"
    write_files_atomic({a: "old json", b: "old md"})

    def interrupted() -> None:
        assert a.read_text() == "old json" and b.read_text() == "old md"  # both new files staged, none replaced
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_files_atomic({a: "new json", b: "new md"}, before_replace=interrupted)
    assert (a.read_text(), b.read_text()) == ("old json", "old md")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md"]


def test_a_second_builder_says_what_it_waits_for(tmp_path: Path) -> None:
    import fcntl

    cache, key, said = ArtifactCache(tmp_path), cache_key({"x": 9}), []
    (tmp_path / ".locks").mkdir(exist_ok=True)
    holder = open(tmp_path / ".locks" / f"{key[:32]}.lock", "a+")  # noqa: SIM115 - held across the call
    holder.write("4242")
    holder.flush()
    fcntl.flock(holder, fcntl.LOCK_EX)
    import threading

    threading.Timer(0.5, lambda: fcntl.flock(holder, fcntl.LOCK_UN)).start()
    _, built = cache.build(key, _make("x", []), on_wait=said.append)
    holder.close()
    assert built and said == ["pid 4242"]


def _dead_pid() -> int:
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_force_is_refused_while_another_process_uses_the_entry(tmp_path: Path) -> None:
    """A run that found an entry keeps it until it ends; --force elsewhere must not delete it under it."""
    import subprocess
    import sys
    import textwrap

    from optkit.cache import release_holds
    from optkit.errors import CacheError

    cache, key = ArtifactCache(tmp_path), cache_key({"x": "in use"})
    cache.build(key, _make("v1", []))
    release_holds()  # as at the end of this process's run
    user = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from optkit.cache import ArtifactCache
        meta, built = ArtifactCache(Path({str(tmp_path)!r})).build({key!r}, lambda out: {{}})
        print("using", built, flush=True)
        sys.stdin.readline()  # until the test lets go
    """)
    proc = subprocess.Popen([sys.executable, "-c", user], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "using False\n"  # reused, not rebuilt
        with pytest.raises(
            CacheError, match=r"^--force: cache entry \w{12} \(baseline\[0\] finetune\) in .* is in use"
        ):
            cache.invalidate(key, "baseline[0] finetune")
        assert (cache.path(key) / "model.bin").read_text() == "v1"  # untouched
    finally:
        proc.communicate("done\n", timeout=60)
    cache.invalidate(key)  # the other run has ended: now it goes
    assert not cache.path(key).exists()


def test_a_process_may_force_what_it_used_itself(tmp_path: Path) -> None:
    cache, key, calls = ArtifactCache(tmp_path), cache_key({"x": "mine"}), []
    cache.build(key, _make("v1", calls))  # held by this process from here
    cache.invalidate(key)
    cache.build(key, _make("v2", calls))
    assert calls == ["v1", "v2"] and (cache.path(key) / "model.bin").read_text() == "v2"


def test_an_artifact_with_a_subfolder_is_built_and_then_reused(tmp_path: Path) -> None:
    """A pass may save a folder (a tokenizer directory) beside its files; the entry still builds and is reused."""
    cache, key, calls = ArtifactCache(tmp_path), cache_key({"x": "folder"}), []

    def make(out: Path) -> dict:
        calls.append("built")
        (out / "model.bin").write_text("weights")
        (out / "tokenizer").mkdir()
        (out / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\n")
        return {}

    _, built = cache.build(key, make)
    assert built and (cache.path(key) / "tokenizer" / "vocab.txt").read_text() == "[PAD]\n[UNK]\n"
    _, built = ArtifactCache(tmp_path).build(key, make)
    assert not built and calls == ["built"]


def test_meta_json_keeps_values_json_cannot_write_as_text_and_says_when_it_was_built(tmp_path: Path) -> None:
    """A pass's notes may hold a path or a numpy number; the entry stores them as text, with its build time."""
    from datetime import datetime, timezone

    import numpy as np

    cache, key = ArtifactCache(tmp_path), cache_key({"x": "meta"})
    cache.build(key, lambda out: {"pass_meta": {"source": Path("/models/bert"), "loss": np.float32(0.25)}})
    meta = ArtifactCache(tmp_path).lookup(key)  # as a later run reads it back from meta.json
    assert meta is not None and meta["pass_meta"] == {"source": "/models/bert", "loss": "0.25"}
    created = datetime.strptime(meta["created"], "%Y-%m-%dT%H:%M:%S%z")
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 300


def test_a_failing_build_raises_its_own_error_even_if_its_folder_is_already_gone(tmp_path: Path) -> None:
    import shutil

    cache, key = ArtifactCache(tmp_path), cache_key({"x": "gone"})

    def make(out: Path) -> dict:
        shutil.rmtree(out)  # whatever removed it, the caller must still learn why the build failed
        raise RuntimeError("the export ran out of disk")

    with pytest.raises(RuntimeError, match="ran out of disk"):
        cache.build(key, make)
    assert not cache.path(key).exists()

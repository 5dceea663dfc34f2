from __future__ import annotations

import json
from pathlib import Path

import pytest

from optkit.cache import ArtifactCache, cache_key
from optkit.redact import REDACTED, redact, secret_env_values


def test_secret_env_values_and_token_shapes_are_replaced() -> None:
    env = {"HF_TOKEN": "hf_" + "a" * 34, "MY_API_KEY": "s3cr3t-value", "HOME": "/root", "SHORT_TOKEN": "abc"}
    secrets = secret_env_values(env)
    assert secrets == sorted(["hf_" + "a" * 34, "s3cr3t-value"], key=len, reverse=True)
    data = {
        "note": "used s3cr3t-value and ghp_" + "b" * 36,
        "url": "https://user:pa55@host/data.csv",
        "list": ["AKIAABCDEFGHIJKLMNOP", 3],
        "home": "/root",
    }
    out = redact(data, secrets)
    assert out == {
        "note": f"used {REDACTED} and {REDACTED}",
        "url": f"https://{REDACTED}@host/data.csv",
        "list": [REDACTED, 3],
        "home": "/root",
    }


def test_cache_meta_never_stores_a_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = "hf_" + "Z" * 30
    monkeypatch.setenv("HF_TOKEN", token)

    def make(out: Path) -> dict:
        (out / "w.bin").write_text("x")
        return {"key_inputs": {"config": {"revision": token}}}

    cache = ArtifactCache(tmp_path)
    meta, _ = cache.build(cache_key({"t": 1}), make)
    stored = (cache.path(cache_key({"t": 1})) / "meta.json").read_text()
    assert token not in stored and token not in json.dumps(meta) and REDACTED in stored

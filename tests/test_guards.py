from __future__ import annotations

import collections
from pathlib import Path

import pytest

from optkit import guards
from optkit.errors import ResourceError
from optkit.guards import ModelDims, calibration_bytes, check_disk, check_memory, forward_bytes, human_bytes

MINILM = ModelDims(hidden=384, layers=6, intermediate=1536, heads=12)


def test_dims_read_bert_and_distilbert_names() -> None:
    bert = {"hidden_size": 384, "num_hidden_layers": 6, "intermediate_size": 1536, "num_attention_heads": 12}
    assert ModelDims.from_config(bert) == MINILM
    distil = {"dim": 768, "n_layers": 6, "hidden_dim": 3072, "n_heads": 12}
    assert ModelDims.from_config(distil) == ModelDims(768, 6, 3072, 12)


def test_calibration_grows_with_rows_and_padded_length() -> None:
    short, long = ["a few words here"] * 256, [" ".join(["word"] * 200)] * 256
    assert calibration_bytes(MINILM, short * 2, 128, 8) == 2 * calibration_bytes(MINILM, short, 128, 8)
    capped = calibration_bytes(MINILM, long, 128, 8)  # truncated at max_length: 128 tokens per row
    assert capped > 20 * calibration_bytes(MINILM, short, 128, 8)
    assert 5 * 2**30 < capped < 12 * 2**30  # 256 MiniLM rows at 128 tokens: several GB, as ORT really holds


def test_attention_scores_dominate_long_sequences() -> None:
    assert forward_bytes(MINILM, 1, 4096) > 50 * forward_bytes(MINILM, 1, 128) * 4096 // 128 // 50


def test_check_memory_refuses_with_field_estimate_and_available() -> None:
    check_memory([("evaluate.batch_size", "accuracy pass", 700)], available=1000)
    with pytest.raises(ResourceError, match=r"^data\.x: big thing needs about 1\.0 MB of memory, but 1000 B is"):
        check_memory([("data.x", "big thing", 2**20)], available=1000)


def test_check_disk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(guards.shutil, "disk_usage", lambda _: usage(10**12, 0, 200 * 2**20))
    check_disk(tmp_path, 100 * 2**20, "export")
    with pytest.raises(ResourceError, match=r"export: needs about 214\.0 MB of disk space .* only 200\.0 MB"):
        check_disk(tmp_path, 150 * 2**20, "export")


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (512, 2048, 5 * 2**20, 3 * 2**30)] == ["512 B", "2 KB", "5.0 MB", "3.0 GB"]

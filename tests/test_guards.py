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
    # Worked out by hand from the docstring, 32 batches of 8 rows over MiniLM's 6 layers, 4 bytes a value.
    # 200 words -> 302 tokens, capped at max_length 128: per token and layer 14 x 384 (Q, K, V and
    # output projections in and out, FFN input and output) + 2 x 1536 (FFN) + 2 x 12 heads x 128 scores
    long_per_token = 14 * 384 + 2 * 1536 + 2 * 12 * 128
    assert long_per_token == 11_520
    capped = calibration_bytes(MINILM, long, 128, 8)
    assert capped == 32 * 4 * 6 * 8 * 128 * long_per_token == 9_059_696_640  # 8.4 GiB: the estimate, not a measurement
    # 4 words -> int(4 x 1.5) + 2 = 8 tokens
    short_bytes = 32 * 4 * 6 * 8 * 8 * (14 * 384 + 2 * 1536 + 2 * 12 * 8)
    assert calibration_bytes(MINILM, short, 128, 8) == short_bytes == 424_673_280
    assert calibration_bytes(MINILM, long, 64, 8) == 32 * 4 * 6 * 8 * 64 * (14 * 384 + 2 * 1536 + 2 * 12 * 64)


def test_attention_scores_dominate_long_sequences() -> None:
    # per token, 4 bytes x (4 x 384 hidden-wide + 1536 FFN) = 12,288 B; per pair of tokens, 8 B x 12 heads
    def linear(seq: int) -> int:
        return 12_288 * seq

    def scores(seq: int) -> int:
        return 96 * seq * seq

    assert forward_bytes(MINILM, 1, 128) == linear(128) + scores(128) == 3_145_728  # the two halves are equal at 128
    long = forward_bytes(MINILM, 1, 4096)
    assert long == linear(4096) + scores(4096) == 1_660_944_384
    assert scores(4096) / long > 0.96  # 32x the length: the linear half 32x, the scores 1024x
    assert forward_bytes(MINILM, 4, 4096) == 4 * long


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

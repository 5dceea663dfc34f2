"""The model's and tokenizer's own limits are checked before any step runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from optkit.api import run_recipe
from optkit.errors import RecipeError
from optkit.preflight import _largest_token_id, _length_limit


def test_run_refuses_a_shape_past_the_positions_before_building_anything(
    recipe_dict: dict[str, Any],
    write_recipe,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    recipe_dict["evaluate"]["shapes"] = [{"batch": 1, "seq": 16}, {"batch": 2, "seq": 200}]
    with pytest.raises(RecipeError, match=r"evaluate\.shapes\[1\]\.seq: 200 tokens .* use at most 128"):
        run_recipe(write_recipe(recipe_dict), output=tmp_path / "out", workspace=tmp_path / "ws")
    cache = tmp_path / "ws" / "cache"
    assert not cache.exists() or not [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("config", "tokenizer_config", "limit"),
    [
        ({"max_position_embeddings": 512, "model_type": "bert"}, {"model_max_length": 1e30}, 512),
        # RoBERTa numbers positions after the padding id: 514 embeddings hold 512 tokens
        ({"max_position_embeddings": 514, "model_type": "roberta", "pad_token_id": 1}, {}, 512),
        ({"max_position_embeddings": 512, "model_type": "bert"}, {"model_max_length": 256}, 256),
        ({"max_position_embeddings": 512, "position_embedding_type": "relative_key"}, {}, None),
        ({}, {}, None),
    ],
    ids=["bert", "roberta-offset", "tokenizer-smaller", "relative-positions", "none-stated"],
)
def test_the_length_limit_is_the_smallest_one_stated(
    config: dict[str, Any], tokenizer_config: dict[str, Any], limit: int | None, tmp_path: Path
) -> None:
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    assert _length_limit(tmp_path, config)[0] == limit


def test_the_largest_token_id_counts_added_tokens(tmp_path: Path) -> None:
    tokenizer = {"model": {"vocab": {"a": 0, "b": 1, "c": 2}}, "added_tokens": [{"id": 7, "content": "<x>"}]}
    (tmp_path / "tokenizer.json").write_text(json.dumps(tokenizer))
    assert _largest_token_id(tmp_path) == 7
    (tmp_path / "tokenizer.json").unlink()
    (tmp_path / "vocab.txt").write_text("a\nb\nc\nd\n")
    assert _largest_token_id(tmp_path) == 3

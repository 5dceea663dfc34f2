"""How each rank takes its part of a global batch (the two-rank runs themselves: tests/test_distributed.py)."""

from __future__ import annotations

import pytest

from optkit.passes.training import _shards


def _batch(rows: int, width: int = 5) -> dict:
    import torch

    return {
        "input_ids": torch.arange(rows * width).reshape(rows, width),
        "attention_mask": torch.ones(rows, width, dtype=torch.long),
        "labels": torch.arange(rows) % 2,
        "idx": torch.arange(100, 100 + rows),
    }


@pytest.mark.parametrize("world", [1, 2, 3], ids=["alone", "two", "three"])
def test_the_ranks_shards_cover_every_row_once_and_their_shares_add_up(world: int) -> None:
    loader = [_batch(7), _batch(16), _batch(2)]
    shards = [list(_shards(loader, rank, world, "cpu")) for rank in range(world)]
    for i, batch in enumerate(loader):
        parts = [shards[rank][i] for rank in range(world)]
        assert all(rows == batch["labels"].shape[0] for _, _, rows in parts)  # every rank knows the global size
        assert sum(share for _, share, _ in parts) == pytest.approx(1.0)
        taken = sorted(int(x) for part, share, _ in parts if share > 0 for x in part["idx"])
        assert taken == batch["idx"].tolist()
        for part, share, rows in parts:
            assert share == pytest.approx(part["idx"].shape[0] / rows) or share == 0
            assert part["input_ids"].shape[1] == batch["input_ids"].shape[1]  # the batch's padded width, kept


def test_a_rank_without_rows_still_runs_one_row_at_weight_zero() -> None:
    """It must join the all-reduce (or every other rank would wait for it), adding nothing to the gradient."""
    ((part, share, rows),) = list(_shards([_batch(2)], 2, 3, "cpu"))
    assert rows == 2 and share == 0.0
    assert part["idx"].tolist() == [100]

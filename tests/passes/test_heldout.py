"""HeldOutBest: the early stopping distill and distill_embeddings share."""

from __future__ import annotations

from typing import Any

from optkit.passes.heldout import HeldOutBest, loss_means, schedule


class _Student:
    """Weights are one number; enough to see which epoch's state is kept."""

    def __init__(self) -> None:
        self.w = 0

    def state_dict(self) -> dict[str, Any]:
        return {"w": self.w}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.w = state["w"]


def _stopper(student: _Student, scores: list[float], patience: int, lines: list[str]) -> HeldOutBest:
    it = iter(scores)
    return HeldOutBest(
        student, lambda: next(it), 7, patience, lines.append, key="k", what="held-out x", rows_note="rows", digits=2
    )


def test_stops_after_patience_epochs_without_a_better_score_and_keeps_the_best_weights() -> None:
    student, lines = _Student(), []
    stopper = _stopper(student, [0.5, 0.7, 0.6, 0.65, 0.4], 2, lines)
    stops = []
    for epoch in (1, 2, 3, 4):
        student.w = epoch
        stops.append(stopper.on_epoch_end(epoch, epoch * 10))
    assert stops == [False, False, False, True]  # epoch 2 was best; 2 epochs later it stops
    student.w = 99
    stopper.finish(4.0, 40)
    assert student.w == 2 and stopper.best["epoch"] == 2  # the final 0.4 is worse: epoch 2's weights come back
    assert [h["k"] for h in stopper.history] == [0.5, 0.7, 0.6, 0.65, 0.4]
    assert lines[0] == "  epoch 1: held-out x 0.5000 (7 rows)" and "kept epoch 2" in lines[-1]


def test_final_weights_stay_when_they_hold_out_best_and_no_rows_turns_it_off() -> None:
    student, lines = _Student(), []
    stopper = _stopper(student, [0.5, 0.9], 1, lines)
    student.w = 1
    assert stopper.on_epoch_end(1, 5) is False
    student.w = 5
    stopper.finish(1.5, 8)
    assert student.w == 5 and stopper.best["epoch"] == 1.5
    off = HeldOutBest(_Student(), lambda: 1 / 0, 0, 1, print, key="k", what="x", rows_note="rows", digits=2)
    assert off.on_epoch_end(1, 1) is False and off.history == []  # the score is never asked for
    off.finish(1.0, 1)


def test_schedule_and_loss_means_carry_the_config_through() -> None:
    class Config:
        epochs, learning_rate, batch_size, weight_decay, warmup_ratio, max_steps = 2.0, 1e-4, 8, 0.01, 0.1, None

    seen: list[str] = []
    kwargs = schedule(Config(), 64, 3, lambda n, info: seen.append(info), digits=4)
    assert {k: v for k, v in kwargs.items() if k != "on_step"} == {
        "epochs": 2.0,
        "learning_rate": 1e-4,
        "batch_size": 8,
        "max_length": 64,
        "weight_decay": 0.01,
        "warmup_ratio": 0.1,
        "seed": 3,
        "max_steps": None,
    }
    kwargs["on_step"](1, 10, 0.123456)
    assert seen == ["loss 0.1235"]
    assert loss_means([float(i) for i in range(20)], 2) == {"mean_loss_first_10": 4.5, "mean_loss_last_10": 14.5}

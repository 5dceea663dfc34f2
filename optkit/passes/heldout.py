"""What the training passes (finetune, distill, distill_embeddings) share around ``train_classifier``.

``schedule`` turns a pass's training options into the keyword arguments ``train_classifier`` takes,
so a new option is passed through in one place; ``HeldOutBest`` is early stopping on a score measured
on train rows held out of training (accuracy for ``distill``, cosine to the teacher for
``distill_embeddings``), keeping the best epoch's weights; ``loss_means`` summarises the loss curve
the same way in every pass's meta.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

__all__ = ["HeldOutBest", "loss_means", "schedule"]


def schedule(config: Any, max_length: int, seed: int, advance: Any, digits: int = 3) -> dict[str, Any]:
    """``train_classifier``'s schedule arguments from a pass config; the progress bar shows the loss to ``digits``."""
    return {
        "epochs": config.epochs,
        "learning_rate": config.learning_rate,
        "batch_size": config.batch_size,
        "max_length": max_length,
        "weight_decay": config.weight_decay,
        "warmup_ratio": config.warmup_ratio,
        "seed": seed,
        "max_steps": config.max_steps,
        "on_step": lambda step, total, loss: advance(1, info=f"loss {loss:.{digits}f}"),
    }


def loss_means(losses: list[float], digits: int) -> dict[str, float]:
    """Mean loss of the first and the last 10 steps: shows in the meta whether training moved the loss at all."""
    first, last = losses[:10], losses[-10:]
    return {
        "mean_loss_first_10": round(sum(first) / len(first), digits),
        "mean_loss_last_10": round(sum(last) / len(last), digits),
    }


class HeldOutBest:
    """Score held-out rows after every epoch; stop after ``patience`` epochs without a better one, keep the best.

    ``score()`` measures the student on the held-out rows (higher is better); ``rows`` is how many there
    are (0: early stopping is off). ``key`` names the score in ``history`` (rounded to ``digits``) and
    ``best``; ``what`` and ``rows_note`` word the log lines.
    """

    def __init__(
        self,
        student: Any,
        score: Callable[[], float],
        rows: int,
        patience: int,
        log: Any,
        *,
        key: str,
        what: str,
        rows_note: str,
        digits: int,
    ) -> None:
        self.student, self.score, self.rows, self.patience, self.log = student, score, rows, patience, log
        self.key, self.what, self.rows_note, self.digits = key, what, rows_note, digits
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"score": float("-inf"), "epoch": 0, "state": None}

    def on_epoch_end(self, epoch: int, step: int) -> bool:
        if not self.rows:
            return False
        value = self.score()
        self.history.append({"epoch": epoch, "step": step, self.key: round(value, self.digits)})
        self.log(f"  epoch {epoch}: {self.what} {value:.4f} ({self.rows} {self.rows_note})")
        if value > self.best["score"]:
            self.best.update(score=value, epoch=epoch, state=copy.deepcopy(self.student.state_dict()))
            return False
        return epoch - self.best["epoch"] >= self.patience

    def finish(self, epochs: float, steps: int) -> None:
        """After the last step: keep the final weights unless an earlier epoch held out better."""
        if not self.rows:
            return
        value = self.score()
        self.history.append({"epoch": round(epochs, 2), "step": steps, self.key: round(value, self.digits)})
        self.log(f"  end of training: {self.what} {value:.4f}")
        if value < self.best["score"] and self.best["state"] is not None:
            self.student.load_state_dict(self.best["state"])
            self.log(f"  kept epoch {self.best['epoch']} (held-out {self.best['score']:.4f} > final {value:.4f})")
        else:
            self.best.update(score=value, epoch=round(epochs, 2))

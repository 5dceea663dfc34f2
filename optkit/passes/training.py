"""The one training loop, shared by fine-tuning, distillation and pruning recovery.

Written against HF Accelerate so the same code runs on this CPU, one GPU, or several processes
(CPU with gloo, GPUs with NCCL, on one machine or several) launched by ``optkit run --processes``,
torchrun or ``accelerate launch --multi_gpu``.

Data parallel, with the recipe's ``batch_size`` as the *global* batch: every rank draws the same
sequence of batches (same seeded sampler), takes every N-th row of each one, and scales its mean
loss by its share of the batch, so the gradients that DDP averages are the single-process batch's
gradient. The number of optimiser steps and the learning-rate schedule are therefore those of a
one-process run, with no accumulation to adjust, and the trained weights match a one-process run
with the same seed up to float rounding when the model has no dropout (each rank draws its own
dropout masks, so with dropout the two runs are equal in distribution, not number by number).
AdamW divides each update by the gradient's running RMS, which can amplify a rounding-level
difference in a near-zero gradient: measured on the tiny model at learning rate 3e-3, 4.5e-7 after
a 32-step fine-tune, up to 3.2e-5 for distillation and pruning recovery (README).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optkit.tasks.base import TrainingFeatures

from optkit import distributed
from optkit.testhooks import kill_point

__all__ = ["LossFn", "TrainResult", "planned_steps", "train_classifier"]

LossFn = Callable[[Any, dict[str, Any]], Any]  # (model, batch with "idx") -> scalar loss tensor


@dataclass
class TrainResult:
    steps: int
    epochs: float
    final_loss: float
    mean_loss_last_50: float
    seconds: float
    examples_seen: int
    losses: list[float]
    processes: int = 1  # ranks that trained together (the losses are those of the global batch)


def planned_steps(rows: int, batch_size: int, epochs: float, max_steps: int | None) -> int:
    """Optimiser steps a run will take; the progress bar and the LR schedule both use it."""
    steps = max(1, math.ceil(math.ceil(rows / batch_size) * epochs))
    return min(steps, max_steps) if max_steps is not None else steps


def train_classifier(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    epochs: float,
    learning_rate: float,
    batch_size: int,
    max_length: int,
    weight_decay: float,
    warmup_ratio: float,
    seed: int,
    max_steps: int | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    loss_fn: LossFn | None = None,
    on_epoch_end: Callable[[int, int], bool] | None = None,
    label_dtype: str = "long",
    features: TrainingFeatures | None = None,
) -> TrainResult:
    """Train ``model`` in place on (text, target) pairs with the model's own loss, unless ``loss_fn`` says otherwise.

    ``label_dtype`` is the torch dtype of the targets that loss expects: ``long`` class ids for
    cross-entropy, ``float`` for a regression head. ``loss_fn(model, batch)`` gets the batch with
    ``idx`` (row indices into ``texts``), so a distillation loss can look up what the teacher said
    about those rows; it must return the *mean* over the batch's rows (the shard's, on one rank).
    ``on_epoch_end(epoch, step)`` runs after every full pass over the data and stops training by
    returning True (early stopping; rank 0's answer counts for every rank).
    ``features`` are batches a structured task built itself (token tags, QA windows): then ``texts``
    and ``labels`` are unused and a row is a feature.

    Batches are padded to their longest member and built from rows of similar length
    (reviews are short, a few are long: padding every batch to its one long review would
    double the cost). The order is drawn from a generator seeded with ``seed``, so two runs
    with the same seed see the same batches.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    set_seed(seed)
    distributed.init_state()  # several processes: MULTI_CPU/gloo needs cpu=True, before Accelerator() looks
    # DDP as Accelerate sets it up: every parameter of the tasks' models takes part in each loss (a rank
    # without rows still runs one row, at weight 0), so no search for unused parameters is needed.
    accelerator = Accelerator()
    n = len(features) if features is not None else len(texts)
    world, rank = accelerator.num_processes, accelerator.process_index
    total_steps = planned_steps(n, batch_size, epochs, max_steps)

    if features is not None:
        loader = _feature_loader(features, batch_size, seed)
    else:
        loader = _length_bucketed_loader(tokenizer, texts, labels, max_length, batch_size, seed, label_dtype)
    optimizer, scheduler = _adamw_with_warmup(model, learning_rate, weight_decay, warmup_ratio, total_steps)
    # The loader and the schedule are not prepared: every rank slices the global batch itself
    # (``_shards``), and the schedule steps once per optimiser step whatever the world size.
    model, optimizer = accelerator.prepare(model, optimizer)
    if world > 1:
        set_seed(seed + 7919 * rank)  # own dropout masks per rank; the weights were synchronised by prepare

    start = time.perf_counter()
    step, losses, seen = _optimise(
        accelerator, model, optimizer, scheduler, loader, loss_fn or _model_loss, total_steps, on_step, on_epoch_end
    )
    # The caller's module object was trained in place (prepare wraps, it does not copy).
    model.eval()
    tail = losses[-50:]
    return TrainResult(
        steps=step,
        epochs=seen / n,
        final_loss=losses[-1],
        mean_loss_last_50=sum(tail) / len(tail),
        seconds=time.perf_counter() - start,
        examples_seen=seen,
        losses=losses,
        processes=world,
    )


def _optimise(
    accelerator: Any,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    loader: Any,
    loss_fn: LossFn,
    total_steps: int,
    on_step: Callable[[int, int, float], None] | None,
    on_epoch_end: Callable[[int, int], bool] | None,
) -> tuple[int, list[float], int]:
    """The optimiser steps, epoch after epoch, until ``total_steps`` or early stopping; (steps, losses,
    rows seen). A lost peer in a multi-process run becomes an error naming the step."""
    world, rank = accelerator.num_processes, accelerator.process_index
    model.train()
    step, losses, seen, epoch, stop = 0, [], 0, 0, False
    try:
        while step < total_steps and not stop:
            for batch, share, rows in _shards(loader, rank, world, accelerator.device):
                loss = loss_fn(model, batch)
                accelerator.backward(loss * (share * world) if world > 1 else loss)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                step += 1
                seen += rows
                losses.append(_global_loss(accelerator, loss, share, world))
                kill_point(rank, step)
                if on_step is not None:
                    on_step(step, total_steps, losses[-1])
                if step >= total_steps:
                    break
            else:
                epoch += 1
                if on_epoch_end is not None and step < total_steps:
                    stop = distributed.agree(on_epoch_end(epoch, step))
                    model.train()
    except RuntimeError as e:
        if world > 1 and _is_collective_failure(e):
            raise distributed.peer_lost(e, f"training step {step + 1} of {total_steps}") from None
        raise
    return step, losses, seen


def _shards(loader: Any, rank: int, world: int, device: Any) -> Iterator[tuple[dict[str, Any], float, int]]:
    """This rank's part of every global batch, on ``device``; its share of the batch's rows; the batch's rows.

    Rows ``rank, rank + world, ...`` of each batch (batches are sorted by length, so the shards
    are alike). A rank left without rows (a last batch smaller than the world) runs one row with
    share 0: it still joins the all-reduce, and adds nothing to the gradient. Shards keep the
    batch's padded width, so every rank computes on the shapes a one-process run would.
    """
    for batch in loader:
        rows = int(batch["idx"].shape[0])  # every task's batches carry idx; not all carry labels
        share = 1.0
        if world > 1:
            picks = list(range(rank, rows, world))
            share = len(picks) / rows
            batch = {k: v[picks or [0]] for k, v in batch.items()}
        yield {k: v.to(device) for k, v in batch.items()}, share, rows


def _global_loss(accelerator: Any, loss: Any, share: float, world: int) -> float:
    """The loss of the whole global batch (what a one-process run reports), the same on every rank."""
    if world == 1:
        return float(loss.detach())
    part = (loss.detach() * share).reshape(1)
    return float(accelerator.reduce(part, reduction="sum"))


def _is_collective_failure(exc: RuntimeError) -> bool:
    """gloo and NCCL report a lost peer as a RuntimeError (DistBackendError); so do few other things here."""
    import torch.distributed as dist

    backend_error = getattr(dist, "DistBackendError", None)
    text = str(exc).lower()
    return (backend_error is not None and isinstance(exc, backend_error)) or any(
        word in text for word in ("gloo", "nccl", "connection", "peer", "socket", "timed out")
    )


def _length_bucketed_loader(
    tokenizer: Any,
    texts: Sequence[str],
    labels: Sequence[Any],
    max_length: int,
    batch_size: int,
    seed: int,
    label_dtype: str,
) -> Any:
    """Batches of similar-length rows, padded to their longest, each with its labels and row indices."""
    import torch
    from torch.utils.data import DataLoader

    def collate(idx: list[int]) -> dict[str, Any]:
        enc = tokenizer(
            [texts[i] for i in idx], truncation=True, max_length=max_length, padding=True, return_tensors="pt"
        )
        enc["labels"] = torch.tensor([labels[i] for i in idx], dtype=getattr(torch, label_dtype))
        enc["idx"] = torch.tensor(idx, dtype=torch.long)
        return dict(enc)

    lengths = [len(ids) for ids in tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]]
    sampler = _LengthBucketBatches(lengths, batch_size, torch.Generator().manual_seed(seed))
    return DataLoader(list(range(len(texts))), batch_sampler=sampler, collate_fn=collate)


def _feature_loader(features: TrainingFeatures, batch_size: int, seed: int) -> Any:
    """A structured task's features in length-bucketed batches, collated by the task."""
    import torch
    from torch.utils.data import DataLoader

    sampler = _LengthBucketBatches(features.lengths, batch_size, torch.Generator().manual_seed(seed))
    return DataLoader(list(range(len(features))), batch_sampler=sampler, collate_fn=features.collate)


def _adamw_with_warmup(
    model: Any, learning_rate: float, weight_decay: float, warmup_ratio: float, total_steps: int
) -> tuple[Any, Any]:
    """AdamW without decay on biases and LayerNorm, and a linear schedule with warm-up."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {
            "params": [p for nme, p in model.named_parameters() if not nme.endswith(no_decay)],
            "weight_decay": weight_decay,
        },
        {"params": [p for nme, p in model.named_parameters() if nme.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=learning_rate)
    return optimizer, get_linear_schedule_with_warmup(optimizer, int(warmup_ratio * total_steps), total_steps)


def _model_loss(model: Any, batch: dict[str, Any]) -> Any:
    """The loss the model computes from its own head and the batch's labels (cross-entropy for a classifier)."""
    return model(**{k: v for k, v in batch.items() if k != "idx"}).loss


class _LengthBucketBatches:
    """Batches of similar-length rows, in random order: shuffle, cut into pools of 50 batches,
    sort each pool by length, slice it into batches, then shuffle the batches."""

    def __init__(self, lengths: list[int], batch_size: int, generator: Any, pool_batches: int = 50) -> None:
        self.lengths, self.batch_size, self.generator = lengths, batch_size, generator
        self.pool = batch_size * pool_batches

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self):  # type: ignore[no-untyped-def]
        import torch

        perm = torch.randperm(len(self.lengths), generator=self.generator).tolist()
        batches: list[list[int]] = []
        for start in range(0, len(perm), self.pool):
            pool = sorted(perm[start : start + self.pool], key=self.lengths.__getitem__)
            batches += [pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
        for i in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[i]

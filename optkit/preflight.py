"""Checks that need the model and the data, run by ``validate`` and before ``run`` builds anything.

The recipe schema catches what one file can show; these catch what only the model and the data
can: a head that does not fit, a label count that does not match, a calibration slice larger than
the split, and work the machine's memory cannot hold. All of them fail before the first step, so
a bad recipe costs seconds, not a fine-tune.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optkit.artifact import Artifact
from optkit.errors import ModelSourceError, RecipeError
from optkit.guards import check_memory, forward_bytes, weights_bytes
from optkit.passes.base import MemoryDemand, Plan
from optkit.passes.registry import list_passes
from optkit.sources.model import read_model_config
from optkit.tasks import get_task

if TYPE_CHECKING:
    from optkit.recipe import Recipe
    from optkit.sources.data import Splits

__all__ = ["check_chains", "check_inputs", "check_limits", "memory_demands"]


def check_inputs(recipe: Recipe, source: Artifact, splits: Splits, available_memory: int | None = None) -> None:
    """Every model-and-data check; raises the first problem found as an ``OptkitError``."""
    config = read_model_config(source.path)
    check_limits(recipe, source.path, config)
    head_pass = None if any(s.trains_head for s in recipe.baseline) else _head_pass()
    task = get_task(recipe.model.task)
    task.check_model(recipe, config, splits, head_pass)
    _check_gates_fit(recipe, list(task.metrics), task.has_classes)
    plan = Plan(config, weights_bytes(source.path), splits, recipe.data.max_length)
    check_chains(recipe, plan)
    check_memory(memory_demands(recipe, plan), available_memory)


def check_limits(recipe: Recipe, model_dir: Path, config: dict[str, Any]) -> None:
    """Input lengths within the model's positions and its tokenizer's ids within its vocabulary.

    Past either limit nothing fails until ONNX Runtime or torch indexes out of range, minutes in
    and deep in a traceback (an ``Add`` node in evaluation, for a latency shape too long).
    """
    limit, why = _length_limit(model_dir, config)
    if limit is not None:
        asked = [("data.max_length", recipe.data.max_length)]
        asked += [
            (f"{where}.max_length", s.max_length) for where, s in _steps(recipe) if getattr(s, "max_length", None)
        ]
        asked += [(f"evaluate.shapes[{i}].seq", shape.seq) for i, shape in enumerate(recipe.evaluate.shapes)]
        for field, length in asked:
            if length > limit:
                raise RecipeError(
                    f"{field}: {length} tokens is longer than the model takes ({why}); use at most {limit}"
                )
    vocab = config.get("vocab_size")
    top = _largest_token_id(model_dir)
    if isinstance(vocab, int) and top is not None and top >= vocab:
        raise ModelSourceError(
            f"model.source {recipe.model.source!r}: its tokenizer gives token ids up to {top} but the model's "
            f"vocabulary has {vocab} entries (config.json vocab_size); ids past it would fail in the embedding. "
            f"Use the tokenizer saved with this model, or resize the embeddings and save the model again"
        )


# Models that number positions after the padding id (RoBERTa's create_position_ids_from_input_ids).
_PADDING_OFFSET_MODELS = {"roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text", "xmod", "mpnet"}


def _length_limit(model_dir: Path, config: dict[str, Any]) -> tuple[int | None, str]:
    """The longest input the model accepts and the file that says so; ``(None, '')`` when nothing states one."""
    limits = []
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and config.get("position_embedding_type", "absolute") == "absolute":
        usable = positions
        if config.get("model_type") in _PADDING_OFFSET_MODELS:
            usable -= int(config.get("pad_token_id") or 0) + 1
        limits.append((usable, f"config.json max_position_embeddings is {positions}"))
    stated = _read_json(model_dir / "tokenizer_config.json").get("model_max_length")
    if isinstance(stated, int | float) and stated < 1e6:  # transformers writes 1e30 for 'no limit'
        limits.append((int(stated), f"tokenizer_config.json model_max_length is {int(stated)}"))
    if not limits:
        return None, ""
    return min(limits)


def _largest_token_id(model_dir: Path) -> int | None:
    """The highest id the saved tokenizer can emit, read from its files without loading it."""
    tok = _read_json(model_dir / "tokenizer.json")
    vocab = (tok.get("model") or {}).get("vocab")
    ids = []
    if isinstance(vocab, dict):
        ids = [v for v in vocab.values() if isinstance(v, int)]
    elif isinstance(vocab, list):  # Unigram: a list of [piece, score], ids by position
        ids = [len(vocab) - 1] if vocab else []
    elif (model_dir / "vocab.txt").is_file():
        with (model_dir / "vocab.txt").open(encoding="utf-8") as fh:
            ids = [sum(1 for _ in fh) - 1]
    ids += [t["id"] for t in tok.get("added_tokens") or [] if isinstance(t.get("id"), int)]
    return max(ids) if ids else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # absent or unreadable: loading the tokenizer later says what is wrong with it
    return data if isinstance(data, dict) else {}


def _check_gates_fit(recipe: Recipe, metrics: list[str], has_classes: bool) -> None:
    """An accuracy or class gate on a task that has no accuracy or classes would fail every run; say so now."""
    for name, gate in recipe.report.gates.items():
        if gate.max_class_drop is not None and not has_classes:
            raise RecipeError(
                f"report.gates.{name}.max_class_drop: model.task {recipe.model.task!r} reports no classes; "
                f"remove the gate, or use min_agreement"
            )
        if gate.max_slice_drop is not None and not recipe.evaluate.slices:
            raise RecipeError(
                f"report.gates.{name}.max_slice_drop: evaluate.slices is empty, so there is no slice to judge; "
                f"add slices (length, label or a data column) or remove the gate"
            )
        if gate.max_accuracy_drop is not None and "accuracy" not in metrics:
            raise RecipeError(
                f"report.gates.{name}.max_accuracy_drop: model.task {recipe.model.task!r} has no accuracy (its "
                f"metrics: {', '.join(metrics)}); use max_metric_drop (its primary metric, {metrics[0]}) "
                f"or min_agreement"
            )


def _head_pass() -> str:
    """The pass a message should suggest for training a head: the first registered one that does."""
    return next(kind for kind, spec in list_passes().items() if spec.config_cls.trains_head)


def check_chains(recipe: Recipe, plan: Plan) -> None:
    """Ask every step, in chain order, what it cannot do with the model it will receive.

    Each step hands on the config of the model it makes (a distilled student has fewer layers),
    so a layer index a later step names is checked against the model it will really act on.
    """
    for where, step in _steps(recipe):
        if step.tasks is not None and recipe.model.task not in step.tasks:
            raise RecipeError(
                f"{where}: {step.kind} works on {', '.join(sorted(step.tasks))} models, and model.task is "
                f"{recipe.model.task!r}; remove the step or use another pass"
            )
    after_baseline: dict[str, Any] | None = plan.model_config
    for i, step in enumerate(recipe.baseline):
        after_baseline = step.check(f"baseline[{i}].{step.kind}", after_baseline, plan)
    for name, chain in recipe.variants.items():
        model = after_baseline
        for i, step in enumerate(chain):
            model = step.check(f"variants.{name}[{i}].{step.kind}", model, plan)


def memory_demands(recipe: Recipe, plan: Plan) -> list[MemoryDemand]:
    """Every memory-heavy thing the recipe asks for: each step's own, then evaluation's."""
    demands = [d for where, step in _steps(recipe) for d in step.memory_demands(where, plan)]
    dims, weights, max_length = plan.dims, plan.weights_bytes, plan.max_length
    bs = recipe.evaluate.batch_size
    demands.append(
        MemoryDemand(
            "evaluate.batch_size",
            f"the accuracy pass over {len(plan.splits.eval)} eval rows at batch {bs} x {max_length} tokens",
            weights + forward_bytes(dims, bs, max_length),
        )
    )
    for i, shape in enumerate(recipe.evaluate.shapes):
        demands.append(
            MemoryDemand(
                f"evaluate.shapes[{i}]",
                f"a batch {shape.batch} x seq {shape.seq} forward pass",
                weights + forward_bytes(dims, shape.batch, shape.seq),
            )
        )
    return demands


def _steps(recipe: Recipe) -> list[tuple[str, Any]]:
    """Every distinct step with a recipe path, for messages: baseline[i].kind, variants.X[i].kind."""
    out = [(f"baseline[{i}].{s.kind}", s) for i, s in enumerate(recipe.baseline)]
    for name, chain in recipe.variants.items():
        out += [(f"variants.{name}[{i}].{s.kind}", s) for i, s in enumerate(chain)]
    return out

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

from optkit.errors import DataError, ModelSourceError, PassError, RecipeError
from optkit.guards import (
    ModelDims,
    calibration_bytes,
    check_memory,
    forward_bytes,
    training_bytes,
    weights_bytes,
)
from optkit.passes.base import Artifact
from optkit.sources.model import read_model_config

if TYPE_CHECKING:
    from optkit.recipe import Recipe
    from optkit.sources.data import Splits

__all__ = ["check_head", "check_inputs", "check_limits", "check_surgery", "memory_demands"]


def check_inputs(recipe: Recipe, source: Artifact, splits: Splits, available_memory: int | None = None) -> None:
    """Every model-and-data check; raises the first problem found as an ``OptkitError``."""
    config = read_model_config(source.path)
    check_limits(recipe, source.path, config)
    check_head(recipe, config)
    if recipe.model.num_labels is not None and recipe.model.num_labels != len(splits.label_names):
        raise DataError(
            f"model.num_labels is {recipe.model.num_labels} but data.labels gives {len(splits.label_names)} "
            f"classes {splits.label_names}; make them equal"
        )
    _check_head_size(recipe, config, splits)
    _check_calibration_samples(recipe, splits)
    check_surgery(recipe, config)
    check_memory(memory_demands(recipe, config, splits, weights_bytes(source.path)), available_memory)


def check_head(recipe: Recipe, config: dict[str, Any]) -> None:
    """Without a fine-tune in the baseline, the source must already carry a matching classifier head."""
    if any(s.kind == "finetune" for s in recipe.baseline):
        return
    archs = config.get("architectures") or []
    if not any(a.endswith("ForSequenceClassification") for a in archs):
        raise PassError(
            f"model.source {recipe.model.source!r} has no sequence-classification head (architectures: {archs}) "
            f"and the baseline has no finetune step; add '- finetune: {{}}' to the baseline"
        )
    id2label = config.get("id2label") or {}
    names = [str(id2label[k]) for k in sorted(id2label, key=int)]
    wanted = recipe.data.label_names(recipe.data.label_values) if recipe.data.label_values else None
    generic = all(n == f"LABEL_{i}" for i, n in enumerate(names))  # a head nobody named: any names fit
    if wanted and len(names) == len(wanted) and not generic and names != wanted:
        raise PassError(
            f"data.labels {list(wanted)} do not match the model head's labels {names} (id order); "
            f"reorder data.labels to {names}, or fine-tune the head (add '- finetune: {{}}' to the baseline)"
        )
    n = len(id2label) or config.get("num_labels")
    if recipe.model.num_labels is not None and n and n != recipe.model.num_labels:
        raise PassError(
            f"model.num_labels is {recipe.model.num_labels} but the model's head has {n} labels; "
            f"fine-tune it (add a finetune step) or set model.num_labels to {n}"
        )


def check_limits(recipe: Recipe, model_dir: Path, config: dict[str, Any]) -> None:
    """Input lengths within the model's positions and its tokenizer's ids within its vocabulary.

    Past either limit nothing fails until ONNX Runtime or torch indexes out of range, minutes in
    and deep in a traceback (an ``Add`` node in evaluation, for a latency shape too long).
    """
    limit, why = _length_limit(model_dir, config)
    if limit is not None:
        asked = [("data.max_length", recipe.data.max_length)]
        asked += [(f"{where}.max_length", step.max_length) for where, step in _steps(recipe) if _length(step)]
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


def _length(step: Any) -> int | None:
    return getattr(step, "max_length", None)


def _check_head_size(recipe: Recipe, config: dict[str, Any], splits: Splits) -> None:
    """A head used as it is (no fine-tune) must have one output per class in the data."""
    if any(s.kind == "finetune" for s in recipe.baseline):
        return
    n = len(config.get("id2label") or {}) or config.get("num_labels")
    if n and n != len(splits.label_names):
        raise DataError(
            f"data.labels: the data has {len(splits.label_names)} classes {splits.label_names} but the model's "
            f"head has {n} outputs and the baseline has no finetune step; set data.labels to {n} classes, or "
            f"add '- finetune: {{}}' to the baseline to train a new head"
        )


def check_surgery(recipe: Recipe, config: dict[str, Any]) -> None:
    """Layer indices, widths and head counts that prune and distill name must exist in the model they
    act on; walked through each chain so a typo fails now, not after the fine-tune."""
    for name in ["baseline", *recipe.variants]:
        layers = int(config.get("num_hidden_layers") or 0)
        ffn = int(config.get("intermediate_size") or 0)
        heads = int(config.get("num_attention_heads") or 0)
        if not layers:
            return  # not a BERT-style config: the passes themselves say what they support
        for i, step in enumerate(recipe.chain(name)):
            where = f"{'baseline' if i < len(recipe.baseline) else f'variants.{name}'}[{i}]"
            student = getattr(step, "student", None)
            if step.kind == "distill" and student is not None and student.model is None:
                fields = {
                    "layers": (max(student.layers or [0]), layers - 1, "layer index"),
                    "intermediate_size": (student.intermediate_size or 0, ffn, "FFN width"),
                    "num_attention_heads": (student.num_attention_heads or 0, heads, "heads per layer"),
                }
                for field, (asked, limit, what) in fields.items():
                    if asked > limit:
                        raise RecipeError(
                            f"{where}.distill.student.{field}: {what} {asked} does not exist in the teacher "
                            f"(it has {layers} layers, FFN {ffn}, {heads} heads); use at most {limit}"
                        )
                layers = len(student.layers) if student.layers else layers
                ffn, heads = student.intermediate_size or ffn, student.num_attention_heads or heads
            elif step.kind == "distill":
                return  # another model from here on: its shapes are only known once it is loaded
            elif step.kind == "prune" and step.method == "structured" and step.drop_layers:
                bad = [x for x in step.drop_layers if not 0 <= x < layers]
                if bad or len(set(step.drop_layers)) >= layers:
                    raise RecipeError(
                        f"{where}.prune.drop_layers: {list(step.drop_layers)} must name distinct layers in "
                        f"0..{layers - 1} and leave at least one"
                    )
                layers -= len(set(step.drop_layers))


def _check_calibration_samples(recipe: Recipe, splits: Splits) -> None:
    for where, step in _steps(recipe):
        asked = getattr(step, "calibration_samples", None)
        if step.kind == "quantize" and asked is not None and asked > len(splits.calibration):
            raise RecipeError(
                f"{where}.calibration_samples: {asked} rows asked, but the calibration split has "
                f"{len(splits.calibration)} (data.splits.calibration); lower it or raise data.splits.calibration"
            )


def memory_demands(recipe: Recipe, config: dict[str, Any], splits: Splits, weights: int) -> list[tuple[str, str, int]]:
    """(field, what, bytes) for every memory-heavy thing the recipe asks for."""
    dims = ModelDims.from_config(config)
    max_length = recipe.data.max_length
    demands = []
    for where, step in _steps(recipe):
        if step.kind == "finetune":
            seq = getattr(step, "max_length", None) or max_length
            need = training_bytes(dims, step.batch_size, seq, weights)
            demands.append((f"{where}.batch_size", f"training at batch {step.batch_size} x {seq} tokens", need))
        if step.kind == "distill":
            seq = step.max_length or max_length
            bs = step.batch_size
            # The teacher stays loaded beside the student; with hidden/attention losses it also runs
            # forward every step. The student is bounded by the teacher's size (a cut of it).
            need = weights + training_bytes(dims, bs, seq, weights)
            if step.hidden_weight or step.attention_weight:
                need += forward_bytes(dims, bs, seq) + dims.layers * 4 * bs * seq * (dims.hidden + dims.heads * seq)
            demands.append((f"{where}.batch_size", f"distillation at batch {bs} x {seq} tokens", need))
        if step.kind == "prune" and (
            step.recovery_epochs or (step.method, step.importance) == ("structured", "gradient")
        ):
            seq = step.max_length or max_length
            bs = step.recovery_batch_size
            need = training_bytes(dims, bs, seq, weights)  # gradient importance and recovery both run backward
            demands.append(
                (f"{where}.recovery_batch_size", f"pruning's backward passes at batch {bs} x {seq} tokens", need)
            )
        if step.kind == "quantize" and getattr(step, "mode", None) == "static":
            texts = splits.calibration.texts[: step.calibration_samples or len(splits.calibration)]
            need = 2 * weights + calibration_bytes(dims, texts, max_length, step.calibration_batch_size)
            demands.append(
                (
                    f"{where}.calibration_samples",
                    f"static calibration over {len(texts)} rows (ONNX Runtime keeps every batch's activations)",
                    need,
                )
            )
    bs = recipe.evaluate.batch_size
    demands.append(
        (
            "evaluate.batch_size",
            f"the accuracy pass over {len(splits.eval)} eval rows at batch {bs} x {max_length} tokens",
            weights + forward_bytes(dims, bs, max_length),
        )
    )
    for i, shape in enumerate(recipe.evaluate.shapes):
        demands.append(
            (
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

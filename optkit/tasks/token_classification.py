"""``token-classification``: a tag per word (named entities, chunks), read from CoNLL files or JSONL.

Rows are sentences: a list of words (``data.text``) and one tag per word (``data.label``). Words are
split into sub-word tokens by the model's tokenizer; only a word's first sub-token carries its tag in
training (the rest get -100, which the loss ignores), and a word's prediction is the argmax at its
first sub-token. Words cut off by ``data.max_length`` are predicted ``O`` (id -1 below), so a
truncated sentence costs recall honestly instead of vanishing from the score. Quality is entity-level
F1 as seqeval defines it (``optkit.tasks.seqeval``); agreement with the baseline is per word.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optkit.errors import DataError, EvaluationError
from optkit.tasks import register_task
from optkit.tasks.base import Rows, Targets, Task, TrainingFeatures
from optkit.tasks.hf import (
    head_names,
    label_maps,
    load_error,
    need_fast_tokenizer,
    pad_rows,
    quiet_transformers,
    require_head,
)
from optkit.tasks.seqeval import entities, entity_counts, prf

if TYPE_CHECKING:
    from optkit.recipe import DataSpec, Recipe
    from optkit.sources.data import Splits

__all__ = ["TokenClassification", "align_labels"]

NOT_PREDICTED = -1  # a word past max_length: scored as "O"
IGNORED = -100  # the label of special tokens and of a word's later sub-tokens: the loss skips them
_PREFIXES = ("B-", "I-", "E-", "S-")


@register_task
class TokenClassification(Task):
    name = "token-classification"
    metrics = {  # noqa: RUF012 - a class-level table, never mutated
        "entity_f1": True,
        "entity_precision": True,
        "entity_recall": True,
        "token_accuracy": True,
    }
    export_name = "token-classification"
    auto_model = "AutoModelForTokenClassification"
    structured = True

    def read_rows(self, frame: Any, spec: DataSpec, where: str) -> Rows:
        for col, role in ((spec.text, "text"), (spec.label, "label")):
            if col not in frame.columns:
                raise DataError(
                    f"data.{role}: column {col!r} is not in {where} (columns: {', '.join(map(str, frame.columns))}); "
                    f"set data.{role} to the column holding each sentence's {'words' if role == 'text' else 'tags'}"
                )
        lines = frame["line"].tolist() if "line" in frame.columns else None
        sentences: list[tuple[list[str], list[str]]] = []
        for i, (tokens, tags) in enumerate(zip(frame[spec.text].tolist(), frame[spec.label].tolist(), strict=True)):
            at = f"line {lines[i]}" if lines else f"row {i + 1}"
            words, labels = _as_list(tokens, spec.text, where, at), _as_list(tags, spec.label, where, at)
            if len(words) != len(labels):
                raise DataError(
                    f"data.label: {where} {at}: {len(words)} words in {spec.text!r} but {len(labels)} tags in "
                    f"{spec.label!r}; every word needs exactly one tag"
                )
            bad = next((t for t in labels if t != "O" and not t.startswith(_PREFIXES)), None)
            if bad is not None:
                raise DataError(
                    f"data.label: {where} {at}: tag {bad!r} is not 'O' or B-/I-/E-/S-TYPE; entity F1 needs IOB-style "
                    f"tags (IOB1, IOB2, IOE or IOBES)"
                )
            if words:
                sentences.append((words, labels))
        if not sentences:
            raise DataError(f"data.source: {where} has no sentences with words and tags")
        names = _tag_names(sentences, spec, where)
        index = {v: i for i, v in enumerate(spec.label_values or names)}  # file tags to ids (a mapping renames them)
        values = [[index[t] for t in tags] for _, tags in sentences]
        types: dict[str, int] = {}
        for _, tags in sentences:
            for etype, _, _ in entities(tags):
                types[etype] = types.get(etype, 0) + 1
        summary = {
            "sentences": len(sentences),
            "words": sum(len(w) for w, _ in sentences),
            "entity_counts": dict(sorted(types.items())),
            "summary": f"{len(sentences)} sentences; entities: "
            + ", ".join(f"{k} {v}" for k, v in sorted(types.items())),
        }
        return Rows(
            texts=[" ".join(words) for words, _ in sentences],
            items=[words for words, _ in sentences],
            targets=Targets(
                values=values, keep=None, names=names, strata=None, summary=summary, identity={"tags": names}
            ),
        )

    def check_model(self, recipe: Recipe, config: dict[str, Any], splits: Splits, head_pass: str | None) -> None:
        if head_pass is None:
            return
        require_head(recipe, config, "ForTokenClassification", "token-classification", head_pass)
        head = head_names(config)
        if head != list(splits.label_names):
            raise DataError(
                f"data.labels: the data's tags {splits.label_names} differ from the model head's {head} (id order); "
                f"set data.labels to {head}, or add '- {head_pass}: {{}}' to the baseline to train a new head"
            )

    def load_model(
        self,
        path: Path,
        names: Sequence[str],
        *,
        trust_remote_code: bool,
        for_training: bool,
        where: str,
        log: Callable[[str], None] = print,
    ) -> tuple[Any, Any]:
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        try:
            if for_training:
                with quiet_transformers():  # "newly initialized" is expected before fine-tuning
                    model = AutoModelForTokenClassification.from_pretrained(
                        path, **label_maps(names), ignore_mismatched_sizes=True, trust_remote_code=trust_remote_code
                    )
            else:
                model = AutoModelForTokenClassification.from_pretrained(path, trust_remote_code=trust_remote_code)
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        except (OSError, ValueError, KeyError) as e:
            raise load_error(for_training)(f"{where}: could not load {str(path)!r} as a token classifier: {e}") from e
        need_fast_tokenizer(
            tokenizer, where, "token classification needs a fast (Rust) tokenizer to map sub-tokens to words"
        )
        return (model if for_training else model.eval()), tokenizer

    def encode(
        self, tokenizer: Any, items: Sequence[Any], max_length: int, *, padding: bool | str = True
    ) -> dict[str, Any]:
        enc = tokenizer(
            [list(w) for w in items],
            is_split_into_words=True,
            truncation=True,
            max_length=max_length,
            padding=padding,
            return_tensors="np",
        )
        return dict(enc)

    def training_features(
        self, tokenizer: Any, items: Sequence[Any], targets: Sequence[Any], max_length: int
    ) -> TrainingFeatures:
        import torch

        enc = tokenizer([list(w) for w in items], is_split_into_words=True, truncation=True, max_length=max_length)
        labels = [align_labels(enc.word_ids(i), targets[i]) for i in range(len(items))]
        pad = tokenizer.pad_token_id or 0

        def collate(idx: list[int]) -> dict[str, Any]:
            batch = pad_rows(enc, list(enc), idx, pad)
            width = batch["input_ids"].shape[1]
            batch["labels"] = torch.tensor([labels[i] + [IGNORED] * (width - len(labels[i])) for i in idx])
            return batch

        return TrainingFeatures([len(ids) for ids in enc["input_ids"]], collate)

    def infer(
        self,
        forward: Callable[[dict[str, Any]], list[Any]],
        tokenizer: Any,
        items: Sequence[Any],
        max_length: int,
        batch_size: int,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Per sentence: the logits at each word's first sub-token (words x tags) and the word count."""
        import numpy as np

        out: list[dict[str, Any]] = []
        for start in range(0, len(items), batch_size):
            chunk = [list(w) for w in items[start : start + batch_size]]
            enc = tokenizer(
                chunk,
                is_split_into_words=True,
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="np",
            )
            logits = np.asarray(forward(dict(enc))[0], dtype=np.float32)
            for row, words in enumerate(chunk):
                firsts = _first_subtokens(enc.word_ids(row))
                out.append({"logits": logits[row, firsts], "words": len(words), "tokens": words})
            if on_batch:
                on_batch(len(chunk))
        return out

    def output_diff(self, reference: Any, candidate: Any) -> float:
        import numpy as np

        diffs = [float(np.abs(a["logits"] - b["logits"]).max()) for a, b in zip(reference, candidate, strict=True)]
        return max((d for d in diffs if d == d), default=0.0)

    def check_outputs(self, outputs: Any, names: Sequence[str], variant: str) -> None:
        width = next((o["logits"].shape[-1] for o in outputs if o["logits"].size), len(names))
        if width != len(names):
            raise EvaluationError(
                f"{variant}: the model outputs {width} tags per token but the data has {len(names)} tags "
                f"{list(names)}; set data.labels or fine-tune the head"
            )

    def predictions(self, outputs: Any) -> list[list[int]]:
        return [
            [int(i) for i in o["logits"].argmax(-1)] + [NOT_PREDICTED] * (o["words"] - len(o["logits"]))
            for o in outputs
        ]

    def readable(self, outputs: Any, names: Sequence[str]) -> list[dict[str, Any]]:
        """Each word's tag, and the entities with their words: 'Ada Lovelace/PER, London/LOC'."""
        out = []
        for o, pred in zip(outputs, self.predictions(outputs), strict=True):
            tags, words = _tags(pred, names), o.get("tokens") or []
            found = [
                {"type": t, "start": a, "end": b, "text": " ".join(words[a : b + 1])} for t, a, b in entities(tags)
            ]
            shown = ", ".join(f"{e['text']}/{e['type']}" for e in found) or "(no entities)"
            out.append({"prediction": shown, "tags": tags, "entities": found})
        return out

    def item_from_text(self, text: str, where: str) -> list[str]:
        return text.split()

    def scores(self, predictions: Sequence[Any], targets: Sequence[Any], names: Sequence[str]) -> dict[str, float]:
        correct = predicted = gold = 0
        right = words = 0
        for pred, true in zip(predictions, targets, strict=True):
            p_tags, t_tags = _tags(pred, names), _tags(true, names)
            for c, p, g in entity_counts(t_tags, p_tags).values():
                correct, predicted, gold = correct + c, predicted + p, gold + g
            right += sum(a == b for a, b in zip(p_tags, t_tags, strict=True))
            words += len(t_tags)
        precision, recall, f1 = prf(correct, predicted, gold)
        return {
            "entity_f1": f1,
            "entity_precision": precision,
            "entity_recall": recall,
            "token_accuracy": right / words if words else 0.0,
        }

    def agreement(self, predictions: Sequence[Any], reference: Sequence[Any]) -> float:
        """Share of words (not sentences) tagged alike: one changed tag in a long sentence is one word."""
        same = total = 0
        for a, b in zip(predictions, reference, strict=True):
            same += sum(x == y for x, y in zip(a, b, strict=True))
            total += len(a)
        return same / total if total else 1.0

    def prediction_label(self, prediction: Any, names: Sequence[str]) -> str:
        """A sentence's entities as 'TYPE[first-last]' word spans; 'no entities' when there are none."""
        if not isinstance(prediction, list):
            return str(prediction)
        found = entities(_tags(prediction, names))
        return ", ".join(f"{t}[{a}]" if a == b else f"{t}[{a}-{b}]" for t, a, b in found) or "no entities"

    def class_metrics(
        self, predictions: Sequence[Any], targets: Sequence[Any], names: Sequence[str], weights: Any = None
    ) -> dict[str, dict[str, Any]]:
        """Per entity type: precision, recall, F1 and gold support; with bootstrap ``weights`` (resamples x
        sentences), arrays over the resamples, from one product of the weights with per-sentence counts."""
        import numpy as np

        per_row = [entity_counts(_tags(t, names), _tags(p, names)) for p, t in zip(predictions, targets, strict=True)]
        types = sorted({t for counts in per_row for t in counts})
        counts = np.zeros((len(per_row), 3 * len(types)))
        for r, row in enumerate(per_row):
            for k, t in enumerate(types):
                counts[r, 3 * k : 3 * k + 3] = row.get(t, (0, 0, 0))
        w = np.ones((1, len(per_row))) if weights is None else np.asarray(weights)
        totals = w @ counts
        out: dict[str, dict[str, Any]] = {}
        for k, t in enumerate(types):
            c, p, g = totals[:, 3 * k], totals[:, 3 * k + 1], totals[:, 3 * k + 2]
            with np.errstate(divide="ignore", invalid="ignore"):
                precision = np.where(p > 0, c / p, 0.0)
                recall = np.where(g > 0, c / g, np.nan)  # a type absent from a resample has no recall there
                f1 = np.where(g > 0, 2 * c / (p + g), np.nan)
            values: dict[str, Any] = {"precision": precision, "recall": recall, "f1": f1, "support": g}
            if weights is None:
                values = {m: float(v[0]) for m, v in values.items()}
                values["support"] = int(values["support"])
            out[t] = values
        return out


def align_labels(word_ids: Sequence[int | None], tags: Sequence[int]) -> list[int]:
    """One training label per sub-token: a word's tag on its first sub-token, -100 elsewhere."""
    out, previous = [], None
    for w in word_ids:
        out.append(IGNORED if w is None or w == previous else int(tags[w]))
        previous = w
    return out


def _first_subtokens(word_ids: Sequence[int | None]) -> list[int]:
    """Token positions of each word's first sub-token, in word order (words cut by truncation are absent)."""
    out, previous = [], None
    for pos, w in enumerate(word_ids):
        if w is not None and w != previous:
            out.append(pos)
        previous = w
    return out


def _tags(ids: Sequence[int], names: Sequence[str]) -> list[str]:
    return [names[i] if 0 <= i < len(names) else "O" for i in ids]


def _as_list(value: Any, column: str, where: str, at: str) -> list[str]:
    """A cell holding a list of strings (JSONL lists, parquet arrays); anything else is a DataError."""
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        raise DataError(
            f"data.source: {where} {at}: column {column!r} holds {type(value).__name__} {str(value)[:40]!r}, not a "
            f"list; each row needs a list of words and a list of tags of equal length"
        )
    return [str(v) for v in value]


def _tag_names(sentences: list[tuple[list[str], list[str]]], spec: DataSpec, where: str) -> list[str]:
    """Tags in id order: ``data.labels`` when given (every tag must be in it), else 'O' then the rest sorted."""
    seen = sorted({t for _, tags in sentences for t in tags})
    if spec.label_values:
        wanted = spec.label_names(spec.label_values)
        unknown = [t for t in seen if t not in set(spec.label_values)]
        if unknown:
            raise DataError(
                f"data.labels: tags {unknown[:5]} occur in {where} but are not in data.labels; add them, or leave "
                f"data.labels out to take every tag"
            )
        return list(wanted)
    return ["O", *[t for t in seen if t != "O"]]

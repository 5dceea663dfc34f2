"""``question-answering`` (extractive): find the answer to a question as a span of its context.

Rows hold a question (``data.text``), a context (``data.context``) and gold answers (``data.label``)
with their character offsets, SQuAD-style: ``{"text": [...], "answer_start": [...]}`` or a list of
``{"text", "answer_start"}``. A context longer than ``data.max_length`` is cut into overlapping
windows (``stride`` tokens shared between neighbours), as Hugging Face's QA examples do; training
labels each window with the answer's token span, or the [CLS] token when the answer is not inside it.
An answer is post-processed from every window's start and end logits: the ``N_BEST`` best starts and
ends inside the context, end not before start and at most ``MAX_ANSWER_TOKENS`` long, best sum of
logits over all windows; its text is cut from the context by the tokenizer's offset mapping.
Exact match and F1 are SQuAD's (``optkit.tasks.squad``); F1 is primary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optkit.errors import DataError, EvaluationError
from optkit.tasks import register_task
from optkit.tasks.base import Rows, Targets, Task, TrainingFeatures
from optkit.tasks.hf import load_error, need_fast_tokenizer, pad_rows, quiet_transformers, require_head
from optkit.tasks.squad import exact_match, f1, normalize_answer

if TYPE_CHECKING:
    from optkit.recipe import DataSpec, Recipe
    from optkit.sources.data import Splits

__all__ = ["N_BEST", "QuestionAnswering", "best_span", "read_answers", "stride_for"]

N_BEST = 20  # start and end candidates per window, as in Hugging Face's run_qa.py
MAX_ANSWER_TOKENS = 30  # the longest answer considered, in tokens (run_qa.py's default)
_MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def stride_for(max_length: int) -> int:
    """Tokens shared by neighbouring windows: a third of the window (128 of 384 in run_qa.py)."""
    return max(1, max_length // 3)


@register_task
class QuestionAnswering(Task):
    name = "question-answering"
    metrics = {"f1": True, "exact_match": True}  # noqa: RUF012 - a class-level table, never mutated
    export_name = "question-answering"
    auto_model = "AutoModelForQuestionAnswering"
    structured = True
    output_names = ("start_logits", "end_logits")

    def read_rows(self, frame: Any, spec: DataSpec, where: str) -> Rows:
        columns = (
            (spec.text, "text", "question"),
            (spec.context, "context", "context"),
            (spec.label, "label", "answers"),
        )
        for col, role, what in columns:
            if col not in frame.columns:
                raise DataError(
                    f"data.{role}: column {col!r} is not in {where} (columns: {', '.join(map(str, frame.columns))}); "
                    f"set data.{role} to the column holding the {what}"
                )
        texts, items, values = [], [], []
        for i, (q, c, a) in enumerate(
            zip(frame[spec.text].tolist(), frame[spec.context].tolist(), frame[spec.label].tolist(), strict=True)
        ):
            at = f"{where} row {i + 1}"
            for value, col in ((q, spec.text), (c, spec.context)):
                if not isinstance(value, str) or not value.strip():
                    raise DataError(
                        f"data.source: {at}: column {col!r} must be non-empty text, got {str(value)[:40]!r}"
                    )
            answers = read_answers(a, c, f"{at}, column {spec.label!r}")
            texts.append(q)
            items.append({"question": q, "context": c})
            values.append(answers)
        if not items:
            raise DataError(f"data.source: {where} has no rows")
        summary = {
            "questions": len(items),
            "contexts": len({it["context"] for it in items}),
            "summary": f"{len(items)} questions over {len({it['context'] for it in items})} contexts",
        }
        identity = {"context": spec.context, "windows": "stride=max_length//3"}
        return Rows(texts, items, Targets(values, None, [], None, summary, identity))

    def check_model(self, recipe: Recipe, config: dict[str, Any], splits: Splits, head_pass: str | None) -> None:
        if head_pass is not None:
            require_head(recipe, config, "ForQuestionAnswering", "question-answering", head_pass)

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
        from transformers import AutoModelForQuestionAnswering, AutoTokenizer

        # "newly initialized qa_outputs" is expected before fine-tuning
        try:
            with quiet_transformers(for_training):
                model = AutoModelForQuestionAnswering.from_pretrained(path, trust_remote_code=trust_remote_code)
                tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        except (OSError, ValueError, KeyError) as e:
            raise load_error(for_training)(
                f"{where}: could not load {str(path)!r} as an extractive QA model: {e}"
            ) from e
        need_fast_tokenizer(tokenizer, where, "question answering needs a fast (Rust) tokenizer for offset mapping")
        return (model if for_training else model.eval()), tokenizer

    def encode(
        self, tokenizer: Any, items: Sequence[Any], max_length: int, *, padding: bool | str = True
    ) -> dict[str, Any]:
        """Question and context as a pair (token type ids 0 then 1), first window only: calibration and
        latency shapes need representative tensors, not every window."""
        enc = tokenizer(
            [it["question"] for it in items],
            [it["context"] for it in items],
            truncation=True,
            max_length=max_length,
            padding=padding,
            return_tensors="np",
        )
        return dict(enc)

    def _windows(self, tokenizer: Any, items: Sequence[Any], max_length: int, **kwargs: Any) -> Any:
        """Every (question, context-window) pair: contexts overflow into windows sharing ``stride`` tokens.

        The stride is checked against the room a question leaves first: the tokenizer aborts the
        process (a Rust panic, not an exception) when the stride does not fit beside the longest question.
        """
        questions = [it["question"] for it in items]
        longest = max((len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]), default=0)
        room = max_length - longest - tokenizer.num_special_tokens_to_add(pair=True)
        if room < 2:
            raise DataError(
                f"data.max_length: {max_length} tokens leave no room for the context beside a question of "
                f"{longest} tokens; raise data.max_length"
            )
        return tokenizer(
            questions,
            [it["context"] for it in items],
            truncation="only_second",
            max_length=max_length,
            stride=min(stride_for(max_length), room - 1),
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            **kwargs,
        )

    def training_features(
        self, tokenizer: Any, items: Sequence[Any], targets: Sequence[Any], max_length: int
    ) -> TrainingFeatures:
        import torch

        enc = self._windows(tokenizer, items, max_length)
        starts, ends = [], []
        for f, ex in enumerate(enc["overflow_to_sample_mapping"]):
            answer = targets[ex]
            s, e = _token_span(
                enc.sequence_ids(f),
                enc["offset_mapping"][f],
                answer["answer_start"][0],
                answer["answer_start"][0] + len(answer["text"][0]),
            )
            starts.append(s)
            ends.append(e)
        keys = [k for k in _MODEL_INPUTS if k in enc]
        pad = tokenizer.pad_token_id or 0

        def collate(idx: list[int]) -> dict[str, Any]:
            batch = pad_rows(enc, keys, idx, pad)
            batch["start_positions"] = torch.tensor([starts[i] for i in idx])
            batch["end_positions"] = torch.tensor([ends[i] for i in idx])
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
        """Per question: its best answer span (text, score) and every window's start/end logits over its
        real tokens (for export validation)."""
        import numpy as np

        out: list[dict[str, Any]] = []
        for first in range(0, len(items), batch_size):
            chunk = items[first : first + batch_size]
            enc = self._windows(tokenizer, chunk, max_length, padding=True, return_tensors="np")
            start, end = (
                np.asarray(x, dtype=np.float32) for x in forward({k: enc[k] for k in _MODEL_INPUTS if k in enc})[:2]
            )
            windows: list[list[int]] = [[] for _ in chunk]
            for f, ex in enumerate(enc["overflow_to_sample_mapping"]):
                windows[int(ex)].append(f)
            for ex, feats in enumerate(windows):
                best = ("", float("-inf"))
                logits = []
                for f in feats:
                    n = int(enc["attention_mask"][f].sum())
                    logits.append(np.concatenate([start[f, :n], end[f, :n]]))
                    seq_ids = enc.sequence_ids(f)
                    span = best_span(start[f], end[f], [s == 1 for s in seq_ids])
                    if span is not None and span[2] > best[1]:
                        offsets = enc["offset_mapping"][f]
                        best = (chunk[ex]["context"][int(offsets[span[0]][0]) : int(offsets[span[1]][1])], span[2])
                out.append({"answer": best[0], "score": best[1], "logits": np.concatenate(logits)})
            if on_batch:
                on_batch(len(chunk))
        return out

    def output_diff(self, reference: Any, candidate: Any) -> float:
        import numpy as np

        return max(
            (float(np.abs(a["logits"] - b["logits"]).max()) for a, b in zip(reference, candidate, strict=True)),
            default=0.0,
        )

    def check_outputs(self, outputs: Any, names: Sequence[str], variant: str) -> None:
        if any(not isinstance(o.get("answer"), str) for o in outputs):
            raise EvaluationError(f"{variant}: the model gave no answer span for some questions")

    def predictions(self, outputs: Any) -> list[str]:
        return [o["answer"] for o in outputs]

    def readable(self, outputs: Any, names: Sequence[str]) -> list[dict[str, Any]]:
        return [{"prediction": o["answer"], "score": round(float(o["score"]), 4)} for o in outputs]

    def item_from_text(self, text: str, where: str) -> dict[str, str]:
        """A JSON object with 'question' and 'context', or 'QUESTION<TAB>CONTEXT'."""
        import json

        if text.lstrip().startswith("{"):
            try:
                row = json.loads(text)
            except ValueError as e:
                raise DataError(f"{where}: not a JSON object ({e}); give {{'question': ..., 'context': ...}}") from None
            question, context = row.get("question"), row.get("context")
        else:
            question, _, context = text.partition("\t")
        if not isinstance(question, str) or not isinstance(context, str) or not question.strip() or not context.strip():
            raise DataError(
                f"{where}: a question-answering input is a JSON object with 'question' and 'context', or the "
                f"question and the context separated by a tab"
            )
        return {"question": question, "context": context}

    def scores(self, predictions: Sequence[Any], targets: Sequence[Any], names: Sequence[str]) -> dict[str, float]:
        n = len(targets)
        if not n:
            return {"f1": 0.0, "exact_match": 0.0}
        return {
            "f1": sum(f1(p, t["text"]) for p, t in zip(predictions, targets, strict=True)) / n,
            "exact_match": sum(exact_match(p, t["text"]) for p, t in zip(predictions, targets, strict=True)) / n,
        }

    def row_scores(self, predictions: Sequence[Any], targets: Sequence[Any]) -> list[float]:
        """Each question's F1: their mean is the F1 (the paired bootstrap resamples these)."""
        return [f1(p, t["text"]) for p, t in zip(predictions, targets, strict=True)]

    def agreement(self, predictions: Sequence[Any], reference: Sequence[Any]) -> float:
        """Share of questions answered with the same text (after SQuAD normalisation)."""
        same = sum(normalize_answer(a) == normalize_answer(b) for a, b in zip(predictions, reference, strict=True))
        return same / len(predictions) if predictions else 1.0

    def prediction_label(self, prediction: Any, names: Sequence[str]) -> str:
        if isinstance(prediction, dict):
            return " | ".join(prediction.get("text", []))
        return str(prediction) if prediction else "(no answer)"


def read_answers(value: Any, context: str, where: str) -> dict[str, list[Any]]:
    """Gold answers as ``{"text": [...], "answer_start": [...]}``, each checked against its context.

    Accepts SQuAD's dict of lists or a list of ``{"text", "answer_start"}`` records. An offset outside
    the context, or a text that is not what the context holds at that offset, is a DataError naming
    the row: training on it would teach the model the wrong span.
    """
    if isinstance(value, dict):
        texts, starts = value.get("text"), value.get("answer_start")
    elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
        texts, starts = [v.get("text") for v in value], [v.get("answer_start") for v in value]
    else:
        raise DataError(
            f"data.label: {where}: answers must be {{'text': [...], 'answer_start': [...]}} or a list of "
            f"{{'text', 'answer_start'}}, got {type(value).__name__}"
        )
    texts, starts = list(texts or []), list(starts or [])
    if not texts or len(texts) != len(starts):
        raise DataError(
            f"data.label: {where}: {len(texts)} answer texts and {len(starts)} answer_start offsets; each question "
            f"needs at least one answer, each with its character offset (unanswerable questions are not supported)"
        )
    for k, (text, start) in enumerate(zip(texts, starts, strict=True)):
        if not isinstance(text, str) or not text or isinstance(start, bool) or not isinstance(start, int | float):
            raise DataError(f"data.label: {where}: answer {k} needs a non-empty 'text' and an integer 'answer_start'")
        start = int(start)
        if start < 0 or start + len(text) > len(context):
            raise DataError(
                f"data.label: {where}: answer {k} {text[:40]!r} at answer_start {start} runs outside the context "
                f"({len(context)} characters)"
            )
        if context[start : start + len(text)] != text:
            raise DataError(
                f"data.label: {where}: answer {k} {text[:40]!r} does not match the context at answer_start {start} "
                f"(the context has {context[start : start + len(text)][:40]!r} there); fix the offset or the text"
            )
    return {"text": [str(t) for t in texts], "answer_start": [int(s) for s in starts]}


def best_span(start: Any, end: Any, in_context: Sequence[bool]) -> tuple[int, int, float] | None:
    """(first token, last token, score) of the best answer in one window, or None when no span fits.

    Candidates are the ``N_BEST`` highest start and end logits among context tokens; a span must
    not end before it starts nor be longer than ``MAX_ANSWER_TOKENS``; its score is start + end logit.
    """
    import numpy as np

    mask = np.zeros(len(start), dtype=bool)
    mask[: len(in_context)] = in_context
    if not mask.any():
        return None
    s_logits, e_logits = np.where(mask, start, -np.inf), np.where(mask, end, -np.inf)
    starts = [int(i) for i in np.argsort(s_logits)[::-1][:N_BEST] if mask[i]]
    ends = [int(i) for i in np.argsort(e_logits)[::-1][:N_BEST] if mask[i]]
    best: tuple[int, int, float] | None = None
    for s in starts:
        for e in ends:
            if e < s or e - s + 1 > MAX_ANSWER_TOKENS:
                continue
            score = float(start[s] + end[e])
            if best is None or score > best[2]:
                best = (s, e, score)
    return best


def _token_span(
    seq_ids: Sequence[int | None], offsets: Sequence[Any], start_char: int, end_char: int
) -> tuple[int, int]:
    """The answer's (first, last) token in one window, or (0, 0) — the [CLS] token — when the window
    does not hold the whole answer."""
    context = [i for i, s in enumerate(seq_ids) if s == 1]
    if not context:
        return 0, 0
    first, last = context[0], context[-1]
    if offsets[first][0] > start_char or offsets[last][1] < end_char:
        return 0, 0
    s = first
    while s <= last and offsets[s][0] <= start_char:
        s += 1
    e = last
    while e >= first and offsets[e][1] >= end_char:
        e -= 1
    return s - 1, e + 1

"""SQuAD's own JSON layout (``data[] -> title, paragraphs[] -> context, qas[] -> id, question, answers[]``),
flattened to one row per question, so the question-answering task reads the official files as they ship.

Rows carry ``id``, ``title`` (the article: ``data.group: title`` keeps an article's questions in one split),
``question``, ``context`` and ``answers`` as ``{"text": [...], "answer_start": [...]}``.

Offsets: an answer whose text is not what its context holds at ``answer_start`` is dropped, and counted in
the data notes; a question keeps its other answers. The official v1.1 dev set has 15 such answers among
34,680 (all on questions with other, correct answers), so rejecting the file would make it unusable and
keeping the answers would score predictions against a span that is not in the text. A question left
without any matching answer is dropped too (counted). More than ``MAX_BAD_SHARE`` of answers off is not
annotation noise but a broken file (byte offsets, a re-encoded context): that is a DataError.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from optkit.errors import DataError

__all__ = ["MAX_BAD_SHARE", "is_squad_json", "read_squad_json"]

MAX_BAD_SHARE = 0.01  # more answers off than this and the offsets, not a few annotations, are wrong


def is_squad_json(document: Any) -> bool:
    """True for SQuAD's top-level object: a ``data`` list of articles that hold ``paragraphs``."""
    data = document.get("data") if isinstance(document, dict) else None
    return isinstance(data, list) and bool(data) and all(isinstance(a, dict) and "paragraphs" in a for a in data)


def read_squad_json(path: Path, document: Any | None = None) -> Any:
    """The file as a DataFrame, one row per question; ``frame.attrs["notes"]`` counts what was dropped.

    ``document`` is the already parsed file, when the caller parsed it to recognise the layout.
    """
    import pandas as pd

    if document is None:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise DataError(f"data.source: {str(path)!r} is not a JSON document: {e}") from None
    if not is_squad_json(document):
        raise DataError(
            f"data.source: {str(path)!r} is not in SQuAD's layout: it needs a top-level 'data' list of articles, "
            f"each with 'title' and 'paragraphs' (context, qas)"
        )
    rows: list[dict[str, Any]] = []
    counts = {"answers": 0, "dropped_answers": 0, "dropped_questions": 0}
    for a, article in enumerate(document["data"]):
        title = article.get("title")
        if not isinstance(title, str) or not title.strip():
            raise DataError(f"data.source: {str(path)!r}: data[{a}] has no 'title'; every article needs one")
        for p, paragraph in enumerate(article["paragraphs"]):
            where = f"{str(path)!r}: data[{a}] ({title}) paragraphs[{p}]"
            rows.extend(_paragraph_rows(paragraph, title, where, counts))
    bad = counts["dropped_answers"]
    if counts["answers"] and bad / counts["answers"] > MAX_BAD_SHARE:
        raise DataError(
            f"data.source: {str(path)!r}: {bad} of {counts['answers']} answers do not match their context at "
            f"answer_start (more than {MAX_BAD_SHARE:.0%}): the offsets are not character offsets into 'context'; "
            f"fix the file"
        )
    if not rows:
        raise DataError(f"data.source: {str(path)!r} holds no questions with an answer")
    frame = pd.DataFrame(rows, columns=["id", "title", "question", "context", "answers"])
    frame.attrs["notes"] = {
        "articles": int(frame["title"].nunique()),
        "dropped_answers": bad,
        "dropped_questions": counts["dropped_questions"],
    }
    return frame


def _paragraph_rows(paragraph: Any, title: str, where: str, counts: dict[str, int]) -> list[dict[str, Any]]:
    """One paragraph's questions, each with the answers that match the context (the others counted)."""
    context = paragraph.get("context") if isinstance(paragraph, dict) else None
    qas = paragraph.get("qas") if isinstance(paragraph, dict) else None
    if not isinstance(context, str) or not context.strip() or not isinstance(qas, list):
        raise DataError(f"data.source: {where} needs a non-empty 'context' and a 'qas' list")
    rows = []
    for q, qa in enumerate(qas):
        question, answers = qa.get("question"), qa.get("answers")
        if not isinstance(question, str) or not question.strip() or not isinstance(answers, list):
            raise DataError(f"data.source: {where} qas[{q}] needs a non-empty 'question' and an 'answers' list")
        texts, starts = [], []
        for k, answer in enumerate(answers):
            text, start = answer.get("text"), answer.get("answer_start")
            if not isinstance(text, str) or isinstance(start, bool) or not isinstance(start, int):
                raise DataError(
                    f"data.source: {where} qas[{q}] answers[{k}] needs a 'text' and an integer 'answer_start'"
                )
            counts["answers"] += 1
            if text and start >= 0 and context[start : start + len(text)] == text:
                texts.append(text)
                starts.append(start)
            else:
                counts["dropped_answers"] += 1
        if not texts:
            counts["dropped_questions"] += 1
            continue
        qid = qa.get("id", f"{where} qas[{q}]")
        rows.append(
            {
                "id": str(qid),
                "title": title,
                "question": question,
                "context": context,
                "answers": {"text": texts, "answer_start": starts},
            }
        )
    return rows

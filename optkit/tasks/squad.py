"""Exact match and F1 of extractive answers, as the official SQuAD evaluation script defines them.

Both compare normalised text: lower-cased, punctuation removed, the articles 'a', 'an' and 'the'
removed, whitespace collapsed. F1 is over the bag of words of the predicted and a gold answer; an
example scores its best over its gold answers, and the data set's figure is the mean over examples.
An empty prediction or gold answer matches only an empty one (SQuAD 2.0's rule).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

__all__ = ["exact_match", "f1", "normalize_answer"]

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces: SQuAD's ``normalize_answer``."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals any normalised gold answer, else 0.0."""
    norm = normalize_answer(prediction)
    return float(any(norm == normalize_answer(g) for g in golds))


def f1(prediction: str, golds: Sequence[str]) -> float:
    """The best word-overlap F1 of ``prediction`` against any gold answer."""
    return max((_f1_one(prediction, g) for g in golds), default=0.0)


def _f1_one(prediction: str, gold: str) -> float:
    pred, true = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not true:
        return float(pred == true)
    same = sum((Counter(pred) & Counter(true)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(true)
    return 2 * precision * recall / (precision + recall)

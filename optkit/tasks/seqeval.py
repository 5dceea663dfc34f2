"""Entity-level precision, recall and F1 as seqeval (and CoNLL's conlleval script) define them.

An entity is a maximal chunk of tags of one type, read with seqeval's default (lenient) rules, which
accept IOB1, IOB2, IOE and IOBES alike: ``B-`` always opens a chunk, ``I-`` opens one after ``O`` or
after a chunk of another type, and a change of type closes one. A predicted entity counts as correct
only when its type, first and last token all equal a gold entity's. Scores are micro-averaged over
entities, as ``seqeval.metrics.f1_score`` does by default. Written here rather than imported so the
numbers do not move with another package's release; tests pin it to seqeval's documented cases.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["entities", "entity_counts", "prf"]

Entity = tuple[str, int, int]  # (type, first token, last token), inclusive as in seqeval


def _split(chunk: str) -> tuple[str, str]:
    """('B', 'PER') from 'B-PER'; ('O', '_') from 'O' (seqeval's reading of a tag)."""
    return chunk[0], chunk[1:].split("-", maxsplit=1)[-1] or "_"


def _ends(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    """Whether the chunk that ``prev_tag`` belongs to ends before ``tag``."""
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag not in ("O", ".") and prev_type != type_


def _starts(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    """Whether ``tag`` opens a new chunk after ``prev_tag``."""
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag not in ("O", ".") and prev_type != type_


def entities(tags: Sequence[str]) -> list[Entity]:
    """The entities of one sentence's tags, in order."""
    out: list[Entity] = []
    prev_tag, prev_type, begin = "O", "", 0
    for i, chunk in enumerate([*tags, "O"]):  # the sentinel closes a chunk that runs to the end
        tag, type_ = _split(chunk)
        if _ends(prev_tag, tag, prev_type, type_):
            out.append((prev_type, begin, i - 1))
        if _starts(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return out


def entity_counts(gold: Sequence[str], pred: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """Per entity type: (correct, predicted, gold) in one sentence."""
    g, p = set(entities(gold)), set(entities(pred))
    out: dict[str, tuple[int, int, int]] = {}
    for t in {e[0] for e in g | p}:
        gt, pt = {e for e in g if e[0] == t}, {e for e in p if e[0] == t}
        out[t] = (len(gt & pt), len(pt), len(gt))
    return out


def prf(correct: float, predicted: float, gold: float) -> tuple[float, float, float]:
    """Precision, recall and F1 from counts; 0 where a denominator is 0 (seqeval's zero_division default)."""
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1

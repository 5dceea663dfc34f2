"""Small made-up data sets for the token-classification and question-answering tests, in the tiny
model's vocabulary: learnable in seconds, never reported as a real-data result."""

from __future__ import annotations

import json
import random
from pathlib import Path

from scripts.tiny_assets import FILLER, NEGATIVE, POSITIVE


def ner_sentences(n: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """Sentences of filler words with a one-word POS entity and a two-word NEG entity (IOB2)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = rng.sample(FILLER, 4)
        tags = ["O"] * 4
        at = rng.randrange(0, 5)
        words[at:at] = [rng.choice(POSITIVE)]
        tags[at:at] = ["B-POS"]
        at = rng.randrange(0, len(words) + 1)
        words[at:at] = rng.sample(NEGATIVE, 2)
        tags[at:at] = ["B-NEG", "I-NEG"]
        out.append((words, tags))
    return out


def write_conll(path: Path, sentences: list[tuple[list[str], list[str]]]) -> Path:
    lines = ["-DOCSTART- -X- O O", ""]
    for words, tags in sentences:
        lines += [f"{w} X X {t}" for w, t in zip(words, tags, strict=True)] + [""]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_ner_jsonl(path: Path, sentences: list[tuple[list[str], list[str]]]) -> Path:
    path.write_text("".join(json.dumps({"tokens": w, "ner_tags": t}) + "\n" for w, t in sentences))
    return path


def qa_rows(n: int, seed: int = 0) -> list[dict[str, object]]:
    """A question 'it was good' over filler contexts holding one positive word, which is the answer."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = [rng.choice(FILLER) for _ in range(rng.randrange(6, 14))]
        answer = rng.choice(POSITIVE)
        words.insert(rng.randrange(0, len(words) + 1), answer)
        context = " ".join(words)
        start = context.index(f" {answer} ") + 1 if f" {answer} " in context else context.index(answer)
        rows.append(
            {"question": "it was good", "context": context, "answers": {"text": [answer], "answer_start": [start]}}
        )
    return rows


def write_qa_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path

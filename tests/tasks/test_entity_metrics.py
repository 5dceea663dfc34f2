"""Entity-level scores (seqeval's definition) and SQuAD's EM/F1 on hand-made cases."""

from __future__ import annotations

import pytest

from optkit.tasks.seqeval import entities, entity_counts, prf
from optkit.tasks.squad import exact_match, f1, normalize_answer


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 1), ("LOC", 3, 3)]),  # IOB2
        (["I-PER", "I-PER", "B-PER", "O"], [("PER", 0, 1), ("PER", 2, 2)]),  # IOB1: B- only between same types
        (["O", "I-MISC", "I-MISC"], [("MISC", 1, 2)]),  # a chunk opened by I- runs to the end
        (["B-PER", "I-LOC"], [("PER", 0, 0), ("LOC", 1, 1)]),  # a change of type closes and opens
        (["B-ORG", "B-ORG"], [("ORG", 0, 0), ("ORG", 1, 1)]),
        (["S-PER", "B-LOC", "E-LOC"], [("PER", 0, 0), ("LOC", 1, 2)]),  # IOBES
        (["O", "O"], []),
        # IOB1 as conlleval reads it: I- after O or after another type opens an entity, B- splits two adjacent
        # entities of one type, and a run of I- of one type is one entity
        (["I-PER", "I-LOC", "I-LOC"], [("PER", 0, 0), ("LOC", 1, 2)]),
        (["I-LOC", "O", "I-LOC"], [("LOC", 0, 0), ("LOC", 2, 2)]),
        (["I-PER", "B-PER", "I-PER", "O", "I-ORG"], [("PER", 0, 0), ("PER", 1, 2), ("ORG", 4, 4)]),
        (["I-MISC", "I-MISC", "I-MISC"], [("MISC", 0, 2)]),
    ],
)
def test_entities_follow_seqeval(tags: list[str], expected: list[tuple[str, int, int]]) -> None:
    assert entities(tags) == expected


def test_seqeval_readme_example_scores_half() -> None:
    """seqeval's README: one of two gold entities found, one of two predictions right -> P = R = F1 = 0.5."""
    gold = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    c = p = g = 0
    for gt, pt in zip(gold, pred, strict=True):
        for a, b, d in entity_counts(gt, pt).values():
            c, p, g = c + a, p + b, g + d
    assert (c, p, g) == (1, 2, 2)
    assert prf(c, p, g) == (0.5, 0.5, 0.5)


def test_prf_without_predictions_or_gold_is_zero_not_an_error() -> None:
    assert prf(0, 0, 3) == (0.0, 0.0, 0.0)
    assert prf(0, 2, 0) == (0.0, 0.0, 0.0)


def test_squad_normalisation_drops_case_punctuation_and_articles() -> None:
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("an apple, a pear") == "apple pear"
    assert normalize_answer("theatre") == "theatre"  # 'the' only as a word


def test_squad_exact_match_and_f1() -> None:
    assert exact_match("the Eiffel tower", ["Eiffel Tower", "tower"]) == 1.0
    assert exact_match("Eiffel", ["Eiffel Tower"]) == 0.0
    assert f1("Eiffel", ["Eiffel Tower"]) == pytest.approx(2 / 3)  # P 1, R 1/2
    assert f1("in Paris France", ["Paris", "France Paris"]) == pytest.approx(0.8)  # best gold: P 2/3, R 1
    assert f1("", ["Paris"]) == 0.0
    assert f1("the", ["a"]) == 1.0  # both normalise to nothing: SQuAD 2.0's empty-matches-empty rule


def test_iob1_and_iob2_spellings_of_the_same_entities_score_one() -> None:
    """A model trained on IOB1 CoNLL tags that predicts them in IOB2 spelling found the same entities."""
    iob1 = ["I-ORG", "O", "I-MISC", "O", "I-PER", "I-PER", "B-PER", "O"]
    iob2 = ["B-ORG", "O", "B-MISC", "O", "B-PER", "I-PER", "B-PER", "O"]
    counts = entity_counts(iob1, iob2)
    assert counts == {"ORG": (1, 1, 1), "MISC": (1, 1, 1), "PER": (2, 2, 2)}
    merged = ["B-ORG", "O", "B-MISC", "O", "B-PER", "I-PER", "I-PER", "O"]  # the B- split missed: one PER, wrong
    assert entity_counts(iob1, merged)["PER"] == (0, 1, 2)

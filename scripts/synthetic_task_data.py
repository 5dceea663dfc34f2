"""Write MADE-UP named-entity (CoNLL) and question-answering (JSONL) files for a dry run of
recipes/ner-int8.yaml and recipes/qa-int8.yaml where no real labelled data is at hand.

No real NER or extractive-QA data set installs from PyPI, Debian or npm here (README, "Token
classification and question answering"), so these files let the recipes run end to end offline:
the plumbing, the training loop, export, quantisation and the speed figures are real; the quality
figures are of template sentences and say nothing about a real data set. Never report them as such.

    python scripts/synthetic_task_data.py data/synthetic   # writes ner.conll and qa.jsonl there
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

FIRST = [
    "Anna",
    "Ben",
    "Carla",
    "David",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kofi",
    "Lena",
    "Marco",
    "Nadia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tara",
]
LAST = [
    "Smith",
    "Okafor",
    "Rossi",
    "Tanaka",
    "Novak",
    "Garcia",
    "Mueller",
    "Dubois",
    "Kowalski",
    "Haddad",
    "Silva",
    "Jensen",
    "Ivanova",
    "Chen",
    "Moreau",
]
CITIES = [
    "Lisbon",
    "Nairobi",
    "Osaka",
    "Toronto",
    "Krakow",
    "Lyon",
    "Bergen",
    "Austin",
    "Hanoi",
    "Quito",
    "Adelaide",
    "Porto",
    "Leeds",
    "Tbilisi",
    "Seville",
]
COUNTRIES = ["Portugal", "Kenya", "Japan", "Canada", "Poland", "France", "Norway", "Vietnam", "Ecuador", "New Zealand"]
ORGS = [
    "Northwind Bank",
    "Apex Robotics",
    "the Harbour Institute",
    "Bluefield Energy",
    "Orion Media",
    "the Central Library",
    "Vega Airlines",
    "Lumen Health",
    "Granite Foods",
    "the City Council",
]
MISC = ["Olympic", "Nobel", "Ramadan", "Euro", "Brexit", "Oscar", "Christmas", "Renaissance"]
JOBS = ["engineer", "teacher", "nurse", "pilot", "chemist", "lawyer", "architect", "journalist"]
NER_TEMPLATES = [
    "{PER} flew from {LOC} to {LOC} on Monday .",
    "{ORG} said on Tuesday that {PER} would lead its office in {LOC} .",
    "Shares of {ORG} rose 3 percent after the {MISC} holiday .",
    "{PER} , who works for {ORG} , won the {MISC} prize last year .",
    "Police in {LOC} arrested two men , a spokesman for {ORG} said .",
    "The match between {LOC} and {LOC} ended in a draw .",
    "{PER} told reporters in {LOC} that talks with {ORG} had stalled .",
    "It was the first {MISC} event held in {LOC} since 1998 .",
    "{ORG} hired {PER} as chief executive .",
    "Rain delayed play in {LOC} for two hours .",
    "{PER} and {PER} signed the agreement in {LOC} .",
    "The {MISC} exhibition at {ORG} drew large crowds .",
]
FILLER = [
    "The weather was mild that season and the harvest was good.",
    "Local newspapers covered the story for several weeks.",
    "Many residents remember the old market square fondly.",
    "The railway line was extended in the following decade.",
    "Visitors often comment on the quiet streets and small cafes.",
]


def _entity(kind: str, rng: random.Random) -> list[str]:
    if kind == "PER":
        return [rng.choice(FIRST), rng.choice(LAST)] if rng.random() < 0.7 else [rng.choice(FIRST)]
    if kind == "LOC":
        return rng.choice(CITIES + COUNTRIES).split()
    if kind == "ORG":
        return rng.choice(ORGS).split()
    return [rng.choice(MISC)]


def ner_sentences(n: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """Template sentences with PER, LOC, ORG and MISC entities, tagged IOB2 ('the' before an ORG is O)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words: list[str] = []
        tags: list[str] = []
        for part in rng.choice(NER_TEMPLATES).split():
            if part.startswith("{") and part.endswith("}"):
                kind = part[1:-1]
                ent = _entity(kind, rng)
                if ent[0] == "the":
                    words.append("the")
                    tags.append("O")
                    ent = ent[1:]
                words += ent
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(ent) - 1)
            else:
                words.append(part)
                tags.append("O")
        out.append((words, tags))
    return out


def qa_rows(n: int, seed: int = 0) -> list[dict[str, object]]:
    """Contexts of 1-3 made-up biographies among filler sentences; each question asks one fact of one person."""
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    while len(rows) < n:
        people = rng.sample([f"{f} {last}" for f in FIRST for last in LAST], rng.randrange(1, 4))
        facts = []
        parts: list[str] = []
        for person in people:
            city, org, job, year = (
                rng.choice(CITIES),
                rng.choice(ORGS),
                rng.choice(JOBS),
                str(rng.randrange(1950, 2005)),
            )
            sentence = f"{person} was born in {city} in {year} and later worked for {org} as a {job}."
            parts.append(sentence)
            parts += rng.sample(FILLER, rng.randrange(0, 3))
            facts.append((person, sentence, {"city": city, "year": year, "org": org, "job": job}))
        context = " ".join(parts)
        for person, sentence, fact in facts:
            base = context.index(sentence)
            for key, question in (
                ("city", f"Where was {person} born?"),
                ("year", f"In which year was {person} born?"),
                ("org", f"Which organisation did {person} work for?"),
                ("job", f"What was {person}'s job?"),
            ):
                start = base + sentence.index(fact[key], len(person))
                rows.append(
                    {
                        "question": question,
                        "context": context,
                        "answers": {"text": [fact[key]], "answer_start": [start]},
                    }
                )
    rng.shuffle(rows)
    return rows[:n]


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "data/synthetic")
    out.mkdir(parents=True, exist_ok=True)
    lines = ["-DOCSTART- -X- -X- O", ""]
    for words, tags in ner_sentences(3000):
        lines += [f"{w} {t}" for w, t in zip(words, tags, strict=True)] + [""]
    (out / "ner.conll").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in qa_rows(1500)), encoding="utf-8")
    print(f"wrote {out / 'ner.conll'} and {out / 'qa.jsonl'} (made-up data: for plumbing and speed, not quality)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

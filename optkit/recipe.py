"""Recipe schema and loader: YAML in, a validated ``Recipe`` out, or a ``RecipeError`` naming the field.

A step in YAML is a one-key mapping (``- quantize: {mode: dynamic}``) or a bare name (``- export``);
it is turned into ``{"kind": ..., **options}`` and validated against the pass's own config class,
so the config classes in ``optkit.passes`` are the single source of defaults.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from optkit.errors import RecipeError
from optkit.passes.base import SEED_MAX, PassConfig
from optkit.passes.registry import catalogue_generation, list_passes
from optkit.provider_names import check_provider_options, ort_provider_name, unknown_provider_message
from optkit.tasks import get_task

__all__ = [
    "BUILTIN_SLICES",
    "CompareSpec",
    "DataSpec",
    "EvaluateSpec",
    "GateSpec",
    "ModelSpec",
    "Recipe",
    "SelectSpec",
    "Shape",
    "Step",
    "TrafficShape",
    "load_recipe",
    "shape_label",
]

# A step is any pass config; the recipe's fields hold the discriminated union of every registered
# pass, rebuilt from the catalogue when a pass registers later (see _refresh_step_types).
Step = PassConfig

_STRICT = ConfigDict(extra="forbid", frozen=True)
_MAX_ROWS = 10**9  # far above any data set optkit reads into memory; keeps messages and arithmetic sane


class ModelSpec(BaseModel):
    """Where the model comes from and what head it needs."""

    model_config = _STRICT
    source: str = Field(description="Hub id ('org/name'), a local folder, or 'package:DIST/path/in/dist'.")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit); hub sources only.")
    task: str = Field(
        "text-classification", description="What the model is for: a registered task (text-classification)."
    )
    num_labels: int | None = Field(
        None, ge=2, description="Size of the classification head; must equal the number of labels in the data."
    )
    trust_remote_code: bool = Field(False, description="Run code shipped with a hub model. Off unless set.")
    from_config: bool = Field(
        False,
        description="The source folder holds a config.json (and image processor) but no weights: build the model "
        "with seeded random weights for the baseline to train. For when no pretrained weights install here.",
    )

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str) -> str:
        try:
            get_task(v)
        except RecipeError as e:  # pydantic reports a ValueError with the field path and the file
            raise ValueError(str(e).removeprefix("model.task: ")) from None
        return v


class Splits(BaseModel):
    """Seeded, stratified split sizes: a fraction (0-1) of the filtered rows or an absolute row count."""

    model_config = _STRICT
    train: float = Field(0.8, gt=0, le=_MAX_ROWS, allow_inf_nan=False, description="Training rows (fraction or count).")
    eval: float = Field(
        0.2, gt=0, le=_MAX_ROWS, allow_inf_nan=False, description="Held-out evaluation rows (fraction or count)."
    )
    calibration: int = Field(
        256, ge=0, le=_MAX_ROWS, description="Rows drawn from the train split for static calibration."
    )
    validation: float = Field(
        0,
        ge=0,
        le=_MAX_ROWS,
        allow_inf_nan=False,
        description="Rows held out for tuning decisions (the tune pass), taken out of the held-out eval rows "
        "(a fraction of them, or a count), so no training pass sees them and the report's eval split never "
        "judged a choice. Train and calibration rows stay exactly as without it. 0: none.",
    )

    @field_validator("train", "eval", "validation")
    @classmethod
    def _fraction_or_count(cls, v: float) -> float:
        if v >= 1 and v != int(v):
            raise ValueError(f"{v} is neither a fraction below 1 nor a whole number of rows; use e.g. 0.8 or 800")
        return v

    @model_validator(mode="after")
    def _fit(self) -> Splits:
        if self.train < 1 and self.eval < 1 and self.train + self.eval > 1 + 1e-9:
            raise ValueError(
                f"train ({self.train}) + eval ({self.eval}) fractions exceed 1; lower one so they sum to 1 or less"
            )
        return self


class DataSpec(BaseModel):
    """The labelled text data: source, columns, label filter and splits."""

    model_config = _STRICT
    source: str = Field(
        description="Local CSV/TSV/JSONL/Parquet/Orange .tab (optionally .gz/.bz2), 'package:DIST/path', or 'hub:NAME'."
    )
    format: Literal[
        "auto", "csv", "tsv", "jsonl", "squad", "parquet", "orange", "conll", "imagefolder", "idx", "npy", "npz"
    ] = Field(
        "auto",
        description="File format; auto reads the file name (.tab is Orange's tab-separated format). 'conll': one "
        "token and its tag per line (tag in the last column), a blank line between sentences; it reads as columns "
        "'tokens' and 'tags'. 'squad': SQuAD's nested JSON (data -> paragraphs -> qas), one row per question with "
        "columns id, title, question, context, answers (auto for a .json file in that layout). Image tasks also "
        "read an ImageFolder tree (imagefolder), IDX files (idx) and NumPy arrays (npy, npz).",
    )
    fetch: str | None = Field(
        None,
        description="How to get data.source where it is missing (e.g. 'make squad-data'): the missing-file error "
        "names it. optkit never runs it.",
    )
    eval_source: str | None = Field(
        None,
        description="token-classification and question-answering: a second file, read like data.source (same "
        "format and columns), that the eval split is drawn from, e.g. a data set's official test split; "
        "data.splits.eval then counts its rows, and train and calibration rows come from data.source alone. "
        "Default: the eval rows are held out of data.source.",
    )
    hub_split: str = Field("train", description="Split to read from a hub data set.")
    text: str = Field("text", description="Column holding the input text.")
    text_pair: str | None = Field(
        None,
        description="Column holding a second text per row (paraphrase, entailment, query-document relevance): "
        "each row is tokenised as a pair, with token type ids marking the second text. Default: single texts.",
    )
    label: str = Field("label", description="Column holding the class label.")
    context: str = Field(
        "context", description="question-answering: the column holding the passage each question is asked about."
    )
    group: str | None = Field(
        None,
        description="question-answering and token-classification: a column that keeps eval apart from train: eval "
        "takes whole groups, train draws from the others (e.g. SQuAD's article 'title', so no paragraph is asked "
        "about in both). Default: rows are split one by one.",
    )
    image: str = Field(
        "image", description="Image tasks: column of image paths (relative to the table's folder), or .npz array."
    )
    label_source: str | None = Field(
        None, description="Image tasks: the labels file beside packed images (IDX or .npy), one label per image."
    )
    labels: list[str] | dict[str, str] | None = Field(
        None,
        min_length=2,
        description="Label values to keep, in id order; rows with other values are dropped. Numbers match the "
        "label column's values as text. A mapping ({0: negative, 1: positive}) also names them for the report "
        "and the model's config. Default: every distinct value, sorted.",
    )
    max_length: int = Field(128, ge=8, le=4096, description="Tokenizer truncation length.")
    splits: Splits = Field(default_factory=Splits)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_as_text(cls, v: Any) -> Any:
        """YAML reads ``[0, 1]`` as integers; a label column read from CSV holds them as text too."""
        if isinstance(v, list):
            return [_label_text(x) for x in v]
        if isinstance(v, dict):
            return {_label_text(k): _label_text(name) for k, name in v.items()}
        return v

    @field_validator("labels")
    @classmethod
    def _distinct_labels(cls, v: list[str] | dict[str, str] | None) -> list[str] | dict[str, str] | None:
        names = list(v.values()) if isinstance(v, dict) else v
        if names is not None and len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"label name(s) {twice} given twice; each class needs its own name")
        return v

    @property
    def label_values(self) -> list[str] | None:
        """The label column's values to keep, in id order (the keys of a mapping)."""
        return None if self.labels is None else list(self.labels)

    def label_names(self, values: list[str]) -> list[str]:
        """Names for the report and the model's ``id2label``: a mapping's values, else the values themselves."""
        return [self.labels[v] for v in values] if isinstance(self.labels, dict) else list(values)

    @field_validator("eval_source")
    @classmethod
    def _eval_file_not_hub(cls, v: str | None) -> str | None:
        """A hub eval source would be read with data.hub_split, the train split: eval rows would be trained on."""
        if v is not None and v.startswith("hub:"):
            raise ValueError(
                "a hub data set is read with data.hub_split for both files, so its eval rows would be training "
                "rows; point eval_source at a local or package: file (e.g. the test split saved as JSONL)"
            )
        return v

    @model_validator(mode="after")
    def _two_columns(self) -> DataSpec:
        if self.text == self.label:
            raise ValueError(f"text and label both name column {self.text!r}; they must be two different columns")
        if self.text_pair is not None and self.text_pair in (self.text, self.label):
            role = "text" if self.text_pair == self.text else "label"
            raise ValueError(
                f"text_pair and {role} both name column {self.text_pair!r}; the pair's second text needs its own column"
            )
        return self


class Shape(BaseModel):
    """A latency shape: ``{batch, seq}`` for text, ``{batch, height, width}`` for images.

    An image shape's ``seq`` is its pixel count per channel (height x width), filled in when absent:
    rows, comparisons and gates key shapes by (batch, seq), so image shapes need no second key.
    """

    model_config = _STRICT
    batch: int = Field(ge=1, le=4096)
    seq: int = Field(ge=1, description="Tokens per row (text); for an image shape, height x width (set for you).")
    height: int | None = Field(None, ge=1, le=8192, description="Image height in pixels (image tasks).")
    width: int | None = Field(None, ge=1, le=8192, description="Image width in pixels (image tasks).")

    @model_validator(mode="before")
    @classmethod
    def _image_seq(cls, data: Any) -> Any:
        if isinstance(data, dict) and "seq" not in data and ("height" in data or "width" in data):
            h, w = data.get("height"), data.get("width")
            if isinstance(h, int) and isinstance(w, int):
                return {**data, "seq": h * w}
        return data

    @model_validator(mode="after")
    def _text_or_image(self) -> Shape:
        if (self.height is None) != (self.width is None):
            raise ValueError("an image shape needs both height and width (e.g. {batch: 1, height: 224, width: 224})")
        if self.height is None and self.seq > 4096:
            raise ValueError(f"seq {self.seq} is above 4096 tokens; use a shorter sequence")
        if self.height is not None and self.width is not None and self.seq != self.height * self.width:
            raise ValueError(
                f"seq {self.seq} is not height x width ({self.height} x {self.width}); leave seq out of an image shape"
            )
        return self

    @model_serializer(mode="wrap")
    def _text_shapes_as_before(self, handler: Any) -> Any:
        """A text shape dumps as it always did ({batch, seq}): reports and cache keys stay unchanged."""
        out = handler(self)
        if isinstance(out, dict) and self.height is None:
            out.pop("height", None)
            out.pop("width", None)
        return out

    @property
    def is_image(self) -> bool:
        return self.height is not None

    @property
    def label(self) -> str:
        """How reports name the shape: b1×s128, or b1×28×28 for an image."""
        return f"b{self.batch}×{self.height}×{self.width}" if self.is_image else f"b{self.batch}×s{self.seq}"


def shape_label(shape: Any) -> str:
    """A shape (a results row, a recipe shape dict or a ``Shape``) as reports name it: b1×s128 for text,
    b1×28×28 for an image shape (which carries height and width)."""
    get = shape.get if isinstance(shape, dict) else lambda k: getattr(shape, k, None)
    if get("height"):
        return f"b{get('batch')}×{get('height')}×{get('width')}"
    return f"b{get('batch')}×s{get('seq')}"


class TrafficShape(BaseModel):
    """A latency shape of real requests: eval rows at their natural token lengths, not padded to one length.

    Written in ``evaluate.shapes`` as ``{traffic: eval}``; kept apart from the fixed shapes (in
    ``evaluate.traffic``), so gates, the recommendation and memory still read the fixed ones.
    """

    model_config = _STRICT
    traffic: Literal["eval"] = Field(description="Whose rows to replay: 'eval', the eval split's rows, in order.")
    batch: int = Field(1, ge=1, le=4096, description="Rows per request, padded to the longest row in it.")
    requests: int | None = Field(
        500,
        ge=5,
        description="Requests replayed per variant, rows spread evenly over the eval split so its length "
        "distribution is kept; null: every eval row. Every variant gets the same requests in the same order.",
    )
    include_preprocessing: bool = Field(
        False, description="Time tokenisation too (end to end from text), not the model call alone."
    )

    @property
    def label(self) -> str:
        """How reports and progress lines name it: ``traffic:eval b1`` (``+tok`` with tokenisation)."""
        return f"traffic:{self.traffic} b{self.batch}" + (" +tok" if self.include_preprocessing else "")


# Adaptive timing defaults (see LatencySpec): ±3% is well inside compare's default 10% latency threshold;
# 20 runs is the fewest whose bootstrap interval of the median is not a coin toss of two order statistics.
DEFAULT_PRECISION = 0.03
DEFAULT_MIN_RUNS = 20
DEFAULT_MAX_RUNS = 300


class LatencySpec(BaseModel):
    model_config = _STRICT
    warmup: int | Literal["auto"] = Field(
        10,
        description="Untimed runs per variant and shape before timing, or 'auto': until the median of the "
        "last 5 runs is within 5% of the 5 before (at most 200).",
    )
    runs: int | Literal["auto"] = Field(
        100,
        description="Timed runs per variant and shape (interleaved across variants), or 'auto': timing rounds "
        "go on until every variant's median is known to ±precision, max_runs is reached or time_budget_s is spent.",
    )
    precision: float | None = Field(
        None,
        gt=0,
        le=0.5,
        description="Adaptive timing: stop once the 95% interval of every variant's p50 lies within ±this "
        "fraction of it (0.03 = ±3%); a number 'runs' becomes the cap. Default with runs: auto: "
        f"{DEFAULT_PRECISION}.",
    )
    min_runs: int | None = Field(
        None,
        ge=5,
        description="Timed runs every variant gets before timing may stop early (precision or time budget), so "
        f"the interval rests on enough samples. Default {DEFAULT_MIN_RUNS} when adaptive, else 5.",
    )
    max_runs: int | None = Field(
        None,
        ge=5,
        description=f"runs: auto only: the cap on timed runs per variant and shape. Default {DEFAULT_MAX_RUNS}.",
    )
    block: int = Field(
        10, ge=1, description="Timed runs per variant per round; each turn starts with one untimed settling run."
    )
    threads: int | None = Field(
        None, ge=1, description="Intra-op threads for ONNX Runtime and PyTorch. Default: CPUs available."
    )
    time_budget_s: float | None = Field(
        None,
        gt=0,
        description="Stop timing a shape once this many seconds have passed (after min_runs each); "
        "'runs' is then an upper bound.",
    )
    skip: list[str] = Field(
        default_factory=list,
        description="Variants left untimed on purpose (no latency or memory; accuracy is still scored), e.g. "
        "[baseline] in CI, where the PyTorch baseline's speed is not what is gated. Their rows say so, and "
        "compare does not count them missing. The speed-up reference cannot be skipped.",
    )

    @field_validator("runs", mode="before")
    @classmethod
    def _runs_count_or_auto(cls, v: Any) -> Any:
        """One clear message instead of pydantic's two (one per member of the union)."""
        if v == "auto":
            return v
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"runs must be an integer (5 or more) or 'auto'; got {v!r}")
        if v < 5:
            raise ValueError(f"runs must be 5 or more (a median and its interval need several runs) or 'auto'; got {v}")
        return v

    @field_validator("precision", mode="before")
    @classmethod
    def _percent_or_fraction(cls, v: Any) -> Any:
        """'3%' reads as 0.03, as compare's thresholds do; anything else goes to the number check."""
        if isinstance(v, str) and v.strip().endswith("%"):
            try:
                return float(v.strip()[:-1]) / 100
            except ValueError:
                raise ValueError(f"precision must be a fraction (0.03) or a percentage ('3%'); got {v!r}") from None
        return v

    @property
    def adaptive(self) -> bool:
        """Timing stops on a precision target rather than after a fixed count."""
        return self.runs == "auto" or self.precision is not None

    @property
    def target(self) -> float | None:
        """The half-width to reach, as a fraction of the median; None for a fixed count."""
        return self.precision if self.precision is not None else DEFAULT_PRECISION if self.runs == "auto" else None

    @property
    def cap(self) -> int:
        """The most timed runs per variant and shape."""
        if self.runs == "auto":
            return self.max_runs or DEFAULT_MAX_RUNS
        return int(self.runs)

    @property
    def floor(self) -> int:
        """Timed runs each variant needs before a precision or budget stop."""
        return self.min_runs or (DEFAULT_MIN_RUNS if self.adaptive else 5)

    @model_validator(mode="after")
    def _adaptive_fields_fit(self) -> LatencySpec:
        if self.max_runs is not None and self.runs != "auto":
            raise ValueError(
                f"max_runs ({self.max_runs}) applies to runs: auto; with runs: {self.runs} that count is already "
                f"the cap. Remove max_runs, or write runs: auto"
            )
        if self.min_runs is not None and not self.adaptive and self.time_budget_s is None:
            raise ValueError(
                f"min_runs ({self.min_runs}) only matters when timing can stop early; set precision (or runs: "
                f"auto) or time_budget_s, or remove min_runs"
            )
        if self.floor > self.cap:
            raise ValueError(
                f"min_runs ({self.floor}) is more than the cap of {self.cap} timed runs; lower min_runs or raise "
                f"{'max_runs' if self.runs == 'auto' else 'runs'}"
            )
        return self

    @field_validator("warmup")
    @classmethod
    def _warmup_not_negative(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 0:
            raise ValueError(f"warmup must be 0 or more, or 'auto'; got {v}")
        return v


# Slices computed from every eval row without a data column: text-length terciles, and the target.
BUILTIN_SLICES = ("length", "label")


class EvaluateSpec(BaseModel):
    model_config = _STRICT
    providers: list[str] = Field(
        default_factory=lambda: ["cpu"],
        min_length=1,
        description="Execution providers: cpu, cuda, tensorrt, openvino or a raw ORT provider name; an entry may "
        "be {name: openvino, options: {device_type: CPU, precision: FP32}} (its options go to provider_options).",
    )
    provider_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Options per provider (by its name in providers), given to every latency and memory session "
        "on it; accuracy passes run on the CPU provider. Defaults come from optkit's provider table.",
    )
    shapes: list[Shape] = Field(
        default_factory=lambda: [Shape(batch=1, seq=128), Shape(batch=8, seq=128)],
        min_length=1,
        description="Latency shapes: a list of {batch, seq}, or a grid {batch: [...], seq: [...]} expanded to "
        "every pair; the first one is used for speed gates.",
    )
    traffic: list[TrafficShape] = Field(
        default_factory=list,
        description="Latency on real traffic: where the {traffic: eval} entries of shapes go. Each replays eval "
        "rows at their natural token lengths (dynamic padding), timed interleaved like the fixed shapes.",
    )
    latency: LatencySpec = Field(default_factory=LatencySpec)
    batch_size: int = Field(32, ge=1, description="Batch size for the accuracy pass over the eval split.")
    memory: bool = Field(True, description="Measure peak RSS of each variant in its own process.")
    reference: str | None = Field(
        None,
        description="Variant that speed-ups are measured against. Default: the first variant whose "
        "last step is export (fp32 ONNX).",
    )
    slices: list[str] = Field(
        default_factory=list,
        description="Slices of the eval rows that get the primary metric and its change per group: 'length' "
        "(text-length terciles), 'label' (by target), or any column of the data (a group, a source, a language).",
    )

    @field_validator("slices")
    @classmethod
    def _slices_once(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v) or any(not s.strip() for s in v):
            raise ValueError(f"{v} names a slice twice or an empty one; list each once")
        return v

    @property
    def slice_columns(self) -> list[str]:
        """The slices that are data columns (not the built-in 'length' and 'label')."""
        return [s for s in self.slices if s not in BUILTIN_SLICES]

    @model_validator(mode="before")
    @classmethod
    def _split_provider_entries(cls, data: Any) -> Any:
        """``{name: openvino, options: {...}}`` entries become the name plus ``provider_options[name]``."""
        if not isinstance(data, dict) or not isinstance(data.get("providers"), list):
            return data
        names: list[Any] = []
        options = dict(data.get("provider_options") or {})
        for i, entry in enumerate(data["providers"]):
            if not isinstance(entry, dict):
                names.append(entry)
                continue
            extra = set(entry) - {"name", "options"}
            if "name" not in entry or extra or not isinstance(entry["name"], str):
                raise ValueError(
                    f"providers[{i}] {entry!r}: write a name ('cpu') or {{name: openvino, options: {{device_type: "
                    f"CPU}}}}" + (f"; unknown keys {sorted(extra)}" if extra else "")
                )
            if not isinstance(entry.get("options", {}), dict):
                raise ValueError(f"providers[{i}] options must be a mapping of option: value; got {entry['options']!r}")
            if entry["name"] in options and entry.get("options"):
                raise ValueError(f"provider {entry['name']!r} has options both in providers and provider_options")
            names.append(entry["name"])
            if entry.get("options"):
                options[entry["name"]] = entry["options"]
        return {**data, "providers": names, "provider_options": options}

    @model_validator(mode="after")
    def _options_of_listed_providers(self) -> EvaluateSpec:
        """Options only for a listed provider, each known to it and single-valued; stored as ORT's strings."""
        for name, opts in self.provider_options.items():
            if name not in self.providers:
                raise ValueError(f"provider_options names {name!r}, which is not in providers {self.providers}")
            self.provider_options[name] = check_provider_options(name, opts)
        return self

    @field_validator("providers")
    @classmethod
    def _providers_exist(cls, v: list[str]) -> list[str]:
        """A name that is no provider fails here; a real one missing from this build is reported as not measured."""
        for provider in v:
            problem = unknown_provider_message(provider)
            if problem:
                raise ValueError(problem)
        if len({ort_provider_name(p) for p in v}) != len(v):
            raise ValueError(f"{v} names a provider twice; list each once")
        return v

    @model_validator(mode="before")
    @classmethod
    def _traffic_apart(cls, data: Any) -> Any:
        """``{traffic: eval}`` entries of ``shapes`` move to ``traffic``; at least one fixed shape must stay."""
        if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
            return data
        shapes = data["shapes"]
        traffic = [s for s in shapes if isinstance(s, dict) and "traffic" in s]
        if not traffic:
            return data
        fixed = [s for s in shapes if not (isinstance(s, dict) and "traffic" in s)]
        if not fixed:
            raise ValueError(
                "shapes: {traffic: eval} needs at least one fixed {batch, seq} shape beside it (speed gates, the "
                "recommendation and peak memory use the first fixed shape); add e.g. {batch: 1, seq: 128}"
            )
        return {**data, "shapes": fixed, "traffic": [*(data.get("traffic") or []), *traffic]}

    @field_validator("shapes", mode="before")
    @classmethod
    def _expand_grid(cls, v: Any) -> Any:
        """``{batch: [1, 8], seq: [64, 128]}`` becomes the four shapes, batch-major."""
        if isinstance(v, dict) and set(v) == {"batch", "seq"}:
            batches = v["batch"] if isinstance(v["batch"], list) else [v["batch"]]
            seqs = v["seq"] if isinstance(v["seq"], list) else [v["seq"]]
            return [{"batch": b, "seq": s} for b in batches for s in seqs]
        return v


class GateSpec(BaseModel):
    """Thresholds a variant must meet; a violated gate fails the run with exit code 1."""

    model_config = _STRICT
    max_accuracy_drop: float | None = Field(
        None, ge=0, le=1, description="Largest allowed accuracy drop vs the baseline, as a fraction (0.01 = 1 point)."
    )
    min_speedup: float | None = Field(
        None, gt=0, description="Smallest allowed p50 speed-up vs the reference variant, at the first shape."
    )
    max_size_ratio: float | None = Field(
        None, gt=0, description="Largest allowed size on disk as a fraction of the reference variant's."
    )
    min_agreement: float | None = Field(
        None, ge=0, le=1, description="Smallest allowed share of eval predictions equal to the baseline's."
    )
    max_class_drop: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Largest allowed drop of any one class's recall or F1 vs the baseline, as a fraction "
        "(0.05 = 5 points); fails naming the class. Tasks with classes only.",
    )
    max_slice_drop: float | None = Field(
        None,
        ge=0,
        description="Largest allowed drop of the primary metric on any one group of evaluate.slices vs the "
        "baseline, as a fraction (0.05 = 5 points of accuracy); fails naming the slice and group.",
    )
    max_metric_drop: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Largest allowed drop of the task's primary metric vs the baseline (accuracy, entity_f1, "
        "QA f1, k-NN accuracy for feature-extraction), as a fraction (0.01 = 1 point). Every task.",
    )
    min_metric: dict[str, float] | None = Field(
        None,
        description="Floors for any of the task's metrics where higher is better, e.g. {cosine_mean: 0.98, "
        "cosine_p5: 0.95} for feature-extraction; fails naming the metric.",
    )


class SelectSpec(BaseModel):
    """How the report picks the variant to ship: the fastest acceptable one at one shape."""

    model_config = _STRICT
    shape: Shape | None = Field(
        None, description="Latency shape to rank by, one of evaluate.shapes. Default: the first shape."
    )
    provider: str | None = Field(
        None, description="Provider to rank by, one of evaluate.providers. Default: the first one measured."
    )
    metric: str | None = Field(
        None, description="Quality metric the tolerance applies to. Default: the task's primary metric (accuracy)."
    )
    tolerance: float = Field(
        0.01,
        ge=0,
        description="For variants without gates: largest allowed drop of the metric vs the baseline, as a "
        "fraction (0.01 = 1 point). Variants with gates must pass them all instead.",
    )


class CompareSpec(BaseModel):
    """Limits for ``optkit run --baseline``: how far this run may move from a stored baseline report.

    They live in the recipe so that the CI command is one line and the limits are reviewed with
    the recipe; ``optkit compare`` and ``run``'s flags override them. None means compare's default.
    """

    model_config = _STRICT
    max_accuracy_drop: float | None = Field(
        None, ge=0, le=1, description="Largest allowed accuracy drop vs the baseline report, as a fraction (0.01)."
    )
    max_latency_regression: float | None = Field(
        None, ge=0, description="Largest allowed p50 slow-down beyond both runs' 95% intervals (0.10 = 10%)."
    )
    max_memory_regression: float | None = Field(
        None, ge=0, description="Largest allowed peak-memory growth vs the baseline report (0.10 = 10%)."
    )


class ReportSpec(BaseModel):
    model_config = _STRICT
    formats: list[Literal["json", "md", "html", "junit"]] = Field(
        default_factory=lambda: ["json", "md", "html"],
        min_length=1,
        description="Files to write: report.json, report.md, report.html (self-contained, charts inline), "
        "gates.xml (JUnit XML, one test case per gate).",
    )
    gates: dict[str, GateSpec] = Field(
        default_factory=dict, description="Gates per variant name; '*' applies to every variant."
    )
    package: list[str] | None = Field(
        None,
        description="Variants to write as deployable packages (reports/<name>/packages/<variant>/). Default: "
        "every variant that passes its gates, plus the reference; [] writes none.",
    )
    select: SelectSpec = Field(
        default_factory=SelectSpec, description="How the recommended variant is chosen (see report.select.*)."
    )
    compare: CompareSpec = Field(
        default_factory=CompareSpec, description="Limits against a stored baseline report (optkit run --baseline)."
    )


class Recipe(BaseModel):
    """A whole optkit run: model, data, the baseline chain, variants, evaluation and report."""

    model_config = _STRICT
    name: str = Field(description="Report folder name: letters, digits, '-', '_' and '.'.")
    seed: int = Field(42, ge=0, le=SEED_MAX, description="Seed for splits, training and sampling.")
    model: ModelSpec
    data: DataSpec
    baseline: list[Step] = Field(
        default_factory=list, description="Torch steps producing the fp32 reference (usually one finetune)."
    )
    variants: dict[str, list[Step]] = Field(
        min_length=1, description="Named chains of steps, each applied after the baseline chain."
    )
    evaluate: EvaluateSpec = Field(default_factory=EvaluateSpec)
    report: ReportSpec = Field(default_factory=ReportSpec)

    @field_validator("name")
    @classmethod
    def _name_is_a_folder(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v):
            raise ValueError(f"{v!r} is not a safe folder name; use letters, digits, '-', '_' and '.'")
        return v

    @field_validator("baseline", "variants", mode="before")
    @classmethod
    def _normalise_steps(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {name: _normalise_chain(chain, f"variants.{name}") for name, chain in v.items()}
        return _normalise_chain(v, "baseline")

    @model_validator(mode="after")
    def _check_plan(self) -> Recipe:
        for name, chain in self.variants.items():
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
                raise ValueError(f"variant name {name!r}: use letters, digits, '-', '_' and '.'")
            if name == "baseline":
                raise ValueError("'baseline' is reserved for the baseline chain; rename the variant")
            if not chain:
                raise ValueError(f"variant {name!r} names no step; add at least one (e.g. '- export: {{}}')")
        _check_order("baseline", list(self.baseline), start_index=0)
        for name, chain in self.variants.items():
            _check_order(name, list(self.baseline) + list(chain), start_index=-len(self.baseline))
        for gate_name in self.report.gates:
            if gate_name != "*" and gate_name not in self.variants:
                raise ValueError(
                    f"report.gates names unknown variant {gate_name!r}{_closest(gate_name, self.variants)}"
                )
        for name in self.report.package or []:
            if name != "baseline" and name not in self.variants:
                raise ValueError(f"report.package names unknown variant {name!r}{_closest(name, self.variants)}")
        self._check_select()
        ref = self.evaluate.reference
        if ref is not None and ref not in self.variants:
            raise ValueError(f"evaluate.reference names unknown variant {ref!r}{_closest(ref, self.variants)}")
        self._check_skip()
        for name in self.variants:
            steps = [s.kind for s in self.chain(name) if s.uses_calibration]
            if steps and self.data.splits.calibration == 0:
                raise ValueError(
                    f"variant {name!r} needs calibration rows (its {steps[0]} step) but data.splits.calibration "
                    f"is 0; set it (e.g. 256)"
                )
        return self

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Recipe:  # type: ignore[override]
        """Validate against every pass registered by now (see ``_refresh_step_types``)."""
        _refresh_step_types()
        return super().model_validate(obj, **kwargs)

    def _check_skip(self) -> None:
        """Untimed variants exist, are not the reference, and carry no gate that needs their speed."""
        for name in self.evaluate.latency.skip:
            if name != "baseline" and name not in self.variants:
                raise ValueError(f"evaluate.latency.skip names unknown variant {name!r}{_closest(name, self.variants)}")
            if name == self.evaluate.reference:
                raise ValueError(
                    f"evaluate.latency.skip: {name!r} is evaluate.reference, which every speed-up is measured "
                    f"against; time it, or choose another reference"
                )
            for gate_name in (name, "*") if name != "baseline" else ():  # gates apply to variants only
                gate = self.report.gates.get(gate_name)
                if gate is not None and gate.min_speedup is not None:
                    raise ValueError(
                        f"report.gates.{gate_name}.min_speedup needs the speed of {name!r}, which "
                        f"evaluate.latency.skip leaves untimed; remove one of the two"
                    )

    def _check_select(self) -> None:
        select = self.report.select
        if select.shape is not None and select.shape not in self.evaluate.shapes:
            shapes = ", ".join(f"{{batch: {s.batch}, seq: {s.seq}}}" for s in self.evaluate.shapes)
            raise ValueError(f"report.select.shape is not one of evaluate.shapes ({shapes}); pick one of them")
        providers = {ort_provider_name(p): p for p in self.evaluate.providers}
        if select.provider is not None and ort_provider_name(select.provider) not in providers:
            raise ValueError(
                f"report.select.provider {select.provider!r} is not in evaluate.providers {self.evaluate.providers}"
            )
        metrics = get_task(self.model.task).metrics
        if select.metric is not None and select.metric not in metrics:
            raise ValueError(
                f"report.select.metric {select.metric!r} is not a metric of task {self.model.task!r}"
                f"{_closest(select.metric, metrics)}"
            )

    def chain(self, variant: str) -> list[Step]:
        """Full step list of a variant: the baseline chain followed by the variant's own steps."""
        if variant == "baseline":
            return list(self.baseline)
        return list(self.baseline) + list(self.variants[variant])


def _label_text(value: Any) -> Any:
    """``1`` and ``1.0`` both read as ``'1'``: pandas gives an integer column with gaps as floats."""
    if isinstance(value, bool):
        return str(value)  # as pandas writes a boolean column's values: 'True' / 'False'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value) if isinstance(value, int | float) else value


def _closest(word: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(options)}"


def _normalise_chain(chain: Any, where: str) -> Any:
    if chain is None:
        return []
    if not isinstance(chain, list):
        return chain  # pydantic reports the type error with the field path
    return [_normalise_step(step, f"{where}[{i}]") for i, step in enumerate(chain)]


def _normalise_step(step: Any, where: str) -> Any:
    if isinstance(step, str):
        step = {step: {}}
    if isinstance(step, dict) and "kind" not in step:
        if len(step) != 1:
            raise ValueError(
                f"{where}: a step is a mapping with exactly one key, the pass name "
                f"(e.g. '- quantize: {{mode: dynamic}}'); got keys {sorted(step)}"
            )
        ((kind, options),) = step.items()
        if kind not in (known := _step_classes()):
            raise ValueError(f"{where}: unknown pass {kind!r}{_closest(str(kind), known)}")
        options = {} if options is None else options
        if not isinstance(options, dict):
            raise ValueError(f"{where}: options of pass {kind!r} must be a mapping, got {options!r}")
        return {"kind": kind, **options}
    return step


def _check_order(name: str, chain: list[PassConfig], start_index: int) -> None:
    passes = list_passes()
    fmt = "torch"
    for i, step in enumerate(chain):
        kind = step.kind
        wants, gives = passes[kind].input_format, passes[kind].output_format
        if wants != fmt:
            where = (
                f"baseline[{i}]" if i + start_index < 0 or name == "baseline" else f"variants.{name}[{i + start_index}]"
            )
            into = _converter(passes, fmt, wants)
            if wants == "torch":
                done = next(s.kind for s in chain[:i] if passes[s.kind].output_format != "torch")
                raise ValueError(f"{where} ({kind}): a torch pass cannot follow {done!r}; move {kind!r} before {done}")
            raise ValueError(f"{where} ({kind}): needs an ONNX model; add '- {into}: {{}}' before it")
        fmt = gives


def _converter(passes: dict[str, Any], have: str, want: str) -> str:
    """The pass that turns a ``have`` model into a ``want`` one (export, for torch -> ONNX), for hints."""
    return next((k for k, p in passes.items() if (p.input_format, p.output_format) == (have, want)), "a conversion")


def _step_classes() -> dict[str, type[PassConfig]]:
    return {kind: spec.config_cls for kind, spec in list_passes().items()}


_BUILT = {"generation": -1}


def _refresh_step_types() -> None:
    """Give the recipe's step fields the discriminated union of every pass registered by now.

    Built on first use rather than at import, so a pass registered after ``import optkit.recipe``
    (a plugin, a test) is validated like a built-in one, with the same field paths in errors.
    """
    generation = catalogue_generation()
    if _BUILT["generation"] == generation:
        return
    union = Annotated[Union[tuple(_step_classes().values())], Field(discriminator="kind")]  # noqa: UP007
    # pydantic keeps resolved annotations on the fields; replacing them and forcing a rebuild is its
    # documented way to change a model's field types after the class exists.
    Recipe.model_fields["baseline"].annotation = list[union]  # type: ignore[valid-type]
    Recipe.model_fields["variants"].annotation = dict[str, list[union]]  # type: ignore[valid-type]
    Recipe.model_rebuild(force=True)
    _BUILT["generation"] = generation


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read and validate a recipe file.

    Example:
        >>> recipe = load_recipe("recipes/bert-int8.yaml")  # doctest: +SKIP
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"recipe file {str(path)!r} does not exist; check the path") from None
    except UnicodeDecodeError as e:
        raise RecipeError(f"recipe file {str(path)!r} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise RecipeError(f"recipe file {str(path)!r} cannot be read: {e.strerror}") from None
    try:
        _refuse_duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader), path)
        raw = yaml.safe_load(text)  # safe loader: a recipe never constructs Python objects
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise RecipeError(f"{path}: malformed YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise RecipeError(
            f"{path}: a recipe is a YAML mapping with name, model, data and variants; got {type(raw).__name__}"
        )
    return recipe_from_dict(raw, source=str(path))


def _refuse_duplicate_keys(node: yaml.Node | None, path: Path, where: str = "") -> None:
    """YAML keeps the last of two equal keys without a word, so a variant named twice would vanish."""
    if isinstance(node, yaml.MappingNode):
        first: dict[str, yaml.Mark] = {}
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else "<<"
            if name != "<<":  # a merge key ('<<: *defaults') may repeat by design
                if name in first:
                    a, b = first[name], key.start_mark
                    lines = (
                        f"line {a.line + 1} (columns {a.column + 1} and {b.column + 1})"
                        if a.line == b.line
                        else f"lines {a.line + 1} and {b.line + 1}"
                    )
                    inside = f" in {where}" if where else " at the top level"
                    raise RecipeError(
                        f"{path}: duplicate key {name!r}{inside} at {lines}; YAML would keep only the last one, "
                        f"silently. Rename or remove one"
                    )
                first[name] = key.start_mark
            _refuse_duplicate_keys(value, path, f"{where}.{name}" if where else name)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicate_keys(item, path, f"{where}[{i}]")


def recipe_from_dict(raw: dict[str, Any], source: str = "<recipe>") -> Recipe:
    try:
        return Recipe.model_validate(raw)
    except ValidationError as e:
        raise RecipeError(format_validation_error(e, source)) from None


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line per problem; the first line already names the file, the field and the fix."""
    problems = []
    for err in error.errors():
        loc = _format_loc(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            valid = _fields_at(err["loc"][:-1])
            bad = str(err["loc"][-1])
            close = difflib.get_close_matches(bad, valid, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(valid)}"
            msg = f"unknown key {bad!r}; {hint}"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif "input" in err and err["type"] not in ("value_error", "assertion_error"):
            got = repr(err["input"])
            msg = f"{msg} (got {got if len(got) <= 80 else got[:77] + '...'})"
        # Plan checks name their own place (variants.x[1] ...); don't repeat the outer field before it.
        own_place = not loc or msg.startswith((f"{loc}.", f"{loc}[", "variants.", "baseline"))
        problems.append(msg if own_place else f"{loc}: {msg}")
    if len(problems) == 1:
        return f"{source}: {problems[0]}"
    first = f"{source}: {problems[0]} (and {len(problems) - 1} more problem(s), all listed below)"
    return "\n".join([first, *(f"  - {p}" for p in problems)])


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _step_classes() and out.endswith("]"):
            out += f".{part}"
        else:
            out += f".{part}" if out else str(part)
    return out


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Names of the fields valid at ``loc`` (for 'did you mean' hints on unknown keys)."""
    ann: Any = Recipe
    for part in loc:
        origin = typing.get_origin(ann)
        if origin in (list, dict):  # this part is an index or a key: step into the element type
            ann = _unwrap(typing.get_args(ann)[-1])
        elif isinstance(part, str) and part in _step_classes() and not _is_model(ann):
            ann = _step_classes()[part]  # the discriminated step union, entered through its tag
        elif _is_model(ann) and str(part) in ann.model_fields:
            ann = _unwrap(ann.model_fields[str(part)].annotation)
        else:
            return []
    return [f for f in ann.model_fields if f != "kind"] if _is_model(ann) else []


def _is_model(ann: Any) -> bool:
    return isinstance(ann, type) and issubclass(ann, BaseModel)


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``X | None``; containers and the step union are kept for the walk."""
    while True:
        origin = typing.get_origin(annotation)
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if origin is Annotated or ((origin is Union or isinstance(annotation, types.UnionType)) and len(args) == 1):
            annotation = args[0]
        else:
            return annotation

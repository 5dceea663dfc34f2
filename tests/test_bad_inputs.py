"""Every kind of bad input the CLI can meet: exit code 2, one clear first line, never a traceback.

Each case builds its bad input from the tiny fixtures, runs ``optkit validate`` (or ``run``,
where the problem only shows when work would start) through click's CliRunner, and checks the
exit code, that no traceback was printed and that the first line names the file, field or path.
With ``OPTKIT_BAD_INPUT_TABLE=path.md`` set, the module writes the table of inputs, first lines
and exit codes to that file (``scripts/bad_input_table.sh``).
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from optkit.cli import cli
from optkit.passes.registry import list_passes

_ROWS: list[tuple[str, str, int]] = []
# what `optkit run` logs before it meets a problem in a step: its header and each step's start and end
_PROGRESS = re.compile(
    r"optkit run \S+ -> \S+|\S+\[\d+\] \w+ key [0-9a-f]{12} …|  \S+\[\d+\] \w+: (built|cached) in [\d.]+ s"
)


@dataclass
class Env:
    """What a case may use: a fresh folder, the tiny recipe, the tiny model and data, and monkeypatch."""

    tmp: Path
    recipe: dict[str, Any]
    model_dir: Path
    csv: Path
    monkeypatch: pytest.MonkeyPatch

    def write(self, data: dict[str, Any] | None = None, name: str = "recipe.yaml") -> Path:
        path = self.tmp / name
        path.write_text(yaml.safe_dump(self.recipe if data is None else data, sort_keys=False))
        return path

    def with_(self, dotted: str, value: Any) -> Path:
        """The tiny recipe with one value replaced (``a.b.0.c``); ``value=...`` deletes the key."""
        data = copy.deepcopy(self.recipe)
        *parents, last = dotted.split(".")
        node: Any = data
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        key: Any = int(last) if last.isdigit() else last
        if value is ...:
            del node[key]
        else:
            node[key] = value
        return self.write(data)

    def without_num_labels(self) -> Env:
        """The same inputs with model.num_labels unset, so the head is checked against the data alone."""
        recipe = copy.deepcopy(self.recipe)
        del recipe["model"]["num_labels"]
        return Env(self.tmp, recipe, self.model_dir, self.csv, self.monkeypatch)

    def model_copy(self) -> Path:
        out = self.tmp / "model"
        shutil.copytree(self.model_dir, out)
        return out

    def data_file(self, content: bytes, name: str = "data.csv") -> Path:
        path = self.tmp / name
        path.write_bytes(content)
        return path


Setup = Callable[[Env], list[str]]


def _validate(make: Callable[[Env], Path]) -> Setup:
    return lambda env: ["validate", str(make(env))]


def _run(make: Callable[[Env], Path]) -> Setup:
    return lambda env: ["run", str(make(env)), "--workspace", str(env.tmp / "ws"), "-o", str(env.tmp / "out")]


def _text(content: str | bytes) -> Callable[[Env], Path]:
    def make(env: Env) -> Path:
        path = env.tmp / "recipe.yaml"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return path

    return make


def _model(change: Callable[[Path], None]) -> Callable[[Env], Path]:
    def make(env: Env) -> Path:
        folder = env.model_copy()
        change(folder)
        return env.with_("model.source", str(folder))

    return make


def _data(content: bytes, **data: Any) -> Callable[[Env], Path]:
    def make(env: Env) -> Path:
        recipe = copy.deepcopy(env.recipe)
        recipe["data"] = {**recipe["data"], "source": str(env.data_file(content)), **data}
        return env.write(recipe)

    return make


def _truncate_weights(folder: Path) -> None:
    f = folder / "model.safetensors"
    f.write_bytes(f.read_bytes()[:2000])


class _Payload:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("touch PWNED",))


def _pickled_weights(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"weight": _Payload()}))


def _link_out(folder: Path) -> None:
    secret = folder.parent / "outside.txt"
    secret.write_text("not part of the model")
    (folder / "notes.txt").symlink_to(secret)


def _head(labels: list[str]) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        config["architectures"] = ["BertForSequenceClassification"]
        config["id2label"] = {str(i): name for i, name in enumerate(labels)}
        config["label2id"] = {name: i for i, name in enumerate(labels)}
        (folder / "config.json").write_text(json.dumps(config))

    return change


def _no_finetune_with_head(labels: list[str]) -> Callable[[Env], Path]:
    def make(env: Env) -> Path:
        folder = env.model_copy()
        _head(labels)(folder)
        recipe = copy.deepcopy(env.recipe)
        recipe["model"]["source"], recipe["baseline"] = str(folder), []
        return env.write(recipe)

    return make


def _shrink_vocab(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] = 20  # the tokenizer keeps its ~100 ids
    (folder / "config.json").write_text(json.dumps(config))


def _model_max_length_64(env: Env) -> Path:
    folder = env.model_copy()
    tok_config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**tok_config, "model_max_length": 64}))
    recipe = copy.deepcopy(env.recipe)
    recipe["model"]["source"] = str(folder)
    recipe["baseline"][0]["finetune"]["max_length"] = 100
    return env.write(recipe)


def _duplicated(*lines: str) -> Callable[[Env], Path]:
    """A recipe file whose first lines repeat a key; the rest is the valid tiny recipe minus those keys."""

    def make(env: Env) -> Path:
        top = {line.split(":")[0] for line in lines if not line.startswith(" ")}
        rest = {k: v for k, v in env.recipe.items() if k not in top}
        path = env.tmp / "recipe.yaml"
        path.write_text("".join(lines) + yaml.safe_dump(rest, sort_keys=False))
        return path

    return make


def _offline_hub(env: Env) -> Path:
    import huggingface_hub.constants as hc

    env.monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    env.monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    env.monkeypatch.setattr(hc, "HF_HUB_CACHE", str(env.tmp / "hub"))
    return env.with_("model.source", "some-org/some-model")


def _low_memory(env: Env) -> Path:
    import optkit.guards

    env.monkeypatch.setattr(optkit.guards, "available_memory", lambda: 64 * 2**10)  # as on a machine with 64 KB free
    return env.write()


def _in_1gb(make: Callable[[Env], Path]) -> Callable[[Env], Path]:
    """A load that fits the tiny model's 128 positions, on a machine with 1 GB free (simulated)."""

    def with_1gb(env: Env) -> Path:
        import optkit.guards

        env.monkeypatch.setattr(optkit.guards, "available_memory", lambda: 2**30)
        return make(env)

    return with_1gb


def _low_memory_calibration(env: Env) -> Path:
    import optkit.guards

    path = _no_finetune_with_head(["rotten", "fresh"])(env)
    env.monkeypatch.setattr(optkit.guards, "available_memory", lambda: 64 * 2**10)
    return path


def _full_disk(env: Env) -> Path:
    import collections

    import optkit.guards

    usage = collections.namedtuple("usage", "total used free")
    env.monkeypatch.setattr(optkit.guards.shutil, "disk_usage", lambda _: usage(10**9, 10**9 - 2**20, 2**20))
    return env.write()


def _corrupt_onnx_entry(env: Env) -> Path:
    """A cache entry whose model.onnx is garbage but whose manifest matches (a buggy writer, not a crash)."""
    from optkit.cache import ArtifactCache, cache_key
    from optkit.passes.registry import get_pass
    from optkit.recipe import recipe_from_dict
    from optkit.runner import _key_inputs
    from optkit.sources.data import load_splits
    from optkit.sources.model import resolve_model

    recipe = copy.deepcopy(env.recipe)
    recipe["baseline"] = []
    recipe["model"]["source"] = str(env.model_copy())
    _head(["rotten", "fresh"])(Path(recipe["model"]["source"]))
    recipe["variants"] = {"int8-dynamic": [{"export": {}}, {"quantize": {"mode": "dynamic"}}]}
    recipe["report"] = {}
    r = recipe_from_dict(recipe)
    splits = load_splits(r.data, r.seed)
    step = r.variants["int8-dynamic"][0]
    key = cache_key(_key_inputs(r, step, get_pass("export"), resolve_model(r.model), lambda: splits))

    def make(out: Path) -> dict[str, Any]:
        (out / "model.onnx").write_bytes(b"\x08\x07 this is not an ONNX protobuf")
        for f in env.model_dir.iterdir():
            if f.suffix in (".json", ".txt"):
                shutil.copy2(f, out / f.name)
        return {"format": "onnx", "pass_meta": {}}

    ArtifactCache(env.tmp / "ws" / "cache").build(key, make)
    return env.write(recipe)


# (id, what the input is, setup, regex the first line must match)
CASES: list[tuple[str, str, Setup, str]] = [
    (
        "recipe-missing",
        "recipe file does not exist",
        lambda env: ["validate", str(env.tmp / "nope.yaml")],
        r"recipe file '.*nope\.yaml' does not exist",
    ),
    (
        "yaml-unclosed",
        "malformed YAML: unclosed bracket",
        _validate(_text("name: [unclosed\nseed: 1\n")),
        r"recipe\.yaml: malformed YAML at line \d+, column \d+",
    ),
    (
        "yaml-bad-indent",
        "malformed YAML: bad indentation",
        _validate(_text("name: x\n  seed: 1\n bad: [\n")),
        r"recipe\.yaml: malformed YAML at line \d+, column \d+",
    ),
    (
        "yaml-python-tag",
        "YAML tag that would run code",
        _validate(_text("name: !!python/object/apply:os.system [ls]\n")),
        r"recipe\.yaml: malformed YAML at line 1",
    ),
    (
        "yaml-list",
        "YAML that is a list, not a mapping",
        _validate(_text("- a\n- b\n")),
        r"recipe\.yaml: a recipe is a YAML mapping",
    ),
    (
        "recipe-not-utf8",
        "recipe file is not UTF-8",
        _validate(_text(b"name: \xff\xfe\n")),
        r"recipe file '.*recipe\.yaml' is not UTF-8",
    ),
    (
        "unknown-top-key",
        "unknown top-level key 'variant'",
        _validate(lambda env: env.with_("variant", {})),
        r"recipe\.yaml: variant: unknown key 'variant'; did you mean 'variants'\?",
    ),
    (
        "unknown-nested-key",
        "unknown key evaluate.latency.runz",
        _validate(lambda env: env.with_("evaluate.latency.runz", 5)),
        r"recipe\.yaml: evaluate\.latency\.runz: unknown key 'runz'; did you mean 'runs'\?",
    ),
    (
        "missing-field",
        "required field data missing",
        _validate(lambda env: env.with_("data", ...)),
        r"recipe\.yaml: data: required field is missing",
    ),
    (
        "wrong-type",
        "runs: 'many' (not an integer)",
        _validate(lambda env: env.with_("evaluate.latency.runs", "many")),
        r"recipe\.yaml: evaluate\.latency\.runs: .*integer",
    ),
    (
        "out-of-range",
        "runs: 1 (minimum 5)",
        _validate(lambda env: env.with_("evaluate.latency.runs", 1)),
        r"recipe\.yaml: evaluate\.latency\.runs: runs must be 5 or more .*; got 1",
    ),
    (
        "fractions-over-1",
        "splits train 0.9 + eval 0.2",
        _validate(lambda env: env.with_("data.splits", {"train": 0.9, "eval": 0.2})),
        r"data\.splits: .*fractions exceed 1",
    ),
    (
        "unsafe-name",
        "name '../escape'",
        _validate(lambda env: env.with_("name", "../escape")),
        r"recipe\.yaml: name: .*not a safe folder name",
    ),
    (
        "unknown-pass",
        "pass 'quantise'",
        _validate(lambda env: env.with_("variants.int8-dynamic.1", {"quantise": {}})),
        r"recipe\.yaml: variants\.int8-dynamic\[1\]: unknown pass 'quantise'; did you mean 'quantize'\?",
    ),
    (
        "unknown-option",
        "quantize option 'per_chanel'",
        _validate(lambda env: env.with_("variants.int8-dynamic.1", {"quantize": {"per_chanel": True}})),
        r"variants\.int8-dynamic\[1\]\.quantize\.per_chanel: unknown key 'per_chanel'; did you mean 'per_channel'\?",
    ),
    (
        "bad-option-value",
        "quantize mode 'fast'",
        _validate(lambda env: env.with_("variants.int8-dynamic.1", {"quantize": {"mode": "fast"}})),
        r"variants\.int8-dynamic\[1\]\.quantize\.mode: .*'dynamic' or 'static'",
    ),
    (
        "static-only-option",
        "calibration option on a dynamic quantize",
        _validate(lambda env: env.with_("variants.int8-dynamic.1", {"quantize": {"calibration": "entropy"}})),
        r"variants\.int8-dynamic\[1\]\.quantize: calibration options are for mode: static",
    ),
    (
        "order-torch-after-export",
        "finetune after export",
        _validate(lambda env: env.with_("variants.int8-dynamic", [{"export": {}}, {"finetune": {}}])),
        r"recipe\.yaml: variants\.int8-dynamic\[1\] \(finetune\): a torch pass cannot follow 'export'",
    ),
    (
        "order-quantize-first",
        "quantize before export",
        _validate(lambda env: env.with_("variants.int8-dynamic", [{"quantize": {}}])),
        r"variants\.int8-dynamic\[0\] \(quantize\): needs an ONNX model; add '- export: \{\}' before it",
    ),
    (
        "empty-variant",
        "variant with no steps",
        _validate(lambda env: env.with_("variants.int8-dynamic", [])),
        r"variant 'int8-dynamic' names no step",
    ),
    (
        "gate-unknown-metric",
        "gate metric 'min_sped'",
        _validate(lambda env: env.with_("report.gates.int8-dynamic", {"min_sped": 1.2})),
        r"report\.gates\.int8-dynamic\.min_sped: unknown key 'min_sped'; did you mean 'min_speedup'\?",
    ),
    (
        "gate-unknown-variant",
        "gate for variant 'int8-dynamc'",
        _validate(lambda env: env.with_("report.gates", {"int8-dynamc": {"min_speedup": 1.1}})),
        r"unknown variant 'int8-dynamc'; did you mean 'int8-dynamic'\?",
    ),
    (
        "static-without-calibration",
        "static quantize, calibration: 0",
        _validate(lambda env: env.with_("data.splits.calibration", 0)),
        r"variant 'int8-static' needs calibration rows \(its quantize step\) but data\.splits\.calibration is 0",
    ),
    (
        "model-missing",
        "model path does not exist",
        _validate(lambda env: env.with_("model.source", "./no-model")),
        r"model\.source: local path './no-model' does not exist",
    ),
    (
        "model-not-a-model",
        "model folder without config.json",
        _validate(lambda env: env.with_("model.source", str(env.data_file(b"x", "notes.txt").parent))),
        r"model\.source .*is not a Hugging Face model folder \(no config\.json\)",
    ),
    (
        "model-truncated-weights",
        "model.safetensors cut to 2 KB",
        _validate(_model(_truncate_weights)),
        r"model\.source .*weights file 'model\.safetensors' is truncated or corrupt",
    ),
    (
        "model-pickle-code",
        "pytorch_model.bin whose pickle runs os.system",
        _validate(_model(_pickled_weights)),
        r"model\.source .*'pytorch_model\.bin' cannot be loaded as plain tensors",
    ),
    (
        "model-link-escape",
        "model folder file linking outside it",
        _validate(_model(_link_out)),
        r"model\.source .*'notes\.txt' points to .*outside the model folder",
    ),
    (
        "hub-offline",
        "hub id 'some-org/some-model' while offline",
        _validate(_offline_hub),
        r"model\.source: 'some-org/some-model' is not in the local hub cache and HF_HUB_OFFLINE=1 is set",
    ),
    (
        "package-escape",
        "package: path with '..'",
        _validate(lambda env: env.with_("model.source", "package:click/../../../../etc")),
        r"'package:click/\.\./\.\./\.\./\.\./etc': the path leaves the installed distribution's folder",
    ),
    (
        "package-not-installed",
        "package: of a distribution not installed",
        _validate(lambda env: env.with_("data.source", "package:no-such-dist-xyz/data.csv")),
        r"'package:no-such-dist-xyz/data\.csv': the distribution 'no-such-dist-xyz' is not installed",
    ),
    (
        "data-missing",
        "data file does not exist",
        _validate(lambda env: env.with_("data.source", "missing.csv")),
        r"data\.source: file 'missing\.csv' does not exist",
    ),
    ("data-empty", "data file of 0 bytes", _validate(_data(b"")), r"data\.source: '.*data\.csv' is empty"),
    (
        "data-header-only",
        "data file with only a header",
        _validate(_data(b"review,sentiment\n")),
        r"data\.source: .*data\.csv has no rows with text and a label",
    ),
    (
        "data-not-utf8",
        "data file in Latin-1",
        _validate(_data(b"review,sentiment\ncaf\xe9 cr\xe8me,fresh\n")),
        r"data\.source: '.*data\.csv' is not UTF-8",
    ),
    (
        "data-no-column",
        "data.label column 'stars' absent",
        _validate(lambda env: env.with_("data.label", "stars")),
        r"data\.label: column 'stars' is not in .*reviews\.csv \(columns: review, sentiment, extra\)",
    ),
    (
        "data-unknown-format",
        "data file named .weird",
        _validate(lambda env: env.with_("data.source", str(env.data_file(b"review,sentiment\n", "data.weird")))),
        r"data\.format: cannot tell the format of 'data\.weird'",
    ),
    (
        "labels-absent",
        "data.labels not in the column",
        _validate(lambda env: env.with_("data.labels", ["good", "bad"])),
        r"data\.labels: \['good', 'bad'\] never occur in column 'sentiment'",
    ),
    (
        "labels-vs-num-labels",
        "num_labels 3 for 2 labels",
        _validate(lambda env: env.with_("model.num_labels", 3)),
        r"model\.num_labels is 3 but data\.labels gives 2 classes",
    ),
    (
        "head-label-order",
        "model head labels in another order, no finetune",
        _validate(_no_finetune_with_head(["fresh", "rotten"])),
        r"data\.labels \['rotten', 'fresh'\] do not match the model head's labels \['fresh', 'rotten'\]",
    ),
    (
        "no-head-no-finetune",
        "encoder without a head, no finetune",
        _validate(lambda env: env.with_("baseline", [])),
        r"model\.source .* has no sequence-classification head",
    ),
    (
        "calibration-over-train",
        "calibration 500 rows, train 120",
        _validate(lambda env: env.with_("data.splits.calibration", 500)),
        r"data\.splits\.calibration: 500 rows asked, but the train split has only 120",
    ),
    (
        "calibration-samples-over-split",
        "calibration_samples 64 of a 16-row split",
        _validate(
            lambda env: env.with_("variants.int8-static.1", {"quantize": {"mode": "static", "calibration_samples": 64}})
        ),
        r"variants\.int8-static\[1\]\.quantize\.calibration_samples: 64 rows asked, but the calibration split has 16",
    ),
    (
        "shape-beyond-positions",
        "latency shape longer than the model's positions",
        _validate(lambda env: env.with_("evaluate.shapes", [{"batch": 1, "seq": 16}, {"batch": 1, "seq": 512}])),
        r"evaluate\.shapes\[1\]\.seq: 512 tokens is longer than the model takes \(config\.json "
        r"max_position_embeddings is 128\); use at most 128",
    ),
    (
        "shape-beyond-positions-run",
        "latency shape longer than the model's positions, run (nothing is built)",
        _run(lambda env: env.with_("evaluate.shapes", [{"batch": 1, "seq": 129}])),
        r"evaluate\.shapes\[0\]\.seq: 129 tokens is longer than the model takes .* use at most 128",
    ),
    (
        "max-length-beyond-positions",
        "data.max_length longer than the model's positions",
        _validate(lambda env: env.with_("data.max_length", 256)),
        r"data\.max_length: 256 tokens is longer than the model takes .* use at most 128",
    ),
    (
        "step-max-length-beyond-positions",
        "a fine-tune's max_length longer than the tokenizer's stated limit",
        _validate(_model_max_length_64),
        r"baseline\[0\]\.finetune\.max_length: 100 tokens is longer than the model takes \(tokenizer_config"
        r"\.json model_max_length is 64\); use at most 64",
    ),
    (
        "tokenizer-beyond-vocab",
        "tokenizer ids past the model's vocabulary",
        _validate(_model(_shrink_vocab)),
        r"model\.source '.*': its tokenizer gives token ids up to \d+ but the model's vocabulary has 20 entries",
    ),
    (
        "provider-not-a-provider",
        "evaluate.providers names 'gpu'",
        _validate(lambda env: env.with_("evaluate.providers", ["cpu", "gpu"])),
        r"recipe\.yaml: evaluate\.providers: 'gpu' is not an execution provider; did you mean 'cuda'\?",
    ),
    (
        "provider-typo",
        "evaluate.providers names 'openvno'",
        _validate(lambda env: env.with_("evaluate.providers", ["openvno"])),
        r"evaluate\.providers: 'openvno' is not an execution provider; did you mean 'openvino'\?",
    ),
    (
        "duplicate-top-key",
        "the key 'seed' twice at the top level",
        _validate(_duplicated("seed: 1\n", "name: tiny\n", "seed: 2\n")),
        r"recipe\.yaml: duplicate key 'seed' at the top level at lines 1 and 3; YAML would keep only the last",
    ),
    (
        "duplicate-variant",
        "the variant 'int8-dynamic' twice",
        _validate(_duplicated("variants:\n", "  int8-dynamic: [export]\n", "  int8-dynamic: [export, quantize]\n")),
        r"recipe\.yaml: duplicate key 'int8-dynamic' in variants at lines 2 and 3",
    ),
    (
        "duplicate-option",
        "a pass option twice in one step",
        _validate(_duplicated("variants:\n", "  q:\n", "    - quantize: {mode: dynamic, mode: static}\n")),
        r"recipe\.yaml: duplicate key 'mode' in variants\.q\[0\]\.quantize at line 3 \(columns 18 and 33\)",
    ),
    (
        "head-size",
        "a 3-class head used without a fine-tune on 2-class data",
        _validate(lambda env: _no_finetune_with_head(["rotten", "fresh", "plot"])(env.without_num_labels())),
        r"data\.labels: the data has 2 classes \['rotten', 'fresh'\] but the model's head has 3 outputs",
    ),
    (
        "memory-shape",
        "latency shape batch 4096 x seq 128 with 1 GB free (simulated)",
        _validate(_in_1gb(lambda env: env.with_("evaluate.shapes", [{"batch": 4096, "seq": 128}]))),
        r"evaluate\.shapes\[0\]: a batch 4096 x seq 128 forward pass needs about .* of memory, but .* is available",
    ),
    (
        "memory-training",
        "fine-tune with 64 KB of free memory (simulated)",
        _validate(_low_memory),
        r"baseline\[0\]\.finetune\.batch_size: training at batch 16 x 16 tokens needs about .* of memory",
    ),
    (
        "memory-calibration",
        "static calibration with 64 KB free (simulated), no fine-tune",
        _validate(_low_memory_calibration),
        r"variants\.int8-static\[1\]\.quantize\.calibration_samples: static calibration over 16 rows .* needs about",
    ),
    (
        "memory-distill",
        "distill at batch 4096 x 128 tokens with 1 GB free (simulated)",
        _validate(
            _in_1gb(
                lambda env: env.with_(
                    "variants.student",
                    [{"distill": {"student": {"layers": [0]}, "batch_size": 4096, "max_length": 128}}, {"export": {}}],
                )
            )
        ),
        r"variants\.student\[0\]\.distill\.batch_size: distillation at batch 4096 x 128 tokens needs about .* GB",
    ),
    (
        "memory-prune",
        "gradient-importance prune at batch 4096 x 128 tokens with 1 GB free (simulated)",
        _validate(
            _in_1gb(
                lambda env: env.with_(
                    "variants.pruned",
                    [{"prune": {"heads": 0.5, "recovery_batch_size": 4096, "max_length": 128}}, {"export": {}}],
                )
            )
        ),
        r"variants\.pruned\[0\]\.prune\.recovery_batch_size: pruning's backward passes at batch 4096 x 128",
    ),
    (
        "disk-full",
        "1 MB free disk (simulated), run",
        _run(_full_disk),
        r"baseline\[0\] finetune \(cache entry [0-9a-f]{12}\): needs about .* of disk space .* only 1.0 MB is free",
    ),
    (
        "onnx-corrupt",
        "cached model.onnx that is not ONNX (manifest matching), run",
        _run(_corrupt_onnx_entry),
        r"int8-dynamic\[1\] quantize: ",
    ),
]

if "prune" in list_passes():
    CASES.append(
        (
            "prune-bad-option",
            "prune option 'sparsty'",
            _validate(lambda env: env.with_("baseline", [{"finetune": {}}, {"prune": {"sparsty": 0.5}}])),
            r"baseline\[1\]\.prune\.sparsty: unknown key 'sparsty'",
        )
    )
if "distill" in list_passes():
    CASES.append(
        (
            "distill-after-export",
            "distill after export",
            _validate(
                lambda env: env.with_(
                    "variants.int8-dynamic", [{"export": {}}, {"distill": {"student": {"layers": [0]}}}]
                )
            ),
            r"variants\.int8-dynamic\[1\] \(distill\): a torch pass cannot follow 'export'",
        )
    )


@pytest.fixture(scope="module", autouse=True)
def _table() -> Any:
    yield
    target = os.environ.get("OPTKIT_BAD_INPUT_TABLE")
    if target and _ROWS:
        lines = ["| # | bad input | first line of the error | exit |", "|---|---|---|---|"]
        for i, (what, first, code) in enumerate(_ROWS, 1):
            lines.append(f"| {i} | {what} | `{first.replace('|', '/')}` | {code} |")
        Path(target).write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(("what", "setup", "first_line"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_a_clear_first_line(
    what: str,
    setup: Setup,
    first_line: str,
    recipe_dict: dict[str, Any],
    tiny_model_dir: Path,
    tiny_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    args = setup(Env(tmp_path, recipe_dict, tiny_model_dir, tiny_csv, monkeypatch))
    result = CliRunner().invoke(cli, args)
    output = result.output
    # the first line on stderr once the progress `run` logs as it goes is set aside (not any later error: line)
    first = next((line for line in result.stderr.splitlines() if line.strip() and not _PROGRESS.fullmatch(line)), "")
    _ROWS.append((what, re.sub(str(tmp_path), "<tmp>", first.removeprefix("error: ")), result.exit_code))
    assert result.exit_code == 2, output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in output
    assert first.startswith("error: ") and re.search(first_line, first), result.stderr
    assert not (tmp_path / "PWNED").exists()  # the pickle payload never ran


def test_the_readme_counts_the_bad_inputs_tried_here() -> None:
    """README's "the N bad inputs the test suite tries" is this list's length: add a case, update the README."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    claimed = re.search(r"the (\d+) bad inputs the test suite tries", readme)
    assert claimed is not None
    assert len({c[0] for c in CASES}) == len(CASES) == int(claimed.group(1))

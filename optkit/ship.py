"""Deployable packages: the model a run built, with everything needed to load it and what it was measured at.

A package is one folder per variant: the model (``model.onnx``, or the torch folder), its tokenizer,
``config.json`` with the label names, and ``optkit-package.json`` (where it came from, its metrics and
latency from the run with the machine they came from, its inputs, and the sha256 of every file). It
loads with Optimum's ``ORTModelFor<Task>``, a transformers pipeline, or plain onnxruntime.

A package is staged in a hidden folder beside its destination and renamed into place, so a kill
leaves the previous package or none, never half of one; the checksums catch a file changed later.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from optkit import __version__
from optkit.artifact import ONNX_FILE
from optkit.cache import META, file_sha256, sweep_stale_temps
from optkit.errors import DataError, PackageError
from optkit.evaluate.predict import create_session, onnx_forward, onnx_logits, torch_forward, torch_logits
from optkit.interrupts import check
from optkit.tasks import get_task
from optkit.testhooks import pause_point

__all__ = [
    "PACKAGE_FILE",
    "PACKAGE_FORMAT",
    "default_packages",
    "install_package",
    "predict_package",
    "read_package",
    "remove_stale",
    "stage_package",
    "write_package",
]

PACKAGE_FILE = "optkit-package.json"
PACKAGE_FORMAT = 1


def default_packages(report: dict[str, Any]) -> list[str]:
    """``report.package`` if the recipe names variants, else every variant that passes its gates, plus the
    reference (the fp32 model the speed-ups are measured against, kept to fall back on)."""
    chosen = report["recipe"]["report"].get("package")
    if chosen is not None:
        return list(chosen)
    failed = {g["variant"] for g in report.get("gates", []) if not g["passed"]}
    names = [n for n in report["variants"] if n != "baseline" and n not in failed]
    ref = report.get("reference")
    if ref and ref not in names:
        names.insert(0, ref)
    return names


def write_package(
    report: dict[str, Any], variant: str, model_dir: Path, dest: Path, *, report_dir: Path | None = None
) -> Path:
    """Write ``variant`` of ``report``, built in ``model_dir``, as a package at ``dest``; returns ``dest``.

    ``report_dir`` (where the report lives) is recorded so the package points back to its figures.
    """
    staged = stage_package(report, variant, model_dir, dest, report_dir=report_dir)
    try:
        install_package(staged, dest)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return dest


def stage_package(
    report: dict[str, Any], variant: str, model_dir: Path, dest: Path, *, report_dir: Path | None = None
) -> Path:
    """Build the whole package in a hidden folder beside ``dest`` and return it; ``install_package`` puts it
    in place. A run stages every package first and installs them with its report, so a kill while copying
    leaves the previous report and packages as they were."""
    v = report["variants"][variant]
    if not model_dir.is_dir():
        raise PackageError(
            f"{variant}: its model {str(model_dir)!r} is not in the cache (deleted, or another --workspace); "
            f"run the recipe again to rebuild it"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(dest.parent)  # what a killed run staged
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for f in sorted(model_dir.iterdir()):
            if f.is_file() and f.name != META:
                shutil.copy2(f, tmp / f.name)
        _name_labels(tmp / "config.json", report["data"].get("labels") or [])
        files = {f.name: {"bytes": f.stat().st_size, "sha256": file_sha256(f)} for f in sorted(tmp.iterdir())}
        manifest = _manifest(report, variant, v, files, tmp, report_dir)
        (tmp / PACKAGE_FILE).write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
        for f in tmp.iterdir():
            with open(f, "rb+") as fh:
                os.fsync(fh.fileno())
        check()  # a Ctrl-C during the copy stops here
        pause_point("package")  # test hook: staged, not installed
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def install_package(staged: Path, dest: Path) -> None:
    """Put a staged package at ``dest``; an older package there is moved aside first, then deleted."""
    trash = _trash(dest)
    if dest.exists():
        os.replace(dest, trash)
    try:
        os.replace(staged, dest)
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def _trash(folder: Path) -> Path:
    """Where a folder is moved before it is deleted: a reader never sees it half-deleted, and a kill
    mid-delete leaves a name ``sweep_stale_temps`` removes."""
    return folder.parent / f".trash-{folder.name}-{uuid.uuid4().hex[:8]}"


def read_package(folder: Path, *, verify: bool = True) -> dict[str, Any]:
    """The package's manifest; with ``verify`` every file's size and sha256 are checked against it."""
    manifest_file = folder / PACKAGE_FILE
    if not manifest_file.is_file():
        raise PackageError(
            f"{str(folder)!r} is not an optkit package (no {PACKAGE_FILE}); give a folder from "
            f"reports/<recipe>/packages/, or make one with 'optkit package'"
        )
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        files = manifest["files"]
        fmt = manifest["package_format"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise PackageError(f"{str(manifest_file)!r} is unreadable ({e}); re-create the package") from None
    if fmt != PACKAGE_FORMAT:
        raise PackageError(f"{str(manifest_file)!r}: package format {fmt}, this optkit reads {PACKAGE_FORMAT}")
    if verify:
        for name, want in files.items():
            f = folder / name
            if not f.is_file():
                raise PackageError(f"{str(folder)!r}: {name} is missing; re-create the package")
            if f.stat().st_size != want["bytes"] or file_sha256(f) != want["sha256"]:
                raise PackageError(
                    f"{str(f)!r} differs from the sha256 in {PACKAGE_FILE}; it was changed after packaging. "
                    f"Re-create the package (optkit package)"
                )
    return manifest


def predict_package(
    folder: Path, texts: Sequence[str], *, batch_size: int = 32, verify: bool = True
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run a package on ``texts`` with the tokenisation evaluation used; returns (manifest, one result per text).

    For an image task each "text" is an image path, read and preprocessed by the package's image processor.
    """
    if not texts:
        raise PackageError("no input: give texts on the command line or --file F (one text per line)")
    manifest = read_package(folder, verify=verify)
    task = get_task(manifest["task"]["name"])
    labels, max_length = manifest["labels"], manifest["max_length"]
    tokenizer = task.input_encoder(folder)
    if task.structured:  # words, or a question and its context: the task tokenises and decodes
        items = [task.item_from_text(t, f"input {i + 1}") for i, t in enumerate(texts)]
        if manifest["format"] == "onnx":
            forward = onnx_forward(create_session(folder / ONNX_FILE))
        else:
            model, _ = task.load_model(folder, labels, trust_remote_code=False, for_training=False, where=str(folder))
            forward = torch_forward(model)
        outputs = task.infer(forward, tokenizer, items, max_length, batch_size)
    else:
        inputs = _pairs(texts) if manifest.get("text_pair") else list(texts)
        if manifest["format"] == "onnx":
            outputs = onnx_logits(create_session(folder / ONNX_FILE), tokenizer, inputs, max_length, batch_size)
        else:
            model, _ = task.load_model(folder, labels, trust_remote_code=False, for_training=False, where=str(folder))
            outputs = torch_logits(model, tokenizer, inputs, max_length, batch_size)
    task.check_outputs(outputs, labels, manifest["variant"])
    return manifest, task.readable(outputs, labels)


def _pairs(texts: Sequence[str]) -> list[Any]:
    """'TEXT<TAB>PAIR' lines as (text, pair): the package was trained on pairs (data.text_pair), and one text
    alone would be scored with no second segment, a silently different input."""
    out: list[Any] = []
    for i, t in enumerate(texts, 1):
        first, tab, second = t.partition("\t")
        if not tab or not first.strip() or not second.strip():
            raise DataError(
                f"input {i}: this package classifies text pairs (data.text_pair); give the two texts separated "
                f"by a tab, e.g. $'the first text\\tthe second text'"
            )
        out.append((first, second))
    return out


def _manifest(
    report: dict[str, Any],
    variant: str,
    v: dict[str, Any],
    files: dict[str, Any],
    folder: Path,
    report_dir: Path | None,
) -> dict[str, Any]:
    task = report.get("task") or {"primary_metric": "accuracy", "metrics": [{"name": "accuracy"}]}
    primary = task["primary_metric"]
    change = (f"{primary}_delta", f"{primary}_delta_ci95", f"{primary}_delta_verdict", "mcnemar_p", "worst_class")
    metrics = [m["name"] for m in task["metrics"]] + list(change)
    env = report["environment"]
    return {
        "package_format": PACKAGE_FORMAT,
        "optkit_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "variant": variant,
        "format": v["format"],
        "runtime": v["runtime"],
        "task": report.get("task") or {"name": "text-classification", "primary_metric": "accuracy"},
        "labels": report["data"].get("labels") or [],
        "max_length": report["recipe"]["data"]["max_length"],
        # a pair classifier reads two texts a row (token type ids 0 and 1): predict needs both
        "text_pair": report["recipe"]["data"].get("text_pair"),
        "recipe": {
            "name": report["recipe"]["name"],
            "path": report["recipe_path"],
            "sha256": report["recipe_sha256"],
            "seed": report["seeds"]["recipe"],
        },
        "report": str(report_dir) if report_dir else None,
        "artifact_key": v["artifact_key"],
        "chain": v["chain"],
        "metrics": {
            **{m: v[m] for m in metrics if m in v},
            "agreement_with_baseline": v.get("agreement_with_baseline"),
            "eval_rows": v.get("eval_rows"),
            "data_fingerprint": report["data"].get("fingerprint"),
        },
        "latency": [_latency(r) for r in report["results"] if r["variant"] == variant],
        "measured_on": {
            "cpu": env["cpu"],
            "cpus_available": env.get("cpus_available"),
            "platform": env.get("platform"),
            "libraries": env.get("libraries"),
            "onnxruntime_providers": env.get("onnxruntime_providers"),
        },
        "inputs": _io(folder, v["format"]),
        "files": files,
    }


def _latency(row: dict[str, Any]) -> dict[str, Any]:
    """One timing row as the package records it: where, at what shape, with how many threads, and the figures."""
    out: dict[str, Any] = {
        "provider": row["provider"],
        "batch": row["batch"],
        "seq": row["seq"],
        "status": row["status"],
        "threads": row.get("threads"),
    }
    lat = row.get("latency")
    if row["status"] == "measured" and lat:
        out.update({k: lat[k] for k in ("p50_ms", "p90_ms", "p50_ci95_ms", "runs", "throughput_per_s") if k in lat})
        out["speedup_vs_reference"] = row.get("speedup_vs_reference")
        if row.get("memory"):
            out["peak_rss_mb"] = row["memory"].get("peak_rss_mb")
    return out


def _io(folder: Path, fmt: str) -> list[dict[str, Any]]:
    """Input names, element types and shapes ('batch', 'sequence' for the free axes) as the model declares them."""
    if fmt != "onnx" and (folder / "preprocessor_config.json").is_file():  # an image model: its processor's size
        from optkit.evaluate.inputs import image_size_near

        size = image_size_near(folder)
        if size is not None:
            return [{"name": "pixel_values", "type": "float", "shape": ["batch", *size]}]
    if fmt != "onnx":
        from transformers import AutoTokenizer

        names = AutoTokenizer.from_pretrained(folder).model_input_names
        return [{"name": n, "type": "int64", "shape": ["batch", "sequence"]} for n in names]
    import onnx

    model = onnx.load(str(folder / ONNX_FILE), load_external_data=False)
    out = []
    for inp in model.graph.input:
        t = inp.type.tensor_type
        dims = [d.dim_param or d.dim_value for d in t.shape.dim]
        out.append({"name": inp.name, "type": onnx.TensorProto.DataType.Name(t.elem_type).lower(), "shape": dims})
    return out


def _name_labels(config_file: Path, labels: list[str]) -> None:
    """config.json carries the data's label names, so a pipeline prints 'fresh', not 'LABEL_1'."""
    if not labels or not config_file.is_file():
        return
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["id2label"] = {str(i): name for i, name in enumerate(labels)}
    config["label2id"] = {name: i for i, name in enumerate(labels)}
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def remove_stale(packages_dir: Path, keep: Sequence[str], log: Callable[[str], None]) -> None:
    """Drop packages of variants this run did not package (failed a gate, or left the recipe): a stale
    package would carry figures the new report no longer supports."""
    if not packages_dir.is_dir():
        return
    for d in sorted(packages_dir.iterdir()):
        if d.is_dir() and not d.name.startswith(".") and d.name not in keep and (d / PACKAGE_FILE).exists():
            trash = _trash(d)
            os.replace(d, trash)
            shutil.rmtree(trash, ignore_errors=True)
            log(f"  removed the stale package {str(d)!r} (not packaged by this run)")

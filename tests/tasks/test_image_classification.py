"""image-classification: image sources, the processor as encoder, bad input, and the chain on a tiny ViT."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from optkit.errors import DataError, RecipeError
from optkit.recipe import Shape, recipe_from_dict, shape_label
from optkit.sources.data import load_splits
from optkit.tasks import get_task

SIDE = 16


def _image(value: int, rng: np.random.Generator, side: int = SIDE) -> Any:
    from PIL import Image

    return Image.fromarray(np.clip(rng.normal(value, 30, (side, side)), 0, 255).astype(np.uint8), mode="L")


def _write_vit(out: Path, *, do_resize: bool = True) -> Path:
    from transformers import ViTConfig, ViTImageProcessor

    out.mkdir(parents=True, exist_ok=True)
    ViTConfig(
        image_size=SIDE,
        patch_size=8,
        num_channels=1,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        architectures=["ViTForImageClassification"],
    ).save_pretrained(out)
    size = {"height": SIDE, "width": SIDE}
    ViTImageProcessor(do_resize=do_resize, size=size, image_mean=[0.5], image_std=[0.5]).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 16-wide ViT config (no weights) for 16x16 grey images: built from config by the task."""
    return _write_vit(tmp_path_factory.mktemp("vit"))


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ImageFolder tree: 'dark' and 'bright' grey images, 40 each (separable by mean brightness)."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for name, value in (("dark", 60), ("bright", 190)):
        (root / name).mkdir()
        for i in range(40):
            _image(value, rng).save(root / name / f"{i:02d}.png")
    return root


def _recipe(model: Path, data: Path, **data_extra: Any) -> dict[str, Any]:
    return {
        "name": "tiny-vision",
        "seed": 3,
        "model": {"source": str(model), "task": "image-classification", "from_config": True},
        "data": {"source": str(data), "splits": {"train": 50, "eval": 30, "calibration": 8}, **data_extra},
        "baseline": [{"finetune": {"epochs": 4, "learning_rate": 3e-3, "batch_size": 16}}],
        "variants": {
            "fp32-onnx": [{"export": {}}],
            "int8-dynamic": [{"export": {}}, {"quantize": {"mode": "dynamic"}}],
            "int8-static": [{"export": {}}, {"quantize": {"mode": "static"}}],
            "student": [{"distill": {"student": {"layers": [1]}, "epochs": 1, "batch_size": 16}}, {"export": {}}],
            "pruned": [{"prune": {"method": "structured", "heads": 0.25, "ffn": 0.25}}, {"export": {}}],
        },
        "evaluate": {
            "providers": ["cpu"],
            "shapes": [{"batch": 1, "height": SIDE, "width": SIDE}],
            "latency": {"warmup": 1, "runs": 5, "threads": 1},
            "memory": False,
        },
        "report": {"formats": ["json", "md", "html"]},
    }


# --- sources -----------------------------------------------------------------------------------------


def _spec(source: Path | str, **extra: Any) -> Any:
    return recipe_from_dict(
        {
            "name": "x",
            "model": {"source": "m", "task": "image-classification"},
            "data": {"source": str(source), "splits": {"train": 0.5, "eval": 0.5, "calibration": 2}, **extra},
            "baseline": [],
            "variants": {"v": [{"export": {}}]},
        }
    ).data


def test_an_image_folder_reads_one_class_per_sub_folder_and_splits_stratified(image_folder: Path) -> None:
    splits = load_splits(_spec(image_folder), seed=1, task="image-classification")
    assert splits.label_names == ["bright", "dark"]
    assert len(splits.train) == 40 and len(splits.eval) == 40
    assert sorted(splits.eval.labels).count(0) == 20  # stratified: half of each class
    assert all(Path(ref).is_file() for ref in splits.train.texts)


def test_a_csv_of_relative_paths_and_labels_is_read_against_its_own_folder(image_folder: Path, tmp_path: Path) -> None:
    table = image_folder / "labels.csv"
    with table.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "kind"])
        for p in sorted(image_folder.rglob("*.png")):
            w.writerow([p.relative_to(image_folder).as_posix(), p.parent.name])
    splits = load_splits(_spec(table, image="file", label="kind"), seed=1, task="image-classification")
    assert len(splits.train) + len(splits.eval) == 80 and splits.label_names == ["bright", "dark"]
    table.unlink()


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_idx_files_in_a_folder_and_numpy_arrays_read_as_the_same_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (30, 8, 8), dtype=np.uint8)
    labels = np.arange(30) % 3
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "y.npy", labels)
    np.savez(tmp_path / "xy.npz", image=images, label=labels)
    from optkit.sources.images import load_image

    for spec in (
        _spec(tmp_path, format="idx"),
        _spec(tmp_path / "x.npy", label_source=str(tmp_path / "y.npy")),
        _spec(tmp_path / "xy.npz"),
    ):
        splits = load_splits(spec, seed=0, task="image-classification")
        assert splits.label_names == ["0", "1", "2"]
        ref, label = splits.eval.texts[0], splits.eval.labels[0]
        index = int(ref.rpartition("#")[2])
        assert np.array_equal(np.asarray(load_image(ref)), images[index]) and label == labels[index]


# --- bad input -------------------------------------------------------------------------------------------


def test_a_class_folder_without_images_is_refused_naming_it(image_folder: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "tree"
    shutil.copytree(image_folder, root)
    (root / "empty").mkdir()
    (root / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"class folder .*empty.* has no images"):
        load_splits(_spec(root), seed=0, task="image-classification")


def test_a_label_file_naming_missing_images_is_refused_with_the_row(image_folder: Path, tmp_path: Path) -> None:
    table = tmp_path / "labels.csv"
    table.write_text(f"image,label\n{image_folder / 'dark' / '00.png'},dark\ngone/never.png,bright\n")
    with pytest.raises(DataError, match=r"data\.image: .* 1 image file\(s\) that do not exist, the first 'gone/never"):
        load_splits(_spec(table), seed=0, task="image-classification")


def test_a_truncated_idx_file_is_refused(tmp_path: Path) -> None:
    _write_idx(tmp_path / "a-images-idx3-ubyte.gz", np.zeros((4, 8, 8)))
    _write_idx(tmp_path / "a-labels-idx1-ubyte.gz", np.zeros(4))
    raw = gzip.decompress((tmp_path / "a-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "a-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(DataError, match="truncated"):
        load_splits(_spec(tmp_path), seed=0, task="image-classification")


def test_an_unreadable_image_is_named_when_it_is_encoded(vit_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    encoder = get_task("image-classification").input_encoder(vit_dir)
    with pytest.raises(DataError, match=r"broken\.png' is not a readable image"):
        encoder([str(bad)], return_tensors="np")


def test_mixed_sizes_are_refused_when_the_processor_does_not_resize(tmp_path: Path) -> None:
    model = _write_vit(tmp_path / "m", do_resize=False)
    rng = np.random.default_rng(0)
    _image(100, rng).save(tmp_path / "a.png")
    _image(100, rng, side=20).save(tmp_path / "b.png")
    encoder = get_task("image-classification").input_encoder(model)
    assert encoder([str(tmp_path / "a.png")], return_tensors="np")["pixel_values"].shape == (1, 1, SIDE, SIDE)
    with pytest.raises(DataError, match=r"b\.png' is 20x20 but the model takes 16x16 .* does not resize"):
        encoder([str(tmp_path / "a.png"), str(tmp_path / "b.png")], return_tensors="np")


def test_text_shapes_on_an_image_model_are_refused_before_any_work(
    vit_dir: Path, image_folder: Path, write_recipe: Any
) -> None:
    from optkit.api import validate_recipe

    data = _recipe(vit_dir, image_folder)
    data["evaluate"]["shapes"] = [{"batch": 1, "seq": 128}]
    with pytest.raises(RecipeError, match=r"evaluate\.shapes\[0\]: an image model's shape is \{batch, height"):
        validate_recipe(write_recipe(data))
    data["evaluate"]["shapes"] = [{"batch": 1, "height": 32, "width": 32}]
    with pytest.raises(RecipeError, match=r"32x32 is not the 16x16 input"):
        validate_recipe(write_recipe(data))


# --- shapes, encoder, augmentation -----------------------------------------------------------------------


def test_image_shapes_key_by_pixels_and_text_shapes_dump_as_before() -> None:
    image = Shape(batch=2, height=28, width=32)
    assert image.seq == 28 * 32 and image.label == "b2×28×32" == shape_label(image.model_dump())
    assert Shape(batch=1, seq=128).model_dump() == {"batch": 1, "seq": 128}
    with pytest.raises(ValueError, match="both height and width"):
        Shape(batch=1, seq=4, height=2)


def test_augmentations_are_seeded_and_change_the_pixels(vit_dir: Path, image_folder: Path) -> None:
    task = get_task("image-classification")
    refs = [str(p) for p in sorted((image_folder / "dark").glob("*.png"))[:8]]
    plain = task.input_encoder(vit_dir)
    augment = {"hflip": True, "crop_padding": 2, "rotate": 10.0, "brightness": 0.2}
    a = task.training_encoder(plain, augment, 5, "t")(refs, return_tensors="np")["pixel_values"]
    b = task.training_encoder(plain, augment, 5, "t")(refs, return_tensors="np")["pixel_values"]
    c = task.training_encoder(plain, augment, 6, "t")(refs, return_tensors="np")["pixel_values"]
    base = plain(refs, return_tensors="np")["pixel_values"]
    assert np.array_equal(a, b) and not np.array_equal(a, c) and not np.array_equal(a, base)
    with pytest.raises(RecipeError, match="augment"):
        get_task("text-classification").training_encoder(plain, augment, 5, "baseline[0].finetune")


# --- the chain -----------------------------------------------------------------------------------------------


def test_the_whole_chain_runs_on_a_tiny_vit_built_from_config(
    vit_dir: Path, image_folder: Path, tmp_path: Path, write_recipe: Any
) -> None:
    """Fine-tune from random init, export (gate), int8 dynamic and static, KD student, head/FFN pruning."""
    from optkit.api import run_recipe

    outcome = run_recipe(write_recipe(_recipe(vit_dir, image_folder)), output=tmp_path / "r", workspace=tmp_path / "w")
    report = json.loads((tmp_path / "r" / "tiny-vision" / "report.json").read_text())
    variants = report["variants"]
    assert variants["baseline"]["accuracy"] >= 0.9  # dark vs bright is easy once trained
    for name in ("int8-dynamic", "int8-static", "student", "pruned"):
        assert variants[name]["agreement_with_baseline"] >= 0.8, name
    assert variants["student"]["structure"]["layers"] == 1
    assert variants["pruned"]["structure"]["heads"] < 4 and variants["pruned"]["structure"]["ffn"] < 32
    assert report["task"]["name"] == "image-classification"
    rows = [r for r in report["results"] if r["status"] == "measured"]
    assert rows and all((r["height"], r["width"], r["seq"]) == (SIDE, SIDE, SIDE * SIDE) for r in rows)
    md = (tmp_path / "r" / "tiny-vision" / "report.md").read_text()
    html = (tmp_path / "r" / "tiny-vision" / "report.html").read_text()
    assert "p50 b1×16×16 (ms)" in md and "b1×16×16" in html and "macro" in md.lower()
    assert any("built from" in n and "random weights" in n for n in report["notes"])
    art = tmp_path / "r" / "tiny-vision" / "packages" / "int8-dynamic"
    assert (art / "preprocessor_config.json").is_file() or any(art.rglob("preprocessor_config.json"))
    assert outcome is not None


def test_bench_times_an_image_model_with_pixels_at_its_configured_size(vit_dir: Path, tmp_path: Path) -> None:
    from optkit.bench import bench_model
    from optkit.recipe import LatencySpec
    from optkit.tasks.image_classification import _with_head

    model = _with_head(vit_dir, ["a", "b"], False, False, lambda _m: None)
    folder = tmp_path / "onnx"
    folder.mkdir()
    from optkit.passes.onnx_export import _export_example

    encoder = get_task("image-classification").input_encoder(vit_dir)
    _export_example(model, get_task("image-classification").export_example(model, encoder), folder / "model.onnx", 17)
    model.config.save_pretrained(folder)
    encoder.save_pretrained(folder)
    lat = LatencySpec(warmup=1, runs=5, threads=1)
    report = bench_model(folder / "model.onnx", shapes=[Shape(batch=2, seq=128)], latency=lat, memory=False)
    row = report["results"][0]
    assert row["status"] == "measured" and (row["batch"], row["height"], row["width"]) == (2, SIDE, SIDE)


def test_a_student_from_config_needs_its_folder_and_dumps_as_before_without_it() -> None:
    from optkit.passes.distill import StudentSpec

    with pytest.raises(ValueError, match=r"student\.from_config needs student\.model"):
        StudentSpec(layers=[0], from_config=True)
    assert "from_config" not in StudentSpec(layers=[0]).model_dump()
    assert StudentSpec(model="narrow-vit", from_config=True).model_dump()["from_config"] is True


def test_the_cli_exits_2_naming_the_empty_class_folder(
    vit_dir: Path, image_folder: Path, tmp_path: Path, write_recipe: Any
) -> None:
    import shutil

    from click.testing import CliRunner

    from optkit.cli import cli

    root = tmp_path / "tree"
    shutil.copytree(image_folder, root)
    (root / "shoes").mkdir()
    result = CliRunner().invoke(cli, ["validate", str(write_recipe(_recipe(vit_dir, root)))])
    assert result.exit_code == 2
    assert "class folder" in result.output and "shoes" in result.output and "add images or remove" in result.output

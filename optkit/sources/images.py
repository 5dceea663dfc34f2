"""Image data sources: an ImageFolder tree, a table of image paths, or packed arrays (IDX, NumPy).

Every source becomes the same two columns that text data has, so splitting, stratifying and
fingerprinting stay one code path: an *image reference* per row (a file path, or ``FILE#INDEX``
for an image inside a packed file) and its label. Pixels are read only when a batch needs them
(``load_image``), with Pillow; a packed file is decoded once per process and kept in memory.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optkit.errors import DataError
from optkit.sources.package import PACKAGE_PREFIX, resolve_package_path

if TYPE_CHECKING:
    from optkit.recipe import DataSpec

__all__ = ["IMAGE_SUFFIXES", "image_format", "load_image", "read_image_table"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
_PACKED_SEP = "#"  # "FILE#INDEX": image INDEX of a packed file (IDX, .npy, .npz)
_TABLES = ("csv", "tsv", "jsonl", "parquet")
# IDX element types (the third magic byte) -> numpy dtype, big-endian as the format stores them
_IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def image_format(spec: DataSpec) -> str:
    """``data.format`` for an image task: the recipe's, or what the source's name says."""
    if spec.format != "auto":
        return spec.format
    path = _local(spec.source)
    if path.is_dir():
        return "idx" if _idx_pairs(path) else "imagefolder"
    name = path.name.lower()
    if "idx" in name and "ubyte" in name:
        return "idx"
    stem = name.removesuffix(".gz")
    for suffix, fmt in ((".npy", "npy"), (".npz", "npz"), (".csv", "csv"), (".tsv", "tsv"), (".jsonl", "jsonl")):
        if stem.endswith(suffix):
            return fmt
    if stem.endswith(".json"):
        return "jsonl"
    if stem.endswith(".parquet"):
        return "parquet"
    raise DataError(
        f"data.format: cannot tell how {spec.source!r} holds images from its name; set data.format to "
        f"imagefolder, csv, jsonl, idx, npy or npz"
    )


def read_image_table(spec: DataSpec) -> tuple[Any, str, str]:
    """(DataFrame of image reference + label, content hash, origin) for an image data source.

    The frame's columns are ``spec.text`` (the references) and ``spec.label``, what ``load_splits``
    reads for any task.
    """
    fmt = image_format(spec)
    path = _local(spec.source)
    if fmt == "imagefolder":
        refs, labels, digest = _image_folder(path, spec.source)
    elif fmt in ("idx", "npy", "npz"):
        refs, labels, digest = _packed(path, spec, fmt)
    elif fmt in _TABLES:
        refs, labels, digest = _path_table(spec, fmt)
    else:
        raise DataError(f"data.format {fmt!r} holds no images; use imagefolder, csv, jsonl, idx, npy or npz")
    import pandas as pd

    frame = pd.DataFrame({spec.text: refs, spec.label: labels})
    return frame, digest, str(path)


def load_image(ref: str) -> Any:
    """The Pillow image a reference names; an unreadable file is a ``DataError`` naming it."""
    from PIL import Image, UnidentifiedImageError

    if _PACKED_SEP in ref and not Path(ref).is_file():
        file, _, index = ref.rpartition(_PACKED_SEP)
        array = _packed_array(file)
        pixels = array[int(index)]
        if pixels.dtype != "uint8":  # floats in [0, 1] (a common .npy convention) or wider integers
            scale = 255.0 if pixels.max() <= 1.0 else 1.0
            pixels = (pixels * scale).clip(0, 255).astype("uint8")
        if pixels.ndim == 3 and pixels.shape[0] in (1, 3) and pixels.shape[-1] not in (1, 3):
            pixels = pixels.transpose(1, 2, 0)  # channels first -> last
        if pixels.ndim == 3 and pixels.shape[-1] == 1:
            pixels = pixels[..., 0]
        return Image.fromarray(pixels)
    try:
        with Image.open(ref) as img:
            img.load()
            return img
    except FileNotFoundError:
        raise DataError(f"data.source: image {ref!r} does not exist; fix the path or remove the row") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(
            f"data.source: image {ref!r} is not a readable image ({type(e).__name__}: {e}); replace or delete the file"
        ) from None


def _local(source: str) -> Path:
    path = resolve_package_path(source, DataError) if source.startswith(PACKAGE_PREFIX) else Path(source).expanduser()
    if not path.exists():
        raise DataError(f"data.source: {source!r} does not exist; check the path")
    return path


def _image_folder(root: Path, source: str) -> tuple[list[str], list[str], str]:
    """``root/CLASS/IMAGE`` (the ImageFolder convention): one class per sub-folder, sorted."""
    if not root.is_dir():
        raise DataError(f"data.source: {source!r} is not a folder; an imagefolder source is a folder of class folders")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(
            f"data.source: {source!r} has no class folders; put each class's images in a sub-folder named after it"
        )
    refs: list[str] = []
    labels: list[str] = []
    h = hashlib.sha256()
    for folder in classes:
        files = sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(
                f"data.source: class folder {str(folder)!r} has no images ({', '.join(IMAGE_SUFFIXES)}); "
                f"add images or remove the folder"
            )
        for f in files:
            refs.append(str(f))
            labels.append(folder.name)
            h.update(f"{f.relative_to(root).as_posix()}\0".encode())
            h.update(f.read_bytes())
    return refs, labels, h.hexdigest()


def _path_table(spec: DataSpec, fmt: str) -> tuple[list[str], list[str], str]:
    """A CSV/TSV/JSONL/Parquet table with an image-path column (relative to the table's folder) and a label."""
    from optkit.sources.data import read_table

    frame, digest, where = read_table(spec.model_copy(update={"format": fmt}))
    for col, role in ((spec.image, "image"), (spec.label, "label")):
        if col not in frame.columns:
            raise DataError(
                f"data.{role}: column {col!r} is not in {where} (columns: {', '.join(map(str, frame.columns))}); "
                f"set data.{role} to one of them"
            )
    frame = frame.dropna(subset=[spec.image, spec.label])
    base = Path(where).parent
    refs, missing = [], []
    for row, value in zip(frame.index, frame[spec.image].astype(str), strict=True):
        path = Path(value).expanduser()
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            missing.append((row, value))
        refs.append(str(path))
    if missing:
        row, value = missing[0]
        raise DataError(
            f"data.image: {where} names {len(missing)} image file(s) that do not exist, the first {value!r} "
            f"(row {row + 2}, resolved against {str(base)!r}); fix the paths or remove those rows"
        )
    return refs, frame[spec.label].tolist(), digest


def _packed(path: Path, spec: DataSpec, fmt: str) -> tuple[list[str], list[str], str]:
    """IDX (MNIST-style) or NumPy files: images and labels as arrays, one reference per image."""
    import numpy as np

    if fmt == "idx" and path.is_dir():
        pairs = _idx_pairs(path)
        if not pairs:
            raise DataError(
                f"data.source: folder {spec.source!r} has no '*-images-idx3-ubyte' files with matching "
                f"'*-labels-idx1-ubyte' ones; point data.source at an images file and data.label_source at its labels"
            )
    elif fmt == "npz":
        pairs = [(path, path)]
    else:
        if spec.label_source is None:
            raise DataError(
                f"data.label_source: {fmt} images in {spec.source!r} need their labels file; "
                f"set data.label_source to it (same number of entries, one per image)"
            )
        pairs = [(path, _local(spec.label_source))]
    refs: list[str] = []
    labels: list[str] = []
    h = hashlib.sha256()
    for images_file, labels_file in pairs:
        images = _packed_array(str(images_file), spec.image if fmt == "npz" else None)
        targets = _npz_member(str(labels_file), spec.label) if fmt == "npz" else _packed_array(str(labels_file))
        if images.ndim not in (3, 4):
            raise DataError(
                f"data.source: {str(images_file)!r} holds an array of shape {images.shape}; images need "
                f"(count, height, width) or (count, height, width, channels)"
            )
        if targets.ndim != 1 or len(targets) != len(images):
            raise DataError(
                f"data.label_source: {str(labels_file)!r} holds {targets.shape} labels for {len(images)} images in "
                f"{str(images_file)!r}; it needs one label per image"
            )
        key = f"{images_file}{_PACKED_SEP}{spec.image}" if fmt == "npz" else str(images_file)
        refs += [f"{key}{_PACKED_SEP}{i}" for i in range(len(images))]
        labels += [str(x) for x in np.asarray(targets).tolist()]
        for f in dict.fromkeys((images_file, labels_file)):
            h.update(Path(f).read_bytes())
    return refs, labels, h.hexdigest()


def _idx_pairs(folder: Path) -> list[tuple[Path, Path]]:
    """(images, labels) IDX files side by side in a folder, e.g. train-images-idx3-ubyte.gz + train-labels-..."""
    pairs = []
    for images in sorted(folder.glob("*-images-idx3-ubyte*")):
        labels = folder / images.name.replace("-images-idx3-", "-labels-idx1-")
        if labels.is_file():
            pairs.append((images, labels))
    return pairs


@functools.lru_cache(maxsize=16)
def _packed_array(file: str, member: str | None = None) -> Any:
    """A whole packed file as one numpy array, decoded once per process (a 70,000-image set is 55 MB)."""
    import numpy as np

    if _PACKED_SEP in file and not Path(file).is_file():  # "x.npz#images": an array inside an .npz
        file, _, member = file.rpartition(_PACKED_SEP)
    path = Path(file)
    name = path.name.lower()
    try:
        if name.endswith((".npz", ".npz.gz")):
            return _npz_member(file, member or "image")
        if name.endswith(".npy"):
            return np.load(path, allow_pickle=False)
        return _read_idx(path)
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"data.source: {file!r} could not be read ({type(e).__name__}: {e})") from None


def _npz_member(file: str, member: str) -> Any:
    import numpy as np

    with np.load(file, allow_pickle=False) as archive:
        if member not in archive.files:
            raise DataError(
                f"data.image/data.label: {file!r} has no array {member!r} (arrays: {', '.join(archive.files)}); "
                f"set data.image and data.label to the names of its image and label arrays"
            )
        return archive[member]


def _read_idx(path: Path) -> Any:
    """An IDX file (the format of MNIST and Fashion-MNIST), optionally gzipped, as a numpy array."""
    import numpy as np

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataError(f"data.source: {str(path)!r} is not an IDX file (bad magic number); set data.format")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_IDX_TYPES[data[2]])
    offset = 4 + 4 * ndim
    count = int(np.prod(dims))
    if len(data) - offset != count * dtype.itemsize:
        raise DataError(
            f"data.source: {str(path)!r} is truncated: its header promises {dims} values, the file holds "
            f"{(len(data) - offset) // dtype.itemsize}"
        )
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(dims)

"""``image-classification``: one image in, one class out (ViT, ResNet, ConvNeXt, MobileViT, ...).

Targets, metrics, agreement and per-class tables are a text classifier's (top-1 accuracy and
macro-F1); what differs is the input. A row is an image reference (see ``optkit.sources.images``);
the model's own image processor (``preprocessor_config.json``, saved with every artifact) resizes
and normalises it, wrapped in ``ImageEncoder`` so every place that feeds a model calls it the way
it calls a tokenizer. A model folder without weights (``model.from_config``) is built from its
config with seeded random weights, for the baseline to train.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optkit.errors import DataError, EvaluationError, RecipeError
from optkit.tasks import register_task
from optkit.tasks.hf import label_maps, load_error, quiet_transformers, require_head
from optkit.tasks.text_classification import TextClassification

if TYPE_CHECKING:
    from optkit.recipe import Recipe
    from optkit.sources.data import Splits

__all__ = ["ImageClassification", "ImageEncoder", "model_image_size"]

_WEIGHTS = ("*.safetensors", "*.bin")


@register_task
class ImageClassification(TextClassification):
    name = "image-classification"
    export_name = "image-classification"
    auto_model = "AutoModelForImageClassification"
    input_kind = "image"

    @property
    def data_identity(self) -> dict[str, Any]:
        return {"task": self.name}

    def check_model(self, recipe: Recipe, config: dict[str, Any], splits: Splits, head_pass: str | None) -> None:
        """The head (as for text), a model built from config is trained, and the shapes fit the model's input."""
        if recipe.model.from_config and head_pass is not None:
            raise RecipeError(
                f"model.from_config: {recipe.model.source!r} is built from its config with random weights, and the "
                f"baseline has no step that trains it; add '- {head_pass}: {{}}' to the baseline"
            )
        if not recipe.model.from_config:
            super().check_model(recipe, config, splits, head_pass)
        size = model_image_size(config, _processor_config(Path(_source_dir(recipe))))
        for i, shape in enumerate(recipe.evaluate.shapes):
            if not shape.is_image:
                raise RecipeError(
                    f"evaluate.shapes[{i}]: an image model's shape is {{batch, height, width}}, not seq; "
                    f"use {{batch: {shape.batch}, height: {size[1]}, width: {size[2]}}}"
                )
            if (shape.height, shape.width) != size[1:]:
                raise RecipeError(
                    f"evaluate.shapes[{i}]: {shape.height}x{shape.width} is not the {size[1]}x{size[2]} input the "
                    f"model's image processor makes and its ONNX export takes; use height: {size[1]}, width: {size[2]}"
                )

    def _check_head(self, recipe: Recipe, config: dict[str, Any], head_pass: str) -> None:
        require_head(recipe, config, "ForImageClassification", "image-classification", head_pass)
        super()._check_head(recipe, {**config, "architectures": ["ForSequenceClassification"]}, head_pass)

    def load_model(
        self,
        path: Path,
        names: Sequence[str],
        *,
        trust_remote_code: bool,
        for_training: bool,
        where: str,
        log: Callable[[str], None] = print,
    ) -> tuple[Any, Any]:
        from transformers import AutoModelForImageClassification

        error = load_error(for_training)
        has_weights = any(any(Path(path).glob(p)) for p in _WEIGHTS)
        try:
            if for_training:
                model = _with_head(Path(path), list(names), trust_remote_code, has_weights, log)
            elif not has_weights:
                raise error(f"{where}: {str(path)!r} holds no weights (*.safetensors or *.bin) to evaluate")
            else:
                model = AutoModelForImageClassification.from_pretrained(path, trust_remote_code=trust_remote_code)
        except (OSError, ValueError, KeyError) as e:
            raise error(f"{where}: could not load {str(path)!r} as an image classifier: {e}") from e
        encoder = ImageEncoder.load(Path(path), model.config, error)
        return (model if for_training else model.eval()), encoder

    def input_encoder(self, path: Path) -> Any:
        from transformers import AutoConfig

        return ImageEncoder.load(Path(path), AutoConfig.from_pretrained(path), EvaluationError)

    def training_encoder(self, encoder: Any, augment: dict[str, Any] | None, seed: int, where: str) -> Any:
        return encoder.with_augment(augment, seed) if augment else encoder

    def export_example(self, model: Any, encoder: Any) -> tuple[list[str], tuple[Any, ...], dict[str, Any]]:
        """One ``pixel_values`` input at the processor's size, batch dynamic (a ViT's size is fixed by its
        position embeddings; every image is resized to it anyway)."""
        import torch

        channels, height, width = encoder.input_size
        example = torch.randn(2, channels, height, width, generator=torch.Generator().manual_seed(0))
        return ["pixel_values"], (example,), {"pixel_values": {0: "batch"}, "logits": {0: "batch"}}


class ImageEncoder:
    """An image processor called like a tokenizer: image references in, ``pixel_values`` out.

    Asked for no tensors (the length query of length-bucketed batching), it answers one "token" per
    image: every image costs the same after resizing, so there is nothing to bucket.
    """

    def __init__(
        self, processor: Any, input_size: tuple[int, int, int], augment: dict[str, Any] | None = None, seed: int = 0
    ) -> None:
        import numpy as np

        self.processor, self.input_size, self.augment = processor, input_size, augment or {}
        self._rng = np.random.default_rng(seed)

    @classmethod
    def load(cls, path: Path, config: Any, error: type[Exception] = EvaluationError) -> ImageEncoder:
        from transformers import AutoImageProcessor

        if not (path / "preprocessor_config.json").is_file():
            raise error(
                f"{str(path)!r} has no preprocessor_config.json: an image model needs its image processor "
                f"(resize, normalise) saved beside it; add one (AutoImageProcessor.save_pretrained)"
            )
        try:
            # the fast processors need torchvision, which optkit does not install; asking for the slow one
            # explicitly also keeps transformers from warning about the choice on every load
            processor = AutoImageProcessor.from_pretrained(path, use_fast=False)
        except (OSError, ValueError, KeyError) as e:
            raise error(f"{str(path / 'preprocessor_config.json')!r} could not be loaded: {e}") from e
        size = model_image_size(config.to_dict(), processor.to_dict())
        return cls(processor, size)

    def with_augment(self, augment: dict[str, Any], seed: int) -> ImageEncoder:
        return ImageEncoder(self.processor, self.input_size, augment, seed)

    def save_pretrained(self, folder: Path) -> None:
        self.processor.save_pretrained(folder)

    def __call__(self, refs: Sequence[str], return_tensors: str | None = None, **_tokenizer_options: Any) -> Any:
        """``pixel_values`` (numpy or torch) for ``refs``; tokenizer options (padding, max_length) do not apply."""
        if return_tensors is None:
            return {"input_ids": [[0]] * len(refs)}
        from optkit.sources.images import load_image

        mode = "L" if self.input_size[0] == 1 else "RGB"
        images = [load_image(ref).convert(mode) for ref in refs]
        if self.augment:
            images = [_augmented(img, self.augment, self._rng) for img in images]
        self._check_sizes(images, refs)
        import numpy as np

        arrays = [np.asarray(img)[..., None] if mode == "L" else np.asarray(img) for img in images]
        out = self.processor(arrays, return_tensors=return_tensors, input_data_format="channels_last")
        pixels = out["pixel_values"]
        if tuple(pixels.shape[1:]) != self.input_size:
            raise DataError(
                f"image {refs[0]!r} became {tuple(pixels.shape[1:])} after the image processor, but the model takes "
                f"{self.input_size} (channels, height, width); set the processor's size in preprocessor_config.json"
            )
        return {"pixel_values": pixels}

    def _check_sizes(self, images: list[Any], refs: Sequence[str]) -> None:
        """Without resizing, every image must already be the model's size: name the first that is not."""
        if getattr(self.processor, "do_resize", True):
            return
        want = (self.input_size[2], self.input_size[1])  # PIL sizes are (width, height)
        for img, ref in zip(images, refs, strict=True):
            if img.size != want:
                raise DataError(
                    f"image {ref!r} is {img.size[0]}x{img.size[1]} but the model takes {want[0]}x{want[1]} and its "
                    f"image processor does not resize (do_resize: false); resize the images, or set do_resize: true "
                    f"and size in preprocessor_config.json"
                )


def model_image_size(config: dict[str, Any], processor: dict[str, Any]) -> tuple[int, int, int]:
    """(channels, height, width) the model takes: channels from its config, size from its processor
    (crop size if it crops, else its resize target), else the config's ``image_size``."""
    channels = int(config.get("num_channels") or 3)
    size: Any = None
    if processor.get("do_center_crop") and processor.get("crop_size"):
        size = processor["crop_size"]
    elif processor.get("do_resize", True) and processor.get("size"):
        size = processor["size"]
    if isinstance(size, dict) and "height" in size and "width" in size:
        return channels, int(size["height"]), int(size["width"])
    if isinstance(size, dict) and "shortest_edge" in size and not config.get("image_size"):
        edge = int(size["shortest_edge"])
        return channels, edge, edge
    side = config.get("image_size") or (size.get("shortest_edge") if isinstance(size, dict) else size) or 224
    side = side if isinstance(side, (list, tuple)) else (side, side)
    return channels, int(side[0]), int(side[1])


def _processor_config(path: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads((path / "preprocessor_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _source_dir(recipe: Recipe) -> str:
    from optkit.sources.package import PACKAGE_PREFIX, resolve_package_path

    source = recipe.model.source
    return str(resolve_package_path(source, RecipeError)) if source.startswith(PACKAGE_PREFIX) else source


def _augmented(img: Any, augment: dict[str, Any], rng: Any) -> Any:
    """One random draw of the switched-on augmentations (flip, shifted crop, rotation, brightness)."""
    from PIL import ImageEnhance, ImageOps

    if augment.get("hflip") and rng.random() < 0.5:
        img = ImageOps.mirror(img)
    pad = int(augment.get("crop_padding") or 0)
    if pad:
        w, h = img.size
        padded = ImageOps.expand(img, border=pad, fill=0)
        x, y = (int(v) for v in rng.integers(0, 2 * pad + 1, size=2))
        img = padded.crop((x, y, x + w, y + h))
    degrees = float(augment.get("rotate") or 0)
    if degrees:
        img = img.rotate(float(rng.uniform(-degrees, degrees)), fillcolor=0)
    brightness = float(augment.get("brightness") or 0)
    if brightness:
        img = ImageEnhance.Brightness(img).enhance(float(rng.uniform(1 - brightness, 1 + brightness)))
    return img


def _with_head(path: Path, names: list[str], trust_remote_code: bool, has_weights: bool, log: Callable) -> Any:
    """The model with a head of ``len(names)`` outputs; built from its config (seeded by the caller) without weights."""
    from transformers import AutoConfig, AutoModelForImageClassification

    labels = label_maps(names)
    if not has_weights:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **labels)
        model = AutoModelForImageClassification.from_config(config, trust_remote_code=trust_remote_code)
        params = sum(p.numel() for p in model.parameters())
        log(
            f"  [yellow]note[/]: no pretrained weights in {str(path)!r}: built {type(model).__name__} from its "
            f"config ({params / 1e6:.2f}M parameters, random init); it is trained from scratch"
        )
        model.config.optkit_from_config = True
        return model
    with quiet_transformers():  # "newly initialized classifier" is expected before fine-tuning
        return AutoModelForImageClassification.from_pretrained(
            path, ignore_mismatched_sizes=True, trust_remote_code=trust_remote_code, **labels
        )

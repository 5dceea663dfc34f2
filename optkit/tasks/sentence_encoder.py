"""A transformer encoder with sentence-transformers' pooling on top: one vector per text.

The pooling is read from the model folder the way sentence-transformers reads it (``modules.json``
names the modules; ``1_Pooling/config.json`` says how token vectors are pooled; a ``Normalize``
module L2-normalises). The pooled, normalised vector is what the module returns as ``.logits``, so
every optkit path that runs a model (evaluation, export validation, teacher outputs) sees the
sentence embedding, and the exported ONNX graph contains the pooling: a deployment needs no
pooling code of its own. Saving writes the same files back, so a distilled student stays a
sentence-transformers model that sentence-transformers itself can load.

Imported only by ``feature_extraction.load_model`` (it imports torch at module level).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

__all__ = ["POOLING_MODES", "Pooling", "SentenceEncoder", "read_pooling"]

# sentence-transformers' Pooling config keys, in its order; optkit supports these four.
POOLING_MODES = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
}
_ST = "sentence_transformers.models."
_SUPPORTED_MODULES = {f"{_ST}Transformer", f"{_ST}Pooling", f"{_ST}Normalize"}


@dataclass(frozen=True)
class Pooling:
    """How token vectors become one sentence vector, and where that was read from."""

    mode: str  # one of POOLING_MODES' values
    normalize: bool
    source: str  # the file that said so, or why the default was used


def read_pooling(folder: Path) -> Pooling:
    """The folder's pooling as sentence-transformers would apply it.

    Without ``modules.json`` the folder is a plain transformers encoder: mean pooling and L2
    normalisation (what sentence-transformers does for such a model, plus the normalisation that
    makes the cosine a dot product) and ``source`` says it is a default. A module optkit cannot
    reproduce (a ``Dense`` projection, say) is a ``ValueError`` naming it: silently dropping it would
    give vectors of another space.
    """
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return Pooling("mean", True, "default (no modules.json): mean pooling, L2-normalised")
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        types = [str(m["type"]) for m in modules]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{str(modules_file)!r} is not a sentence-transformers module list: {e}") from None
    unknown = [t for t in types if t not in _SUPPORTED_MODULES]
    if unknown:
        raise ValueError(
            f"{str(modules_file)!r} lists {unknown}; optkit reproduces only Transformer, Pooling and Normalize "
            f"modules, so these embeddings would differ from sentence-transformers'"
        )
    pooling = next((m for m in modules if m["type"] == f"{_ST}Pooling"), None)
    normalize = f"{_ST}Normalize" in types
    if pooling is None:
        return Pooling("mean", normalize, f"{modules_file.name} (no Pooling module: mean)")
    config_file = folder / str(pooling.get("path") or "") / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"the Pooling module's config {str(config_file)!r} could not be read: {e}") from None
    on = [mode for key, mode in POOLING_MODES.items() if config.get(key)]
    others = [k for k, v in config.items() if k.startswith("pooling_mode") and v and k not in POOLING_MODES]
    if len(on) != 1 or others:
        raise ValueError(
            f"{str(config_file)!r} turns on pooling modes {on + others}; optkit supports exactly one of "
            f"{sorted(POOLING_MODES)}"
        )
    return Pooling(on[0], normalize, f"{config_file.parent.name}/config.json + {modules_file.name}")


def pool(hidden: Any, mask: Any, mode: str) -> Any:
    """Token vectors (batch x seq x dim) and the attention mask to one vector per row, as sentence-transformers."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return hidden.masked_fill(m == 0, -1e9).max(1).values
    summed, count = (hidden * m).sum(1), m.sum(1).clamp(min=1e-9)
    return summed / (count.sqrt() if mode == "mean_sqrt_len" else count)


class SentenceEncoder(torch.nn.Module):
    """``encoder`` (a transformers ``AutoModel``) followed by ``pooling``; forward returns ``.logits``."""

    def __init__(self, encoder: Any, pooling: Pooling) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling

    @property
    def config(self) -> Any:
        return self.encoder.config

    @property
    def base_model(self) -> Any:
        """The encoder, where model surgery (layer selection, head removal) looks for its layers."""
        return self.encoder.base_model

    def forward(
        self,
        input_ids: Any,
        attention_mask: Any,
        token_type_ids: Any = None,
        labels: Any = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> Any:
        """``labels`` is accepted and ignored: an embedding model has no targets of its own to learn."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        out = self.encoder(**kwargs, output_hidden_states=output_hidden_states, output_attentions=output_attentions)
        vectors = pool(out.last_hidden_state, attention_mask, self.pooling.mode)
        if self.pooling.normalize:
            vectors = torch.nn.functional.normalize(vectors, p=2, dim=-1)
        return SimpleNamespace(logits=vectors, loss=None, hidden_states=out.hidden_states, attentions=out.attentions)

    def save_pretrained(self, out_dir: Path | str, **kwargs: Any) -> None:
        """The encoder's HF files plus sentence-transformers' module list and pooling config."""
        out = Path(out_dir)
        self.encoder.save_pretrained(out, **kwargs)
        write_pooling(out, self.pooling, int(self.encoder.config.hidden_size))


def write_pooling(out: Path, pooling: Pooling, dim: int) -> None:
    """``modules.json`` and ``1_Pooling/config.json`` as sentence-transformers writes them."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": f"{_ST}Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": f"{_ST}Pooling"},
    ]
    if pooling.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": f"{_ST}Normalize"})
    config: dict[str, Any] = {"word_embedding_dimension": dim}
    config |= {key: mode == pooling.mode for key, mode in POOLING_MODES.items()}
    (out / "1_Pooling").mkdir(parents=True, exist_ok=True)
    (out / "1_Pooling" / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (out / "modules.json").write_text(json.dumps(modules, indent=2) + "\n", encoding="utf-8")

"""What a model is made of: parameters, non-zero parameters, layers, heads and FFN width.

Compression claims are checked against these counts, read from the weights themselves (not
from the recipe), so a prune that silently did nothing shows up as such in the report.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["describe_folder", "describe_model", "describe_tensors"]

_ENCODER_MARKERS = (".encoder.layer.", "encoder.layer.", ".transformer.layer.")


def describe_tensors(named: Iterable[tuple[str, Any]], config: dict[str, Any]) -> dict[str, Any]:
    """Counts over ``(name, tensor)`` pairs plus the shape facts the config holds.

    ``encoder_weight_sparsity`` is the share of zeros in the encoder's weight matrices, the
    tensors that unstructured and N:M pruning act on; biases, LayerNorms and embeddings are
    left out so that 50% pruning reads as 50%.
    """
    params = nonzero = enc_params = enc_w = enc_w_zero = 0
    for name, t in named:
        numel = int(t.numel())
        nz = int((t != 0).sum())
        params += numel
        nonzero += nz
        if any(m in name or name.startswith(m.lstrip(".")) for m in _ENCODER_MARKERS):
            enc_params += numel
            if t.dim() == 2:
                enc_w += numel
                enc_w_zero += numel - nz
    layers = int(config.get("num_hidden_layers") or config.get("n_layers") or 0)
    n_heads = int(config.get("num_attention_heads") or config.get("n_heads") or 0)
    pruned = {int(k): v for k, v in (config.get("pruned_heads") or {}).items()}
    heads = [n_heads - len(pruned.get(i, [])) for i in range(layers)]
    return {
        "params": params,
        "nonzero_params": nonzero,
        "encoder_params": enc_params,
        "encoder_weight_sparsity": enc_w_zero / enc_w if enc_w else 0.0,
        "layers": layers,
        "heads": sum(heads),
        "heads_per_layer": heads,
        "ffn": int(config.get("intermediate_size") or config.get("hidden_dim") or 0),
        "hidden": int(config.get("hidden_size") or config.get("dim") or 0),
    }


def describe_model(model: Any) -> dict[str, Any]:
    return describe_tensors(model.state_dict().items(), model.config.to_dict())


def describe_folder(path: Path) -> dict[str, Any] | None:
    """Describe a saved HF folder from its safetensors and config.json; None when it has neither."""
    from safetensors import safe_open

    files = sorted(path.glob("*.safetensors"))
    cfg_file = path / "config.json"
    if not files or not cfg_file.is_file():
        return None
    config = json.loads(cfg_file.read_text())

    def tensors() -> Iterable[tuple[str, Any]]:
        for f in files:
            with safe_open(str(f), framework="pt") as st:
                for name in st.keys():  # noqa: SIM118 - safe_open is not a mapping
                    yield name, st.get_tensor(name)

    return describe_tensors(tensors(), config)

"""Which node groups of a model lose the most when quantised: the ranking ``tune`` excludes from.

Choice of measure: each group is quantised **alone** (every other quantisable node kept in float) and
the change of the logits on calibration rows is measured against the float model. The cheaper-looking
alternative, quantising all groups but one, costs the same number of quantisations (one per group)
and measures what removing one group's error recovers from the total, which is muddied by the other
groups' errors; "alone" isolates each group and is what the issue asks for. One quantisation plus a
forward pass over ``rows`` rows per group; for MiniLM-L6 that is 14 groups (6 layers x attention/FFN,
embeddings, head). The ranking is cached by the caller.

Groups follow the exported module names (``/bert/encoder/layer.3/attention/self/query/MatMul``):
a layer's attention block, its feed-forward block, the embeddings, and everything else as the head.
A graph without such names falls back to one group per node.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["group_nodes", "logit_change", "quantisable_nodes", "rank_groups"]

_LAYER = re.compile(r"(?:^|/)(?:layer|layers|h|block)\.(\d+)/(attention|attn|self_attn|intermediate|output|mlp|ffn)")
_DEFAULT_DYNAMIC_OPS = ("MatMul", "Gather", "Gemm", "Attention", "EmbedLayerNormalization", "LSTM")


def quantisable_nodes(model_path: Any, op_types: Sequence[str] | None, mode: str) -> list[tuple[str, str]]:
    """(node name, op type) of the nodes a quantisation with ``op_types`` would touch."""
    import onnx

    wanted = set(op_types or (_DEFAULT_DYNAMIC_OPS if mode == "dynamic" else ("MatMul",)))
    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [(n.name, n.op_type) for n in graph.node if n.op_type in wanted and n.name]


def group_of(name: str) -> str:
    """The node group of one node name: ``layer.3/attention``, ``layer.3/ffn``, ``embeddings`` or ``head``."""
    m = _LAYER.search(name)
    if m:
        block = "attention" if m.group(2) in ("attention", "attn", "self_attn") else "ffn"
        # BERT's attention output projection lives under layer.N/attention/output, caught above;
        # layer.N/output is the FFN's second projection.
        return f"layer.{int(m.group(1))}/{block}"
    if "embedding" in name.lower():
        return "embeddings"
    return "head" if "/" in name else name


def group_nodes(nodes: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """Node names by group, groups in graph order."""
    groups: dict[str, list[str]] = {}
    for name, _ in nodes:
        groups.setdefault(group_of(name), []).append(name)
    return groups


def logit_change(reference: Any, logits: Any) -> dict[str, float]:
    """How far ``logits`` moved from ``reference``: mean |difference|, and the share of flipped predictions."""
    import numpy as np

    diff = np.abs(np.asarray(logits, dtype=np.float64) - np.asarray(reference, dtype=np.float64))
    flips = float((np.asarray(logits).argmax(-1) != np.asarray(reference).argmax(-1)).mean()) if len(diff) else 0.0
    return {"mean_abs_logit_diff": float(diff.mean()) if diff.size else 0.0, "flip_rate": flips}


def rank_groups(
    groups: dict[str, list[str]],
    quantise_only: Callable[[list[str]], Any],
    reference: Any,
) -> list[dict[str, Any]]:
    """Quantise each group alone (``quantise_only(nodes) -> logits``) and sort, most sensitive first.

    Sorted by flipped predictions first (what accuracy sees), then by mean logit change (finer).
    """
    scores = []
    for group, nodes in groups.items():
        change = logit_change(reference, quantise_only(nodes))
        scores.append({"group": group, "nodes": list(nodes), **change})
    scores.sort(key=lambda s: (-s["flip_rate"], -s["mean_abs_logit_diff"], s["group"]))
    return scores

"""Model surgery on BERT-style encoders: drop layers, remove heads and FFN neurons, mask weights.

Structured removal really shrinks the matrices, and the result is described entirely by the HF
config (``num_hidden_layers``, ``pruned_heads``, ``intermediate_size``), so the saved folder
loads with ``from_pretrained`` and exports like any other model. FFN width is kept equal in
every layer for that reason: HF configs have one ``intermediate_size``.

Unstructured and N:M masks use ``torch.nn.utils.prune`` parametrisations, so recovery training
keeps the zeros in place, and ``make_permanent`` folds them into plain weights before export.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from optkit.errors import PassError

__all__ = [
    "encoder_layers",
    "ffn_width",
    "gradient_importance",
    "head_counts",
    "keep_layers",
    "live_heads",
    "magnitude_importance",
    "make_permanent",
    "mask_nm",
    "mask_unstructured",
    "prunable_linears",
    "remove_heads",
    "self_attention",
    "shrink_ffn",
]

# Model types whose encoder has the BERT layout (encoder.layer[i].attention.self.query, ...), and vision
# transformers that share it under another name (encoder.layer[i].attention.attention.query: ViT, DeiT).
_BERT_LAYOUT = ("bert", "roberta", "xlm-roberta", "electra", "camembert", "ernie", "mpnet", "vit", "deit")


def self_attention(lyr: Any) -> Any:
    """A layer's query/key/value module: ``attention.self`` in BERT, ``attention.attention`` in ViT."""
    att = lyr.attention
    return att.self if hasattr(att, "self") else att.attention


def encoder_layers(model: Any) -> Any:
    """The encoder's layer list, or a PassError naming the model type when the layout is not BERT's."""
    base = getattr(model, "base_model", model)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    ok = (
        layers is not None
        and len(layers) > 0
        and all(
            hasattr(lyr, "attention")
            and (hasattr(lyr.attention, "self") or hasattr(lyr.attention, "attention"))
            and hasattr(lyr, "intermediate")
            for lyr in layers
        )
    )
    if not ok:
        raise PassError(
            f"structured pruning and layer selection support BERT-style encoders ({', '.join(_BERT_LAYOUT)}); "
            f"model_type {getattr(model.config, 'model_type', '?')!r} has another layout. Use unstructured or "
            f"N:M pruning, or distil into a student given by 'student.model'"
        )
    return layers


def head_size(model: Any) -> int:
    return model.config.hidden_size // model.config.num_attention_heads


def live_heads(model: Any, layer: int) -> list[int]:
    """Original indices of the heads still present in ``layer`` (HF counts pruned heads by original index)."""
    pruned = set(model.config.pruned_heads.get(layer, []))
    return [h for h in range(model.config.num_attention_heads) if h not in pruned]


def head_counts(model: Any) -> list[int]:
    return [len(live_heads(model, i)) for i in range(len(encoder_layers(model)))]


def ffn_width(model: Any) -> int:
    return int(encoder_layers(model)[0].intermediate.dense.out_features)


def keep_layers(model: Any, keep: Sequence[int]) -> None:
    """Keep only the encoder layers ``keep`` (in that order); pruned-head records follow their layers."""
    import torch

    layers = encoder_layers(model)
    n = len(layers)
    bad = [i for i in keep if not 0 <= i < n]
    if bad or not keep or len(set(keep)) != len(keep):
        raise PassError(f"layer indices {list(keep)} must be distinct and within 0..{n - 1} (the model has {n})")
    pruned = model.config.pruned_heads
    model.config.pruned_heads = {new: list(pruned[old]) for new, old in enumerate(keep) if pruned.get(old)}
    model.base_model.encoder.layer = torch.nn.ModuleList([layers[i] for i in keep])
    for new, lyr in enumerate(model.base_model.encoder.layer):
        if hasattr(self_attention(lyr), "layer_idx"):
            self_attention(lyr).layer_idx = new
    model.config.num_hidden_layers = len(keep)


def remove_heads(model: Any, heads: dict[int, list[int]]) -> None:
    """Remove heads given by original index per layer; at least one head must stay in every layer."""
    for layer, hs in heads.items():
        left = set(live_heads(model, layer)) - set(hs)
        if not left:
            raise PassError(f"removing heads {sorted(hs)} would leave layer {layer} with no attention head")
    model.prune_heads({k: list(v) for k, v in heads.items() if v})


def shrink_ffn(model: Any, keep: dict[int, Any]) -> None:
    """Keep the FFN neurons ``keep[layer]`` (index tensors of one common length) in every layer."""
    from transformers.pytorch_utils import prune_linear_layer

    layers = encoder_layers(model)
    widths = {len(idx) for idx in keep.values()}
    if len(widths) != 1 or set(keep) != set(range(len(layers))):
        raise PassError("FFN pruning keeps the same number of neurons in every layer (HF has one intermediate_size)")
    for i, lyr in enumerate(layers):
        idx = keep[i].sort().values
        lyr.intermediate.dense = prune_linear_layer(lyr.intermediate.dense, idx, dim=0)
        lyr.output.dense = prune_linear_layer(lyr.output.dense, idx, dim=1)
    model.config.intermediate_size = widths.pop()


def magnitude_importance(model: Any) -> tuple[list[Any], list[Any]]:
    """Per-layer head and FFN-neuron scores from weight norms: no data needed (used for student init)."""
    import torch

    dh = head_size(model)
    heads, ffn = [], []
    with torch.no_grad():
        for lyr in encoder_layers(model):
            att = lyr.attention
            qkv = self_attention(lyr)
            w = torch.cat([qkv.query.weight, qkv.key.weight, qkv.value.weight], 1)  # rows = head dims
            out = att.output.dense.weight.t()  # rows = head dims
            per_dim = w.pow(2).sum(1) + out.pow(2).sum(1)
            heads.append(per_dim.view(-1, dh).sum(1).sqrt())
            ffn.append((lyr.intermediate.dense.weight.pow(2).sum(1) + lyr.output.dense.weight.pow(2).sum(0)).sqrt())
    return heads, ffn


def gradient_importance(model: Any, batches: Iterable[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    """Head and FFN-neuron importance as |dL/dmask| summed over ``batches`` (Michel et al., 2019).

    A mask of ones multiplies the input of each layer's attention output projection (one entry per
    head, repeated over the head's dimensions) and of its FFN down-projection; the gradient of the
    loss with respect to that mask is the first-order change in loss when the unit is removed.
    Head scores are normalised per layer, as in the paper, so layers compete on equal terms.
    """
    import torch

    layers = encoder_layers(model)
    dh = head_size(model)
    device = next(model.parameters()).device  # after GPU recovery training the model lives there
    head_masks = [
        torch.ones(lyr.attention.output.dense.in_features // dh, device=device, requires_grad=True) for lyr in layers
    ]
    ffn_masks = [torch.ones(lyr.output.dense.in_features, device=device, requires_grad=True) for lyr in layers]
    hooks = []
    for lyr, hm, fm in zip(layers, head_masks, ffn_masks, strict=True):
        hooks.append(
            lyr.attention.output.dense.register_forward_pre_hook(
                lambda _m, args, hm=hm: (args[0] * hm.repeat_interleave(dh).to(args[0].dtype),)
            )
        )
        hooks.append(lyr.output.dense.register_forward_pre_hook(lambda _m, args, fm=fm: (args[0] * fm,)))
    head_score = [torch.zeros_like(m) for m in head_masks]
    ffn_score = [torch.zeros_like(m) for m in ffn_masks]
    was_training = model.training
    model.eval()  # no dropout: the scores should reflect the model as it will run
    try:
        for batch in batches:
            loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
            grads = torch.autograd.grad(loss, head_masks + ffn_masks)
            for s, g in zip(head_score + ffn_score, grads, strict=True):
                s += g.abs()
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    head_score = [s / (s.norm() + 1e-12) for s in head_score]
    return head_score, ffn_score


def prunable_linears(model: Any) -> list[tuple[str, Any]]:
    """The encoder's Linear layers: what unstructured and N:M pruning apply to (not embeddings or head)."""
    import torch

    base = getattr(model, "base_model", model)
    encoder = getattr(base, "encoder", None) or getattr(base, "transformer", None)
    if encoder is None:
        raise PassError(f"model_type {getattr(model.config, 'model_type', '?')!r}: found no encoder to prune")
    linears = [(n, m) for n, m in encoder.named_modules() if isinstance(m, torch.nn.Linear)]
    if not linears:  # a convolutional encoder (ResNet, ConvNeXt): masking nothing would be a silent no-op
        raise PassError(
            f"model_type {getattr(model.config, 'model_type', '?')!r}: its encoder has no Linear layers (it is "
            f"convolutional); unstructured and N:M pruning mask Linear weights only and channel pruning is not "
            f"implemented. Distil into a smaller student instead"
        )
    return linears


def mask_unstructured(model: Any, sparsity: float, scope: str) -> None:
    """Zero the smallest-magnitude weights: ``global`` ranks all encoder weights together, ``layer`` each matrix."""
    import torch.nn.utils.prune as tprune

    linears = prunable_linears(model)
    if scope == "global":
        tprune.global_unstructured(
            [(m, "weight") for _, m in linears], pruning_method=tprune.L1Unstructured, amount=sparsity
        )
    else:
        for _, m in linears:
            tprune.l1_unstructured(m, "weight", amount=sparsity)


def mask_nm(model: Any, n: int, m: int) -> None:
    """Keep the ``n`` largest of every ``m`` consecutive weights along each row's input dimension (e.g. 2:4)."""
    import torch
    import torch.nn.utils.prune as tprune

    for name, lin in prunable_linears(model):
        w = lin.weight.detach()
        if w.shape[1] % m:
            raise PassError(f"{name}: input width {w.shape[1]} is not a multiple of m={m}; N:M needs it")
        groups = w.abs().reshape(-1, m)
        keep = groups.topk(n, dim=1).indices
        mask = torch.zeros_like(groups).scatter_(1, keep, 1.0).reshape_as(w)
        tprune.custom_from_mask(lin, "weight", mask)


def make_permanent(model: Any) -> None:
    """Fold pruning parametrisations into plain weights, so the saved model and ONNX carry real zeros."""
    import torch.nn.utils.prune as tprune

    for _, lin in prunable_linears(model):
        if tprune.is_pruned(lin):
            tprune.remove(lin, "weight")

"""What compression did to each variant: the structure table and the honest-sparsity notes."""

from __future__ import annotations

from typing import Any

from optkit.recipe import shape_label

__all__ = ["sparsity_notes", "structure_markdown"]

# Above this share of zeros in encoder weights a variant counts as sparse (dense models hold ~0%).
_SPARSE = 0.05


def structure_markdown(report: dict[str, Any]) -> list[str]:
    """Params, non-zeros, zeros in encoder weights, layers, heads, FFN width, per variant."""
    variants = {n: v for n, v in report["variants"].items() if v.get("structure")}
    if not variants:
        return []
    base = report["variants"].get("baseline", {}).get("structure")
    lines = [
        "## Model structure",
        "",
        "Counted from each variant's weights (ONNX variants: the torch model they were exported from).",
        "",
        "| variant | params (M) | encoder params (M) | vs baseline | non-zero params (M) | zeros in encoder "
        "weights | layers | heads | FFN |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in variants.items():
        s = v["structure"]
        rel = f"{s['encoder_params'] / base['encoder_params'] - 1:+.1%}" if base and base["encoder_params"] else "–"
        lines.append(
            f"| {name} | {s['params'] / 1e6:.2f} | {s['encoder_params'] / 1e6:.2f} | {rel} "
            f"| {s['nonzero_params'] / 1e6:.2f} | {s['encoder_weight_sparsity']:.1%} | {s['layers']} "
            f"| {s['heads']} | {s['ffn']} |"
        )
    return [*lines, ""]


def sparsity_notes(report: dict[str, Any]) -> list[str]:
    """One note per sparse variant: its measured zeros and latency, and that no speed-up is expected.

    ONNX Runtime's CPU kernels multiply dense matrices whatever their values, so zeros cut
    neither time nor memory; saying so beside the measured figure keeps the row from implying
    a speed-up that does not exist.
    """
    notes = []
    ref = report["reference"]
    for name, v in report["variants"].items():
        s = v.get("structure") or {}
        if s.get("encoder_weight_sparsity", 0.0) < _SPARSE or v.get("runtime") != "onnxruntime":
            continue
        measured = [
            f"{r['speedup_vs_reference']:.2f}× at {shape_label(r)} on {r['provider']}"
            for r in report["results"]
            if r["variant"] == name and r["status"] == "measured" and r.get("speedup_vs_reference") is not None
        ]
        speed = "; measured " + ", ".join(measured) + f" vs {ref}" if measured else ""
        notes.append(
            f"{name}: {s['encoder_weight_sparsity']:.1%} of its encoder weights are zero, but ONNX Runtime's "
            f"CPU kernels are dense, so no speed-up or memory saving is expected from the zeros{speed}. "
            f"Sparsity pays off only with sparse kernels or after structured removal."
        )
    return notes

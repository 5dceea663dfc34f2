"""``inc_quantize``: Intel Neural Compressor's accuracy-aware ``autotune`` over its torch configs (torch -> torch).

What neural-compressor 3.10 offers on this stack (torch 2.13 CPU, no IPEX), found by running it
(README, "Tuning"):

- ``RTNConfig`` (weight-only round-to-nearest, int8 or int4 with groups) works on an eager HF model.
- ``MixedPrecisionConfig(dtype="bf16")`` works (a bf16 cast of the Linear layers).
- ``DynamicQuantConfig`` / ``StaticQuantConfig`` on an eager model raise ``AttributeError: ...
  'dynamic_shapes'``: both need a ``neural_compressor.torch.export.export`` graph (PT2E), whose
  output is a ``GraphModule`` that takes positional tensors at the exported shapes and cannot be
  saved as a Hugging Face folder; dynamic PT2E also moved MiniLM's logits by up to 0.28 (DESIGN.md).
  The IPEX static path needs ``intel-extension-for-pytorch``, whose newest release (2.8) is built for
  torch 2.8, not 2.13. So this pass tunes over RTN and bf16 only, and says so.
- ``autotune`` stops at the **first** configuration within ``tolerable_loss`` (a *relative* loss of the
  metric), in ``config_set`` order, not the fastest; optkit records every configuration it tried.

The output folder holds the float checkpoint and ``optkit-transform.json``, naming the INC config;
loading applies it again (RTN and the bf16 cast are deterministic functions of the weights, which is
also how INC's own ``load(..., original_model=...)`` restores weight-only models). Timed as a
PyTorch-runtime variant, like the baseline.
"""

from __future__ import annotations

import json
import shutil
import time
from typing import Any, ClassVar, Literal

from pydantic import Field

from optkit.errors import PassError
from optkit.passes.base import Artifact, MemoryDemand, PassConfig, PassContext, Plan
from optkit.passes.registry import register_pass
from optkit.passes.torch_transforms import TRANSFORM_FILE, register_transform
from optkit.tasks import get_task

__all__ = ["INC_CONFIGS", "IncQuantizeConfig", "apply_inc", "inc_quantize"]

INC_CONFIGS = ("rtn_int8", "rtn_int4", "bf16")
IncName = Literal["rtn_int8", "rtn_int4", "bf16"]


class IncQuantizeConfig(PassConfig):
    """neural-compressor ``autotune`` over weight-only RTN and bf16 mixed precision, judged on validation rows."""

    kind: Literal["inc_quantize"] = "inc_quantize"
    reads_held_out: ClassVar[bool] = True  # its eval_fn scores data.splits.validation
    tasks: ClassVar[frozenset[str] | None] = frozenset({"text-classification"})
    key_libraries: ClassVar[tuple[str, ...]] = ("neural-compressor", "torchao")

    configs: list[IncName] = Field(
        ["rtn_int8", "bf16"], min_length=1, description="INC configs to try, in this order (INC stops at the first)."
    )
    tolerable_loss: float = Field(
        0.01, ge=0, lt=1, description="INC's relative accuracy loss allowed (0.01: 1% of the float accuracy)."
    )
    group_size: int = Field(32, description="rtn_int4 only: weights per scale group (-1: per channel).")
    batch_size: int = Field(32, ge=1, description="Rows per batch when scoring the validation split.")

    def check(self, where: str, model: dict[str, Any] | None, plan: Plan) -> dict[str, Any] | None:
        import importlib.util

        from optkit.errors import RecipeError

        if importlib.util.find_spec("neural_compressor") is None:
            raise RecipeError(
                f"{where}: needs neural-compressor, which is not installed; pip install -c constraints.txt "
                f"'optkit[inc]' in its own venv (make inc builds .venv-inc: its torchao raises every PyTorch "
                f"model's memory), or remove this step"
            )
        if not len(plan.splits.validation):
            raise RecipeError(
                f"{where}: INC's autotune judges configs on a validation split and the recipe has none; "
                f"add data.splits.validation (e.g. 0.25 of the held-out rows)"
            )
        return model

    def memory_demands(self, where: str, plan: Plan) -> list[MemoryDemand]:
        # the float model, autotune's deep copy of it, and the quantised copy being scored
        return [
            MemoryDemand(
                f"{where}.configs", "neural-compressor autotune (three copies of the model)", 3 * plan.weights_bytes
            )
        ]

    def report_notes(self, variant: str, report: dict[str, Any]) -> list[str]:
        notes = []
        for step in report.get("steps", []):
            inc = step.get("meta", {}).get("inc") if step["variant"] == variant else None
            if inc and step["kind"] == self.kind:
                notes.append(f"{variant}: {inc['sentence']}")
        return notes


def _inc_config(name: str, config: IncQuantizeConfig) -> Any:
    from neural_compressor.torch.quantization import MixedPrecisionConfig, RTNConfig

    if name == "rtn_int8":
        return RTNConfig(bits=8, group_size=-1)
    if name == "rtn_int4":
        return RTNConfig(bits=4, group_size=config.group_size)
    return MixedPrecisionConfig(dtype="bf16")


def _quiet_inc() -> None:
    """INC logs every prepare/convert at INFO (tables of op types) into optkit's progress output."""
    import logging

    from neural_compressor.common.utils import logger as inc_logger  # creates INC's logger at LOGLEVEL

    del inc_logger
    logging.getLogger("neural_compressor").setLevel(logging.WARNING)


def apply_inc(model: Any, options: dict[str, Any]) -> Any:
    """Quantise a float model with the INC config named in ``options`` (the loader's transform)."""
    from neural_compressor.torch.quantization import convert, prepare

    _quiet_inc()

    config = IncQuantizeConfig(configs=[options["config"]], group_size=options.get("group_size", 32))
    return convert(prepare(model, _inc_config(options["config"], config)))


register_transform("inc", apply_inc)


@register_pass(IncQuantizeConfig, version=1, input_format="torch", output_format="torch", uses_data=True)
def inc_quantize(src: Artifact, config: IncQuantizeConfig, ctx: PassContext) -> Artifact:
    """Run INC's autotune on ``src``; write the float checkpoint and the chosen config to ``ctx.out_dir``."""
    try:
        from neural_compressor.torch.quantization import TuningConfig, autotune
    except ImportError as e:
        raise PassError(
            f"{ctx.step}: needs neural-compressor with its torch extra ({e}); install it with "
            f"pip install -c constraints.txt 'optkit[inc]' in its own venv (make inc builds .venv-inc)"
        ) from None
    from optkit.evaluate.predict import torch_logits

    _quiet_inc()

    splits = ctx.splits()
    task = get_task(ctx.settings.task)
    model, tokenizer = task.load_model(src.path, [], trust_remote_code=False, for_training=False, where=ctx.step)
    texts, labels = splits.validation.texts, splits.validation.labels
    tried: list[dict[str, Any]] = []

    def accuracy(candidate: Any) -> float:
        t0 = time.perf_counter()
        logits = torch_logits(candidate, tokenizer, texts, ctx.settings.max_length, config.batch_size, by_length=True)
        acc = float((logits.argmax(-1) == labels).mean())
        tried.append({"validation_accuracy": round(acc, 6), "seconds": round(time.perf_counter() - t0, 2)})
        return max(acc, 1e-9)  # INC divides by the float model's figure

    tuning = TuningConfig(
        config_set=[_inc_config(n, config) for n in config.configs],
        tolerable_loss=config.tolerable_loss,
        max_trials=len(config.configs),
    )
    try:
        best = autotune(model, tune_config=tuning, eval_fn=accuracy)
    except Exception as e:
        raise PassError(f"{ctx.step}: neural-compressor autotune failed: {type(e).__name__}: {e}") from e
    ctx.meta["inc"] = _summary(config, tried, best is not None)
    chosen = ctx.meta["inc"]["chosen"]
    for f in src.path.iterdir():
        if f.is_file() and not f.name.startswith(("meta", ".")):
            shutil.copy2(f, ctx.out_dir / f.name)
    transform = {
        "transform": "inc",
        "options": {"config": chosen or config.configs[0], "group_size": config.group_size},
    }
    (ctx.out_dir / TRANSFORM_FILE).write_text(json.dumps(transform, indent=2))
    return Artifact(ctx.out_dir, "torch", key="")


def _summary(config: IncQuantizeConfig, tried: list[dict[str, Any]], found: bool) -> dict[str, Any]:
    """INC's trials in order: the first evaluation is the float model, then one per config."""
    reference = tried[0]["validation_accuracy"] if tried else None
    trials = [{"config": name, **t} for name, t in zip(config.configs, tried[1:], strict=False)]
    floor = None if reference is None else reference * (1 - config.tolerable_loss)
    passing = [t["config"] for t in trials if floor is not None and t["validation_accuracy"] >= floor]
    chosen = passing[0] if found and passing else None
    if chosen:
        sentence = (
            f"neural-compressor autotune tried {', '.join(t['config'] for t in trials)} (in that order; it stops "
            f"at the first within {config.tolerable_loss * 100:g}% relative loss of the float model's validation "
            f"accuracy {reference:.4f}) and kept {chosen}. Its other torch paths do not run here: dynamic and static "
            f"int8 need a PT2E export graph that cannot be saved as a model folder, and IPEX has no torch 2.13 build."
        )
    else:
        sentence = (
            f"neural-compressor autotune found no config within {config.tolerable_loss * 100:g}% relative loss "
            f"(tried {', '.join(t['config'] for t in trials) or 'none'}); the variant applies "
            f"{config.configs[0]} regardless, measured as such."
        )
    return {"reference_validation_accuracy": reference, "trials": trials, "chosen": chosen, "sentence": sentence}

"""Training options shared by every pass that trains, so their bounds and meaning cannot drift apart.

Each is an annotated type: the bounds and the description live here once, and each pass gives
its own default (a fine-tune and a distillation want different learning rates).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from optkit.passes.base import SEED_MAX

__all__ = ["BatchSize", "Epochs", "LearningRate", "MaxLength", "MaxSteps", "Seed", "WarmupRatio", "WeightDecay"]

Epochs = Annotated[float, Field(gt=0, le=100, description="Passes over the train split (fractions allowed).")]
LearningRate = Annotated[float, Field(gt=0, lt=1, description="Peak AdamW learning rate.")]
BatchSize = Annotated[int, Field(ge=1, le=4096, description="Examples per optimiser step.")]
MaxLength = Annotated[int | None, Field(ge=8, le=4096, description="Truncation length; default data.max_length.")]
WeightDecay = Annotated[float, Field(ge=0, description="AdamW weight decay (not on biases and LayerNorm).")]
WarmupRatio = Annotated[float, Field(ge=0, lt=1, description="Share of steps with a linear warm-up.")]
MaxSteps = Annotated[int | None, Field(ge=1, description="Stop after this many steps (quick runs and tests).")]
Seed = Annotated[int | None, Field(ge=0, le=SEED_MAX, description="Training seed; default the recipe's seed.")]

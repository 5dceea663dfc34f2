"""``distill``: the student is cut from the teacher as asked, learns (loss falls), and is smaller."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from optkit.errors import RecipeError
from optkit.passes.base import Artifact
from optkit.passes.distill import DistillConfig, StudentSpec, _make_student, distill
from optkit.recipe import recipe_from_dict
from optkit.structure import describe_folder
from tests.conftest import context


def test_student_starts_from_the_chosen_teacher_layers(teacher: Artifact, teacher_recipe: dict, tmp_path: Path) -> None:
    import torch

    from optkit.passes.finetune import load_for_training

    ctx = context(teacher_recipe, tmp_path)
    model, tok = load_for_training(teacher, ["rotten", "fresh"], ctx)
    config = DistillConfig(student=StudentSpec(layers=[0, 3], intermediate_size=16, num_attention_heads=2))
    student, _ = _make_student(model, tok, config, ["rotten", "fresh"], ctx)
    assert student.config.num_hidden_layers == 2
    assert student.config.intermediate_size == 16
    assert [lyr.attention.self.query.out_features for lyr in student.bert.encoder.layer] == [16, 16]
    torch.testing.assert_close(  # LayerNorm of student layer 1 is teacher layer 3's
        student.bert.encoder.layer[1].output.LayerNorm.weight, model.bert.encoder.layer[3].output.LayerNorm.weight
    )
    assert model.config.num_hidden_layers == 4  # the teacher itself is untouched


def _eval_accuracy(path: Path, ctx) -> float:  # type: ignore[no-untyped-def]
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from optkit.evaluate.predict import torch_logits
    from optkit.tasks.text_classification import classification_scores

    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    splits = ctx.splits()
    preds = torch_logits(model, AutoTokenizer.from_pretrained(path), splits.eval.texts, 16, 32).argmax(-1)
    return classification_scores(preds.tolist(), splits.eval.labels, 2)["accuracy"]


def test_distillation_lowers_the_loss_of_an_untrained_smaller_student(
    teacher: Artifact, teacher_recipe: dict, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Any HF model can be the student; this one (2 layers x 2 heads) starts untrained, so it must learn."""
    ctx = context(teacher_recipe, tmp_path)
    config = DistillConfig(
        student=StudentSpec(model=str(tiny_model_dir)), epochs=12, learning_rate=3e-3, batch_size=16, validation=0
    )
    distill(teacher, config, ctx)
    meta = ctx.meta
    assert meta["mean_loss_last_10"] < 0.5 * meta["mean_loss_first_10"]
    assert meta["student"]["params"] < 0.8 * meta["teacher"]["params"]
    assert meta["layer_map"] == [1, 3]  # evenly spaced over the teacher's 4 layers
    assert _eval_accuracy(ctx.out_dir, ctx) >= 0.8


def test_a_student_cut_from_the_teacher_keeps_its_accuracy(
    teacher: Artifact, teacher_recipe: dict, tmp_path: Path
) -> None:
    ctx = context(teacher_recipe, tmp_path)
    distill(teacher, DistillConfig(student=StudentSpec(layers=[0, 3]), epochs=2, learning_rate=1e-3), ctx)
    meta = ctx.meta
    assert meta["student"]["layers"] == 2 and meta["teacher"]["layers"] == 4
    assert meta["student"]["encoder_params"] == meta["teacher"]["encoder_params"] // 2
    assert meta["heldout_rows"] == 12 and meta["train_rows"] == 108  # 10% of the 120 train rows held out
    assert len(meta["heldout_history"]) >= 2 and meta["layer_map"] == [0, 3]
    saved = describe_folder(ctx.out_dir)
    assert saved is not None and saved["params"] == meta["student"]["params"]
    assert _eval_accuracy(ctx.out_dir, ctx) >= 0.8


def test_hidden_and_attention_losses_are_in_the_loss_and_fall(
    teacher: Artifact, teacher_recipe: dict, tmp_path: Path
) -> None:
    """Each loss term is recorded unweighted per step; the hidden-state and attention MSE through
    the layer map must be positive, fall, and be part of the loss that was minimised: the mean
    total equals the weighted sum of the terms' means, so skipping a term shows up here."""
    ctx = context(teacher_recipe, tmp_path)
    weights = {"ce": 0.5, "kd": 0.5, "hidden": 2.0, "attention": 3.0}
    config = DistillConfig(
        student=StudentSpec(layers=[1, 2]),
        ce_weight=weights["ce"],
        kd_weight=weights["kd"],
        hidden_weight=weights["hidden"],
        attention_weight=weights["attention"],
        layer_map=[1, 3],
        learning_rate=3e-3,
        batch_size=8,
        max_steps=30,
        validation=0,
    )
    distill(teacher, config, ctx)
    meta = ctx.meta
    assert meta["steps"] == 30 and math.isfinite(meta["final_loss"])
    assert meta["layer_map"] == [1, 3]
    terms = meta["loss_terms"]
    assert set(terms) == set(weights), terms
    # 30 steps: the hidden-state MSE fell by about 37% and the attention MSE by about 14% (seeded runs)
    for name, falls_below in (("hidden", 0.8), ("attention", 0.95)):
        assert terms[name]["first_10"] > 0, (name, terms)
        assert terms[name]["last_10"] < falls_below * terms[name]["first_10"], (name, terms)
    for window in ("first_10", "last_10"):
        weighted = sum(weights[name] * terms[name][window] for name in weights)
        assert meta[f"mean_loss_{window}"] == pytest.approx(weighted, abs=2e-4), (window, terms)


def test_the_layer_map_chooses_which_teacher_states_the_student_is_compared_with(
    teacher: Artifact, teacher_recipe: dict, tmp_path: Path
) -> None:
    """One step each (the same seed, so the same first batch, before any update): the hidden and
    attention terms depend on the map, and the same map gives the same terms."""

    def first_step_terms(layer_map: list[int], name: str) -> dict[str, float]:
        ctx = context(teacher_recipe, tmp_path / name)
        config = DistillConfig(
            student=StudentSpec(layers=[1, 2]),
            hidden_weight=1.0,
            attention_weight=1.0,
            layer_map=layer_map,
            max_steps=1,
            validation=0,
        )
        distill(teacher, config, ctx)
        assert ctx.meta["layer_map"] == layer_map
        return {term: ctx.meta["loss_terms"][term]["first_10"] for term in ("hidden", "attention")}

    mapped = first_step_terms([1, 3], "a")
    assert first_step_terms([1, 3], "b") == mapped
    other = first_step_terms([0, 1], "c")
    for term in ("hidden", "attention"):
        assert other[term] != pytest.approx(mapped[term], rel=0.05), (term, mapped, other)


def test_attention_loss_needs_matching_heads(teacher: Artifact, teacher_recipe: dict, tmp_path: Path) -> None:
    from optkit.errors import PassError

    ctx = context(teacher_recipe, tmp_path)
    config = DistillConfig(student=StudentSpec(layers=[0], num_attention_heads=2), attention_weight=1.0, max_steps=1)
    with pytest.raises(PassError, match="attention_weight needs equal head counts"):
        distill(teacher, config, ctx)


def test_early_stopping_ends_training_at_an_epoch_boundary(teacher: Artifact) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from optkit.passes.training import train_classifier

    model = AutoModelForSequenceClassification.from_pretrained(teacher.path)
    tok = AutoTokenizer.from_pretrained(teacher.path)
    epochs_seen: list[int] = []
    result = train_classifier(
        model,
        tok,
        ["good film", "bad film"] * 20,
        [1, 0] * 20,
        epochs=5,
        learning_rate=1e-3,
        batch_size=8,
        max_length=16,
        weight_decay=0.0,
        warmup_ratio=0.0,
        seed=0,
        on_epoch_end=lambda epoch, step: epochs_seen.append(epoch) or epoch == 2,
    )
    assert epochs_seen == [1, 2]
    assert result.steps == 10  # 2 epochs of 5 batches, not 5 epochs


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"student": {}}, "student needs 'layers'"),
        ({"student": {"layers": [0], "model": "x/y"}}, "student.model cannot be combined with layers"),
        ({"student": {"layers": [0]}, "kd_weight": 0, "ce_weight": 0}, "all loss weights are 0"),
        ({"student": {"layers": []}}, "at least 1 item"),
        ({"student": {"layer": [0]}}, "layer"),
    ],
)
def test_bad_distill_options_fail_at_validation(recipe_dict: dict, options: dict, message: str) -> None:
    recipe_dict["variants"]["small"] = [{"distill": options}, {"export": {}}]
    with pytest.raises(RecipeError, match=r"variants\.small") as e:
        recipe_from_dict(recipe_dict)
    assert message in str(e.value)

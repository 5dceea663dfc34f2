"""feature-extraction: pooling read from the folder, k-NN and cosine metrics, export with the pooling in the
graph, embedding distillation, gates on the task's metrics, and a whole run on the tiny model."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from optkit.errors import EvaluationError
from optkit.tasks import get_task
from optkit.tasks.feature_extraction import cosine_rows, knn_labels, nearest_rows


def _recipe(model: Path, csv: Path) -> dict[str, Any]:
    return {
        "name": "tiny-emb",
        "seed": 7,
        "model": {"source": str(model), "task": "feature-extraction"},
        "data": {
            "source": str(csv),
            "text": "review",
            "label": "sentiment",
            "labels": ["rotten", "fresh"],
            "max_length": 16,
            "splits": {"train": 120, "eval": 60, "calibration": 16},
        },
        "baseline": [],
        "variants": {
            "fp32-onnx": [{"export": {}}],
            "int8-dynamic": [{"export": {}}, {"quantize": {"mode": "dynamic"}}],
        },
        "evaluate": {
            "shapes": [{"batch": 1, "seq": 16}],
            "latency": {"warmup": 1, "runs": 5, "threads": 1},
            "memory": False,
            "batch_size": 16,
        },
        "report": {
            "formats": ["json", "md", "html"],
            "gates": {"int8-dynamic": {"max_metric_drop": 0.5, "min_metric": {"cosine_mean": 0.9, "cosine_p5": 0.8}}},
        },
    }


def _st_folder(src: Path, out: Path, mode: str = "mean", normalize: bool = True, extra: list[str] = ()) -> Path:
    """A copy of ``src`` with sentence-transformers' module files saying how it pools."""
    shutil.copytree(src, out)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]
    modules.append({"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"})
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    modules += [{"idx": 9, "name": t, "path": t, "type": f"sentence_transformers.models.{t}"} for t in extra]
    (out / "modules.json").write_text(json.dumps(modules))
    (out / "1_Pooling").mkdir()
    flags = {"cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens", "max": "pooling_mode_max_tokens"}
    config = {"word_embedding_dimension": 32} | {key: m == mode for m, key in flags.items()}
    (out / "1_Pooling" / "config.json").write_text(json.dumps(config))
    return out


def _encode(folder: Path, texts: list[str]) -> tuple[Any, Any, Any]:
    """(pooled output of the task's model, last hidden state of the bare encoder, attention mask)."""
    import torch
    from transformers import AutoModel

    model, tok = get_task("feature-extraction").load_model(
        folder, [], trust_remote_code=False, for_training=False, where="test"
    )
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        pooled = model(**enc).logits
        hidden = AutoModel.from_pretrained(folder).eval()(**enc).last_hidden_state
    return pooled, hidden, enc["attention_mask"]


TEXTS = ["the movie was great", "a dull and boring plot", "fun"]


def test_pooling_read_from_the_folder_matches_sentence_transformers_arithmetic(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import torch

    mean_folder = _st_folder(tiny_model_dir, tmp_path / "mean")
    pooled, hidden, mask = _encode(mean_folder, TEXTS)
    m = mask.unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=-1)
    assert torch.allclose(pooled, expected, atol=1e-6)  # padding rows of the short text are masked out

    cls_folder = _st_folder(tiny_model_dir, tmp_path / "cls", mode="cls", normalize=False)
    pooled, hidden, _ = _encode(cls_folder, TEXTS)
    assert torch.allclose(pooled, hidden[:, 0], atol=1e-6)
    assert not torch.allclose(pooled.norm(dim=-1), torch.ones(3))  # no Normalize module: not unit length


def test_a_module_optkit_cannot_reproduce_is_refused_naming_it(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _st_folder(tiny_model_dir, tmp_path / "dense", extra=["Dense"])
    with pytest.raises(EvaluationError, match="Dense"):
        _encode(folder, TEXTS)


def test_a_student_saved_by_optkit_keeps_the_teachers_pooling(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _st_folder(tiny_model_dir, tmp_path / "max", mode="max")
    model, _ = get_task("feature-extraction").load_model(
        folder, [], trust_remote_code=False, for_training=True, where="t"
    )
    model.save_pretrained(tmp_path / "saved")
    config = json.loads((tmp_path / "saved" / "1_Pooling" / "config.json").read_text())
    assert config["pooling_mode_max_tokens"] and not config["pooling_mode_mean_tokens"]
    assert "Normalize" in (tmp_path / "saved" / "modules.json").read_text()


def test_knn_votes_by_neighbours_and_breaks_ties_by_similarity() -> None:
    # two tight clusters; row 2 is labelled against its cluster, so its neighbours outvote it
    x = np.array([[1, 0.0], [1, 0.1], [1, 0.05], [1, 0.15], [0, 1], [0.1, 1], [0.05, 1]])
    y = [0, 0, 1, 0, 1, 1, 1]
    assert knn_labels(x, y, 3) == [0, 0, 0, 0, 1, 1, 1]
    # k=2 with one neighbour of each class: the more similar one wins
    x = np.array([[1, 0.0], [1, 0.2], [0.0, 1.0]])
    assert knn_labels(x, [5, 0, 1], 2)[0] == 0
    assert nearest_rows(x, 1)[:, 0].tolist() == [1, 0, 1]


def test_cosine_scores_catch_the_rows_a_mean_hides() -> None:
    task = get_task("feature-extraction")
    ref = np.random.default_rng(0).standard_normal((100, 8)).astype(np.float32)
    moved = ref.copy()
    moved[:6] = -moved[:6]  # six rows of a hundred turned around
    s = task.output_scores(moved, ref)
    assert s["cosine_mean"] == pytest.approx(0.88, abs=1e-6) and s["cosine_p5"] == pytest.approx(-1.0, abs=1e-6)
    assert task.output_scores(ref * 3.0, ref)["cosine_mean"] == pytest.approx(1.0)  # scale-free
    with pytest.raises(EvaluationError, match="row by row"):
        cosine_rows(ref[:3], ref)


def test_export_puts_the_pooling_in_the_graph_and_matches_pytorch(
    tiny_model_dir: Path, tiny_csv: Path, tmp_path: Path
) -> None:
    from optkit.evaluate.predict import create_session, onnx_logits, torch_logits
    from optkit.passes.onnx_export import ExportConfig, export
    from optkit.sources.model import resolve_model
    from tests.conftest import context

    ctx = context(_recipe(tiny_model_dir, tiny_csv), tmp_path / "onnx")
    export(resolve_model(ctx.recipe.model), ExportConfig(), ctx)
    assert ctx.meta["validation"]["max_abs_diff"] < 1e-5 and ctx.meta["validation"]["agreement"] == 1.0
    session = create_session(ctx.out_dir / "model.onnx")
    assert [o.name for o in session.get_outputs()] == ["sentence_embedding"]
    model, tok = get_task("feature-extraction").load_model(
        tiny_model_dir, [], trust_remote_code=False, for_training=False, where="t"
    )
    got = onnx_logits(session, tok, TEXTS, 16, 2)  # batches of 2: padding inside the graph's pooling too
    assert got.shape == (3, 32) and np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert np.allclose(got, torch_logits(model, tok, TEXTS, 16, 3), atol=1e-5)

    from optkit.bench import bench_model
    from optkit.recipe import LatencySpec, Shape

    fast = LatencySpec(warmup=1, runs=5, block=5, threads=1)
    report = bench_model(ctx.out_dir / "model.onnx", shapes=[Shape(batch=2, seq=16)], latency=fast, memory=False)
    assert [r["status"] for r in report["results"]] == ["measured"]  # bench takes the embedding graph's inputs


def test_distill_embeddings_trains_a_smaller_student_towards_the_teacher(
    tiny_model_dir: Path, tiny_csv: Path, tmp_path: Path
) -> None:
    from optkit.passes.embed_distill import DistillEmbeddingsConfig, distill_embeddings
    from optkit.sources.model import resolve_model
    from tests.conftest import context

    ctx = context(_recipe(tiny_model_dir, tiny_csv), tmp_path / "student")
    config = DistillEmbeddingsConfig(student={"layers": [1]}, epochs=3, batch_size=16, learning_rate=1e-3)
    distill_embeddings(resolve_model(ctx.recipe.model), config, ctx)
    meta = ctx.meta
    assert meta["student"]["layers"] == 1 and meta["teacher"]["layers"] == 2
    assert meta["mean_loss_last_10"] < meta["mean_loss_first_10"]  # 1 - cos falls as it learns
    assert meta["heldout_history"] and all(-1 <= h["heldout_cosine"] <= 1 for h in meta["heldout_history"])
    assert json.loads((ctx.out_dir / "config.json").read_text())["num_hidden_layers"] == 1
    assert (ctx.out_dir / "1_Pooling" / "config.json").is_file()  # still a sentence-transformers folder


def test_an_accuracy_gate_on_an_embedding_recipe_is_a_clean_error(
    tiny_model_dir: Path, tiny_csv: Path, write_recipe: Any
) -> None:
    from click.testing import CliRunner

    from optkit.cli import cli

    data = _recipe(tiny_model_dir, tiny_csv)
    data["report"]["gates"] = {"int8-dynamic": {"max_accuracy_drop": 0.01}}
    result = CliRunner().invoke(cli, ["validate", str(write_recipe(data))])
    assert result.exit_code == 2
    assert "report.gates.int8-dynamic.max_accuracy_drop" in result.output and "max_metric_drop" in result.output

    data["report"]["gates"] = {"int8-dynamic": {"min_metric": {"cosine": 0.9}}}
    result = CliRunner().invoke(cli, ["validate", str(write_recipe(data))])
    assert result.exit_code == 2 and "min_metric.cosine" in result.output


def test_distill_for_classifiers_is_refused_on_an_embedding_recipe(
    tiny_model_dir: Path, tiny_csv: Path, write_recipe: Any
) -> None:
    from click.testing import CliRunner

    from optkit.cli import cli

    data = _recipe(tiny_model_dir, tiny_csv)
    data["variants"] = {"s": [{"distill": {"student": {"layers": [0]}}}]}
    data["report"] = {}
    result = CliRunner().invoke(cli, ["validate", str(write_recipe(data))])
    assert result.exit_code == 2 and "variants.s[0].distill: distill works on " in result.output
    assert "text-classification" in result.output and "model.task is 'feature-extraction'" in result.output


def test_a_run_reports_embedding_metrics_and_gates_and_compares(
    tiny_model_dir: Path, tiny_csv: Path, tmp_path: Path
) -> None:
    from optkit.api import run_recipe
    from optkit.compare import CompareError, compare_reports, load_report

    path = tmp_path / "emb.yaml"
    path.write_text(yaml.safe_dump(_recipe(_st_folder(tiny_model_dir, tmp_path / "m"), tiny_csv)))
    outcome = run_recipe(path, output=tmp_path / "reports", workspace=tmp_path / "ws")
    out = tmp_path / "reports" / "tiny-emb"
    report = json.loads((out / "report.json").read_text())
    assert report["task"]["primary_metric"] == "knn_accuracy"
    variants = report["variants"]
    assert variants["baseline"]["cosine_mean"] == pytest.approx(1.0)
    assert variants["fp32-onnx"]["cosine_p5"] > 0.9999  # the same vectors, through ONNX Runtime
    assert 0.9 < variants["int8-dynamic"]["cosine_mean"] <= variants["fp32-onnx"]["cosine_mean"] + 1e-6
    assert {g["gate"] for g in report["gates"]} == {"max_metric_drop", "min_metric.cosine_mean", "min_metric.cosine_p5"}
    assert outcome.passed
    md = (out / "report.md").read_text()
    assert "| k-NN accuracy | Δ k-NN acc (pts) |" in md and "Δ k-NN accuracy vs baseline" in md
    assert "k-NN accuracy vs latency" in (out / "report.html").read_text()

    base = load_report(out / "report.json")
    result = compare_reports(base, load_report(out / "report.json"))
    quality = [c for c in result["checks"] if c["metric"] == "knn_accuracy"]
    assert len(quality) == 3 and all(c["passed"] and c["change"] == 0 for c in quality)
    worse = copy.deepcopy(base)
    worse["variants"]["int8-dynamic"]["knn_accuracy"] -= 0.05
    failed = [c for c in compare_reports(base, worse)["checks"] if not c["passed"]]
    assert [(c["variant"], c["metric"]) for c in failed] == [("int8-dynamic", "knn_accuracy")]
    other = copy.deepcopy(base) | {"task": {"name": "text-classification", "primary_metric": "accuracy"}}
    with pytest.raises(CompareError, match="same task"):
        compare_reports(base, other)

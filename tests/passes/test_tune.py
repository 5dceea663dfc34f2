"""``tune`` on the tiny model: sensitivity ranking, trial caching, the report's trial table, kill and resume."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from optkit.cache import ArtifactCache
from optkit.passes.base import Artifact
from optkit.passes.tune import TuneConfig, tune
from optkit.passes.tune_run import TuneBench
from optkit.passes.tune_search import Candidate
from tests.conftest import context, restore_sigint

# Short timing: the tiny model runs in microseconds; these tests check bookkeeping, not speed.
_FAST = {"seq": 16, "runs": 10, "time_budget_s": 0.2, "final_runs": 10, "final_time_budget_s": 0.2, "warmup": 1}


@pytest.fixture
def tune_recipe(base_recipe: dict[str, Any]) -> dict[str, Any]:
    recipe = copy.deepcopy(base_recipe)
    recipe["data"]["splits"]["validation"] = 0.5
    return recipe


def _config(**kw: Any) -> TuneConfig:
    return TuneConfig.model_validate({"latency": _FAST, "sensitivity_rows": 16, **kw})


def test_sensitivity_ranks_each_layer_block_and_is_cached(
    tune_recipe: dict[str, Any], exported: Artifact, tmp_path: Path
) -> None:
    ctx = context(tune_recipe, tmp_path / "out")
    ctx.cache = ArtifactCache(tmp_path / "cache")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    bench = TuneBench(exported, _config(), ctx, scratch)
    base = Candidate("dynamic per-tensor", ({"kind": "quantize", "mode": "dynamic", "per_channel": False},))
    ranking = bench.ranking(base)
    groups = [g for g, _ in ranking]
    # the tiny BERT has 2 layers: each layer's attention and FFN block is a group of its own
    assert {"layer.0/attention", "layer.0/ffn", "layer.1/attention", "layer.1/ffn"} <= set(groups)
    ffn = dict(ranking)["layer.1/ffn"]
    assert any("intermediate" in n for n in ffn) and any("/output/dense" in n for n in ffn)
    scores = bench.rankings[base.label]
    keys = [(-s["flip_rate"], -s["mean_abs_logit_diff"]) for s in scores]
    assert keys == sorted(keys)  # most sensitive first
    weighted = [s for s in scores if s["group"].startswith("layer.")]
    assert all(s["mean_abs_logit_diff"] > 0 for s in weighted)  # quantising any MatMul block moves the logits

    # a second ranking of the same base reads the cache: no quantisation runs
    def refuse(candidate: Candidate) -> Path:
        raise AssertionError(f"rebuilt {candidate.label}")

    bench.build = refuse  # type: ignore[method-assign]
    assert bench.ranking(base) == ranking


def test_trials_are_cached_by_lineage_and_reread(
    tune_recipe: dict[str, Any], exported: Artifact, tmp_path: Path
) -> None:
    cache = ArtifactCache(tmp_path / "cache")
    config = _config(modes=["dynamic"], per_channel=[True, False], op_types=[["MatMul"]], exclusion=False)
    first = context(tune_recipe, tmp_path / "a")
    first.cache = cache
    tune(exported, config, first)
    trials = first.meta["trials"]
    assert len(trials) == 2 and not any(t["cached"] for t in trials)
    assert (first.out_dir / "model.onnx").is_file() and (first.out_dir / "tokenizer.json").is_file()
    assert first.meta["search"]["validation_rows"] == len(first.splits().validation) > 0

    again = context(tune_recipe, tmp_path / "b")
    again.cache = cache
    tune(exported, config, again)
    reread = again.meta["trials"]
    assert all(t["cached"] for t in reread)
    figures = ("validation_accuracy", "speedup", "p50_ms", "steps")
    assert [[t[k] for k in figures] for t in reread] == [[t[k] for k in figures] for t in trials]

    # another input model is another lineage: nothing is reused
    other = context(tune_recipe, tmp_path / "c")
    other.cache = cache
    tune(Artifact(exported.path, "onnx", key="another-model"), config, other)
    assert not any(t["cached"] for t in other.meta["trials"])


def test_nothing_within_tolerance_keeps_the_most_accurate_and_the_fastest(
    tune_recipe: dict[str, Any], exported: Artifact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No candidate meets the tolerance (the rule is made to refuse all): the search says so, and keeps both ends."""
    from optkit.passes import tune_search

    monkeypatch.setattr(tune_search, "within_tolerance", lambda accuracy, reference, max_drop: False)
    ctx = context(tune_recipe, tmp_path / "out")
    ctx.cache = ArtifactCache(tmp_path / "cache")
    config = _config(modes=["dynamic"], op_types=[None, ["MatMul"]], exclusion=False)
    tune(exported, config, ctx)
    summary, trials = ctx.meta["search"], ctx.meta["trials"]
    assert summary["outcome"] == "nothing_passed" and "NO configuration" in summary["sentence"]
    assert not any(t["within_tolerance"] for t in trials)
    best_acc = max(t["validation_accuracy"] for t in trials)
    assert trials[summary["chosen_trial"] - 1]["validation_accuracy"] == best_acc
    assert summary["chosen_trial"] == summary["most_accurate_trial"]
    fastest = trials[summary["fastest_trial"] - 1]
    assert fastest["speedup"] == max(t["speedup"] for t in trials)
    kept = summary["kept"]
    assert kept["label"] == fastest["label"] and Path(kept["path"], "model.onnx").is_file()
    assert ctx.cache.lookup(kept["cache_key"]) is not None
    assert (ctx.out_dir / "model.onnx").is_file()  # the variant is the most accurate candidate


def test_a_tune_run_reports_its_trials_and_resumes_after_a_kill(
    tune_recipe: dict[str, Any], finetuned: Artifact, tmp_path: Path
) -> None:
    """SIGKILL after the second trial is committed; the rerun reads trials 1-2 back and runs the rest."""
    recipe = copy.deepcopy(tune_recipe)
    recipe["model"] = {"source": str(finetuned.path), "num_labels": 2}
    recipe["baseline"] = []
    options = {"modes": ["dynamic"], "per_channel": [True, False], "op_types": [None, ["MatMul"]], "exclusion": False}
    recipe["variants"] = {
        "fp32-onnx": [{"export": {}}],
        "tuned": [{"export": {}}, {"tune": {**options, "latency": _FAST}}],
    }
    recipe["report"] = {"formats": ["json", "md", "html"]}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    ws, out = tmp_path / "ws", tmp_path / "out"
    cmd = [sys.executable, "-m", "optkit", "run", str(path), "--workspace", str(ws), "-o", str(out)]
    env = dict(os.environ, OPTKIT_TEST_PAUSE_AT="tune-trial-2")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=restore_sigint
    )
    try:
        seen = ""
        assert proc.stderr is not None
        for line in proc.stderr:
            seen += line
            if "paused at tune-trial-2" in line:
                break
        assert "paused at tune-trial-2" in seen, seen
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "trial 1 " in seen and "trial 2 " in seen and "trial 3 " not in seen

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "tiny" / "report.json").read_text())
    step = next(s for s in report["steps"] if s["kind"] == "tune")
    trials = step["meta"]["trials"]
    assert [t["cached"] for t in trials] == [True, True, False, False]
    assert step["meta"]["search"]["outcome"] in ("within_tolerance", "nothing_passed")
    md = (out / "tiny" / "report.md").read_text()
    assert "## Search trials: tuned" in md and md.count("| dynamic per-") == 4
    assert "Search trials: tuned" in (out / "tiny" / "report.html").read_text()
    assert any(n.startswith("tuned: tune tried 4 configurations") or "NO configuration" in n for n in report["notes"])

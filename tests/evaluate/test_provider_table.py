"""The provider table and provider options: validated in the recipe, given to every session, recorded per row."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest

from optkit.bench import bench_model, bench_settings, render_bench_markdown, write_bench_reports
from optkit.errors import RecipeError
from optkit.evaluate import memory, suite
from optkit.evaluate.providers import GPU_PROVIDERS
from optkit.passes.base import Artifact
from optkit.provider_names import (
    PROVIDER_NAMES,
    PROVIDERS,
    check_provider_options,
    provider_info,
    session_options,
)
from optkit.recipe import EvaluateSpec, LatencySpec, Shape, recipe_from_dict
from optkit.reports.model import ReportError, check_report

FAST = LatencySpec(warmup=1, runs=5, block=5, threads=1)
OV = {"name": "openvino", "options": {"device_type": "CPU", "precision": "FP16", "num_of_threads": 1}}


def test_table_says_where_each_provider_binds_and_reads_gpu_memory() -> None:
    assert PROVIDER_NAMES == {
        "cpu": "CPUExecutionProvider",
        "cuda": "CUDAExecutionProvider",
        "tensorrt": "TensorrtExecutionProvider",
        "openvino": "OpenVINOExecutionProvider",
    }
    for alias in ("cuda", "tensorrt"):
        info = PROVIDERS[alias]
        assert (info.device, info.io_binding, info.gpu_memory) == ("gpu", "cuda", "nvml")
    for alias in ("cpu", "openvino"):
        info = PROVIDERS[alias]
        assert (info.device, info.io_binding, info.gpu_memory) == ("cpu", None, None)
    assert {"CUDAExecutionProvider", "TensorrtExecutionProvider", "ROCMExecutionProvider"} == GPU_PROVIDERS
    assert provider_info("OpenVINOExecutionProvider") is provider_info("OpenVINO") is PROVIDERS["openvino"]
    assert provider_info("QNNExecutionProvider") is None


def test_session_options_are_defaults_then_recipe_then_threads() -> None:
    assert session_options("cpu", None, 2) == {}
    assert session_options("openvino", None, 2) == {"device_type": "CPU", "precision": "FP32", "num_of_threads": "2"}
    got = session_options("openvino", {"precision": "FP16", "num_of_threads": "4"}, 2)
    assert got == {"device_type": "CPU", "precision": "FP16", "num_of_threads": "4"}  # the recipe's threads win
    assert session_options("cuda", {"device_id": "1"}, 2) == {"device_id": "1"}  # no thread option on CUDA


def test_recipe_provider_entry_becomes_name_plus_options_and_round_trips() -> None:
    spec = EvaluateSpec.model_validate({"providers": ["cpu", OV]})
    assert spec.providers == ["cpu", "openvino"]  # the report's provider stays a plain string
    assert spec.provider_options == {"openvino": {"device_type": "CPU", "precision": "FP16", "num_of_threads": "1"}}
    assert EvaluateSpec.model_validate(spec.model_dump()) == spec
    flags = EvaluateSpec.model_validate({"providers": ["cuda"], "provider_options": {"cuda": {"use_tf32": False}}})
    assert flags.provider_options == {"cuda": {"use_tf32": "false"}}


@pytest.mark.parametrize(
    ("providers", "extra", "match"),
    [
        (
            [{"name": "openvino", "options": {"device_typ": "CPU"}}],
            {},
            "has no option 'device_typ'; did you mean 'device_type'",
        ),
        ([{"name": "openvino", "options": {"device_type": ["CPU"]}}], {}, "list \\['CPU'\\] is not an option value"),
        ([{"name": "openvino", "options": {"num_of_threads": "two"}}], {}, "'num_of_threads' is a whole number"),
        ([{"name": "tensorrt", "options": {"trt_fp16_enable": "yes"}}], {}, "'trt_fp16_enable' is true or false"),
        ([{"name": "cpu", "options": {"threads": 2}}], {}, "'cpu' takes no options"),
        ([{"nam": "openvino"}], {}, "providers\\[0\\].*unknown keys \\['nam'\\]"),
        ([{"name": "openvino", "options": "FP16"}], {}, "options must be a mapping"),
        (["cpu"], {"provider_options": {"openvino": {"precision": "FP16"}}}, "'openvino', which is not in providers"),
        ([OV], {"provider_options": {"openvino": {"precision": "FP32"}}}, "both in providers and provider_options"),
    ],
    ids=["typo", "list", "int", "bool", "cpu", "entry-key", "entry-options", "unlisted", "twice"],
)
def test_bad_provider_options_are_recipe_errors_naming_the_field(
    recipe_dict: dict[str, Any], providers: list[Any], extra: dict[str, Any], match: str
) -> None:
    recipe_dict["evaluate"].update(providers=providers, **extra)
    with pytest.raises(RecipeError, match=match) as err:
        recipe_from_dict(recipe_dict)
    assert "evaluate" in str(err.value)


def test_unknown_raw_provider_takes_any_single_valued_options() -> None:
    assert check_provider_options("QNNExecutionProvider", {"backend_path": "x.so", "n": 3}) == {
        "backend_path": "x.so",
        "n": "3",
    }


def test_create_session_hands_the_options_to_onnxruntime(exported: Artifact, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime as ort

    from optkit.evaluate.predict import create_session

    seen: list[Any] = []
    monkeypatch.setattr(ort, "InferenceSession", lambda path, sess_options, providers: seen.append(providers))
    create_session(exported.onnx_file, "openvino", 3, options={"precision": "FP16"})
    create_session(exported.onnx_file, "cpu", 3)
    assert seen == [
        [
            ("OpenVINOExecutionProvider", {"device_type": "CPU", "precision": "FP16", "num_of_threads": "3"}),
            "CPUExecutionProvider",
        ],
        ["CPUExecutionProvider"],
    ]


def test_options_reach_the_timed_and_profiled_sessions_and_the_row(
    exported: Artifact, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """OpenVINO mocked as available on the CPU wheel: ORT drops it, so the row is 'not measured', with options."""
    import onnxruntime as ort

    real_available, real_create = ort.get_available_providers(), suite.create_session
    calls: list[tuple[Any, Any]] = []

    def spy(path: Path, provider: str, threads: int | None = None, **kw: Any) -> Any:
        calls.append((provider, kw.get("options")))
        return real_create(path, provider, threads, **kw)

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["OpenVINOExecutionProvider", *real_available])
    monkeypatch.setattr(suite, "create_session", spy)
    report = bench_model(
        exported.onnx_file,
        providers=["openvino"],
        provider_options={"openvino": {"precision": "FP16"}},
        shapes=[Shape(batch=1, seq=16)],
        latency=FAST,
        memory=False,
    )
    assert calls == [("openvino", {"precision": "FP16"})] * 2  # the timed session and the profiled one
    (row,) = report["results"]
    assert row["provider"] == "openvino" and row["status"].startswith("not measured: session fell back")
    assert row["provider_options"] == {"device_type": "CPU", "precision": "FP16", "num_of_threads": "1"}
    assert "openvino options: device_type=CPU, precision=FP16, num_of_threads=1" in render_bench_markdown(report)
    write_bench_reports(report, tmp_path)  # the schema accepts the options...
    row["provider_options"] = {"precision": 16}
    with pytest.raises(ReportError, match="provider_options"):  # ...as strings only
        check_report(report, "bench")


def test_memory_probe_gets_the_options_and_reads_gpu_memory_only_where_the_table_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout='{"peak_rss_mb": 1}\n', stderr="")

    monkeypatch.setattr(memory.subprocess, "run", fake_run)
    memory.measure_peak_rss(
        Path("m.onnx"), "onnx", 1, 8, provider="OpenVINOExecutionProvider", provider_options={"precision": "FP16"}
    )
    cmd = seen[0]
    assert cmd[cmd.index("--provider-options") + 1] == '{"precision": "FP16"}'
    assert [memory._reads_gpu_memory(p) for p in ("CUDAExecutionProvider", "TensorrtExecutionProvider")] == [True] * 2
    assert not memory._reads_gpu_memory("OpenVINOExecutionProvider") and not memory._reads_gpu_memory("Foo")


def test_bench_provider_option_words_are_checked_like_a_recipe() -> None:
    spec = bench_settings(["cpu", "openvino"], [1], [16], "1", 5, provider_options=["openvino:precision=FP16"])
    assert spec.provider_options == {"openvino": {"precision": "FP16"}}
    with pytest.raises(RecipeError, match="not PROVIDER:KEY=VALUE"):
        bench_settings(["openvino"], [1], [16], "1", 5, provider_options=["precision=FP16"])
    with pytest.raises(RecipeError, match="has no option 'precison'"):
        bench_settings(["openvino"], [1], [16], "1", 5, provider_options=["openvino:precison=FP16"])
    with pytest.raises(RecipeError, match="not in providers"):
        bench_settings(["cpu"], [1], [16], "1", 5, provider_options=["openvino:precision=FP16"])


def test_a_recipe_keeps_provider_names_plain_in_its_dump(recipe_dict: dict[str, Any]) -> None:
    data = copy.deepcopy(recipe_dict)
    data["evaluate"]["providers"] = ["cpu", OV]
    dumped = recipe_from_dict(data).model_dump(mode="json")["evaluate"]
    assert dumped["providers"] == ["cpu", "openvino"] and dumped["provider_options"]["openvino"]["precision"] == "FP16"


@pytest.mark.parametrize(
    ("libraries", "expected"),
    [
        ({"onnxruntime": "1.32.0"}, "1.32.0"),
        ({"onnxruntime-openvino": "1.24.1"}, "1.24.1 (onnxruntime-openvino)"),
        ({"onnxruntime-gpu": "1.31.0"}, "1.31.0 (onnxruntime-gpu)"),
        ({}, "?"),
    ],
    ids=["cpu-wheel", "openvino-wheel", "gpu-wheel", "none"],
)
def test_reports_name_the_onnxruntime_wheel_their_figures_came_from(libraries: dict[str, str], expected: str) -> None:
    from optkit.envinfo import onnxruntime_build

    assert onnxruntime_build(libraries) == expected

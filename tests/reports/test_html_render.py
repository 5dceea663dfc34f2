"""report.html rendered offline in headless Chromium (installed by .ci/run); the screenshot must show content."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from optkit.reports.html import render_html

V1 = Path(__file__).parent / "data" / "bert-int8-v1.json"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _v2_report() -> dict:
    from tests.test_compare import _v2

    report = _v2()
    for v in report["variants"].values():
        v.setdefault("macro_f1", 0.8)
    return report


@pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it; apt-get install chromium)"
)
def test_html_renders_offline_in_headless_chromium(tmp_path: Path) -> None:
    from PIL import Image

    page = tmp_path / "report.html"
    page.write_text(render_html(_v2_report()))
    shot = tmp_path / "shot.png"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1400,2400",
        page.as_uri(),
    ]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert shot.is_file(), "Chromium wrote no screenshot"
    img = Image.open(shot).convert("L")
    assert img.size == (1400, 2400)
    hist = img.histogram()
    dark = sum(hist[:128]) / sum(hist)
    assert 0.005 < dark < 0.5  # text and charts drawn on white, not a blank or black page
    # the upper part (title, table, first chart) is where the content is
    top = img.crop((0, 0, 1400, 1200)).histogram()
    assert sum(top[:128]) / sum(top) > 0.01


def test_html_from_a_schema_1_report_still_renders() -> None:
    report = json.loads(V1.read_text())
    page = render_html(report)
    assert "fp32-onnx (ref)" in page and "<svg" in page

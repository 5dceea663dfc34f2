"""report.html rendered offline in headless Chromium (installed by .ci/run).

Three things are checked, each able to fail on its own:

* the charts rendered: a probe script appended to a copy of the page reports, from inside the
  browser, every chart's ``<svg>`` with its laid-out size and how many of its paths have a
  non-empty bounding box (a page with no charts, a hidden chart or an unparsed one fails);
* the browser made no network request for the page: every host resolves to nothing
  (``--host-resolver-rules``), so nothing can leave the machine, and the net log
  (``--log-net-log``) must hold no request made for the page other than ``file:``/``data:``. A
  deliberately bad page with an external script, image and stylesheet proves the check sees them;
* the screenshot shows content (text and charts on white, not a blank or black page).

Without Chromium the test skips on a developer machine and fails under CI (``CI=true``).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from optkit.reports.html import render_html

V1 = Path(__file__).parent / "data" / "bert-int8-v1.json"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

# Chromium's own services (time sync, account and eligibility checks) send requests whatever the
# flags say; they are not the page's. Those are told apart by the network isolation key (a
# request made for a file:// page carries the key of the file:// site) and are excused only
# when they go to Chromium's service hosts and, like everything else, resolve to nothing.
_PAGE_KEY = "file://"
_BROWSER_HOSTS = (".google.com", ".googleapis.com", ".gstatic.com")
_LOCAL_SCHEMES = ("file:", "data:")
_ERR_NAME_NOT_RESOLVED = -105

# Appended to a copy of the page: what the browser laid out, written into the DOM that
# --dump-dom prints. Inline, so it loads nothing.
_PROBE = """<script>
(() => {
  const charts = [...document.querySelectorAll(".chart svg")].map((svg) => {
    const box = svg.getBoundingClientRect();
    const paths = [...svg.querySelectorAll("path")];
    const drawn = paths.filter((p) => { const b = p.getBBox(); return b.width > 0 || b.height > 0; });
    return {ns: svg.namespaceURI, width: box.width, height: box.height, paths: paths.length, drawn: drawn.length};
  });
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify({charts});
  document.body.appendChild(pre);
})();
</script>"""


def _chromium_or_stop(path: str | None) -> str:
    """The browser's path; a skip on a developer machine, a failure under CI, where it must exist."""
    if path is None:
        message = "Chromium is not installed (.ci/run installs it; apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; under CI the report.html test must run, not skip")
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def chromium() -> str:
    return _chromium_or_stop(CHROMIUM)


def test_missing_chromium_fails_under_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"under CI the report\.html test must run"):
        _chromium_or_stop(None)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="Chromium is not installed"):
        _chromium_or_stop(None)
    assert _chromium_or_stop("/usr/bin/chromium") == "/usr/bin/chromium"


def _v2_report() -> dict:
    from tests.test_compare import _v2

    report = _v2()
    for v in report["variants"].values():
        v.setdefault("macro_f1", 0.8)
    return report


def _run_chromium(chromium: str, page: Path, tmp: Path, *action: str) -> tuple[str, Path]:
    """Open ``page`` offline with a net log; returns (stdout, net-log path)."""
    tmp.mkdir(parents=True, exist_ok=True)
    net_log = tmp / "net-log.json"
    cmd = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # every host resolves to nothing: no request can leave
        f"--log-net-log={net_log}",
        f"--user-data-dir={tmp / 'profile'}",
        *action,
        page.as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert net_log.is_file(), f"Chromium wrote no net log (exit {done.returncode}): {done.stderr[-2000:]}"
    return done.stdout, net_log


def _url_requests(net_log: Path) -> list[dict[str, Any]]:
    """Every URL request in a Chromium net log: url, network isolation key and final net error."""
    log = json.loads(net_log.read_text())
    types = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    requests: dict[int, dict[str, Any]] = {}
    for event in log["events"]:
        if types.get(event["type"]) != "URL_REQUEST_START_JOB":
            continue
        params = event.get("params") or {}
        req = requests.setdefault(event["source"]["id"], {"url": None, "key": None, "net_error": None})
        if "url" in params:
            req["url"] = req["url"] or params["url"]
            req["key"] = params.get("network_isolation_key", "")
        if "net_error" in params:
            req["net_error"] = params["net_error"]
    return [r for r in requests.values() if r["url"]]


def _network_problems(net_log: Path) -> list[str]:
    """What the page fetched from the network, and any request (the browser's own too) that got an answer."""
    problems = []
    for req in _url_requests(net_log):
        if req["url"].startswith(_LOCAL_SCHEMES):
            continue
        host = urlsplit(req["url"]).hostname or ""
        if req["key"].startswith(_PAGE_KEY) or not f".{host}".endswith(_BROWSER_HOSTS):
            problems.append(f"the page requested {req['url']}")
        elif req["net_error"] != _ERR_NAME_NOT_RESOLVED:
            problems.append(f"the browser reached the network for {req['url']} (net error {req['net_error']})")
    return problems


def _probe(chromium: str, page_html: str, tmp: Path) -> tuple[dict[str, Any], Path]:
    """Load the page plus the probe script; returns what the probe saw and the run's net log."""
    page = tmp / "probed.html"
    page.write_text(page_html.replace("</body>", f"{_PROBE}</body>"))
    dom, net_log = _run_chromium(chromium, page, tmp / "probe", "--dump-dom")
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, f"the probe script did not run; DOM:\n{dom[-2000:]}"
    return json.loads(html.unescape(found.group(1))), net_log


def test_html_charts_render_offline_in_headless_chromium(chromium: str, tmp_path: Path) -> None:
    page_html = render_html(_v2_report())
    probe, net_log = _probe(chromium, page_html, tmp_path)
    charts = probe["charts"]
    # one provider measured: accuracy vs latency, size and memory, latency distribution
    assert len(charts) == page_html.count('<div class="chart">') == 3, charts
    for chart in charts:
        assert chart["ns"] == "http://www.w3.org/2000/svg", chart  # parsed as SVG, not as unknown HTML tags
        assert chart["width"] > 200 and chart["height"] > 100, chart  # laid out at a readable size
        assert chart["paths"] >= 5 and chart["drawn"] >= 0.8 * chart["paths"], chart  # axes, marks, text glyphs
    assert _network_problems(net_log) == []

    from PIL import Image

    page = tmp_path / "report.html"
    page.write_text(page_html)
    shot = tmp_path / "shot.png"
    _, shot_log = _run_chromium(chromium, page, tmp_path / "shot", f"--screenshot={shot}", "--window-size=1400,2400")
    assert shot.is_file(), "Chromium wrote no screenshot"
    assert _network_problems(shot_log) == []
    img = Image.open(shot).convert("L")
    assert img.size == (1400, 2400)
    hist = img.histogram()
    dark = sum(hist[:128]) / sum(hist)
    assert 0.005 < dark < 0.5  # text and charts drawn on white, not a blank or black page
    top = img.crop((0, 0, 1400, 1200)).histogram()  # title, table and first chart
    assert sum(top[:128]) / sum(top) > 0.01


def test_the_network_check_catches_an_external_script_image_and_stylesheet(chromium: str, tmp_path: Path) -> None:
    """The control: a page that loads from three hosts is reported three times, and nothing got through."""
    bad = (
        '<!doctype html><html><head><link rel="stylesheet" href="http://styles.example.net/s.css"></head><body>'
        '<h1>bad</h1><img src="https://images.example.org/a.png" alt="">'
        '<script src="http://scripts.example.com/x.js"></script>'
        f'<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt=""><div class="chart">{_svg_square()}</div>'
        "</body></html>"
    )
    probe, net_log = _probe(chromium, bad, tmp_path)
    assert sorted(_network_problems(net_log)) == [
        "the page requested http://scripts.example.com/x.js",
        "the page requested http://styles.example.net/s.css",
        "the page requested https://images.example.org/a.png",
    ]
    page_requests = [r for r in _url_requests(net_log) if r["key"].startswith(_PAGE_KEY)]
    assert all(r["net_error"] == _ERR_NAME_NOT_RESOLVED for r in page_requests if r["url"].startswith("http"))
    assert len(probe["charts"]) == 1 and probe["charts"][0]["drawn"] == 1  # the probe sees a plain SVG too


def _svg_square() -> str:
    return '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="150"><path d="M10 10 H 90 V 90 Z"/></svg>'


def test_html_from_a_schema_1_report_still_renders() -> None:
    report = json.loads(V1.read_text())
    page = render_html(report)
    assert "fp32-onnx (ref)" in page and "<svg" in page

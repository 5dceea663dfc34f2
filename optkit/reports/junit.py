"""JUnit XML for gates: CI systems show one test case per gate, with the failure message, without parsing JSON."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any

__all__ = ["checks_junit", "compare_junit", "gates_junit"]


def checks_junit(suite: str, checks: Iterable[dict[str, Any]], *, timestamp: str | None = None) -> str:
    """A ``<testsuite>`` of checks, each ``{"name", "classname", "passed", "message"}``; failures carry the message."""
    items = list(checks)
    root = ET.Element(
        "testsuite",
        name=suite,
        tests=str(len(items)),
        failures=str(sum(not c["passed"] for c in items)),
        errors="0",
        skipped="0",
    )
    if timestamp:
        root.set("timestamp", timestamp)
    for c in items:
        case = ET.SubElement(root, "testcase", classname=c["classname"], name=c["name"], time="0")
        if c["passed"]:
            ET.SubElement(case, "system-out").text = c["message"]
        else:
            ET.SubElement(case, "failure", message=c["message"], type="GateFailed").text = c["message"]
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def gates_junit(report: dict[str, Any]) -> str:
    """The recipe's gates as JUnit XML: class ``optkit.<recipe>.<variant>``, test name the gate."""
    name = report["recipe"]["name"]
    checks = [
        {
            "classname": f"optkit.{name}.{g['variant']}",
            "name": g["gate"],
            "passed": g["passed"],
            "message": g["message"],
        }
        for g in report["gates"]
    ]
    return checks_junit(f"optkit gates: {name}", checks, timestamp=report.get("finished"))


def compare_junit(result: dict[str, Any], title: str) -> str:
    """``optkit compare``'s checks as JUnit XML: class ``optkit.compare.<item>``, test name the metric."""
    checks = [
        {
            "classname": f"optkit.compare.{c['item']}",
            "name": c["metric"],
            "passed": c["passed"],
            "message": c["message"],
        }
        for c in result["checks"]
    ]
    return checks_junit(title, checks)

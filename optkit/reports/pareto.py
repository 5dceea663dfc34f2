"""The accuracy-vs-latency Pareto front: the variants no other variant beats on both at once."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["pareto_front"]


def pareto_front(points: Mapping[str, tuple[float, float]]) -> list[str]:
    """Names whose (latency, accuracy) is not dominated: no other point is as fast *and* as accurate, and better in one.

    Returned in order of latency, so the front can be drawn as a line.

    Example:
        >>> pareto_front({"a": (10.0, 0.80), "b": (20.0, 0.85), "c": (25.0, 0.84)})
        ['a', 'b']
    """
    front = [
        name
        for name, (lat, acc) in points.items()
        if not any(
            (olat <= lat and oacc >= acc) and (olat < lat or oacc > acc)
            for other, (olat, oacc) in points.items()
            if other != name
        )
    ]
    return sorted(front, key=lambda n: points[n][0])

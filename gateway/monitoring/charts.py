"""Small inline SVG charts: the points of a polyline for a series. Pure. The page's script draws the
same way when it refreshes (gateway/api/static/monitor.js, `points`), so keep the two alike.
"""

from __future__ import annotations

from collections.abc import Sequence

WIDTH, HEIGHT = 240.0, 48.0
SPARK_WIDTH, SPARK_HEIGHT = 120.0, 24.0


def points(values: Sequence[float], width: float = WIDTH, height: float = HEIGHT) -> str:
    """ "x,y x,y …" across the width, 0 at the bottom and the series' maximum at the top (1 px margin)."""
    if not values:
        return ""
    top = max(max(values), 1.0)
    step = width / max(len(values) - 1, 1)
    usable = height - 2
    return " ".join(f"{i * step:.1f},{height - 1 - (v / top) * usable:.1f}" for i, v in enumerate(values))


def peak(values: Sequence[float]) -> float:
    return max(values, default=0.0)

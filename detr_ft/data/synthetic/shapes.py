"""The built-in data's shapes (detr_ft/data/synthetic/): each class's outline, drawn to touch its box on all
four sides so that the box is exact by construction."""

import math
import random

from PIL import ImageDraw


def _unit_outline(kind: str, rng: random.Random) -> list[tuple[float, float]]:
    """Outline points of a polygonal shape, in any unit frame (it is stretched to fill its box after)."""
    if kind == "triangle":
        return [(0.5, 0), (1, 1), (0, 1)]
    if kind == "diamond":
        return [(0.5, 0), (1, 0.5), (0.5, 1), (0, 0.5)]
    if kind == "hexagon":
        return [(math.cos(a), math.sin(a)) for a in (math.pi / 3 * i for i in range(6))]
    if kind == "star":  # five points, the inner corners at 45% of the outer radius
        radii = [1.0 if i % 2 == 0 else 0.45 for i in range(10)]
        angles = [-math.pi / 2 + math.pi / 5 * i for i in range(10)]
        return [(r * math.cos(a), r * math.sin(a)) for r, a in zip(radii, angles, strict=True)]
    if kind == "cross":
        lo, hi = 0.34, 0.66
        return [
            (lo, 0),
            (hi, 0),
            (hi, lo),
            (1, lo),
            (1, hi),
            (hi, hi),
            (hi, 1),
            (lo, 1),
            (lo, hi),
            (0, hi),
            (0, lo),
            (lo, lo),
        ]
    if kind == "arrow":
        points = [(0, 0.35), (0.55, 0.35), (0.55, 0), (1, 0.5), (0.55, 1), (0.55, 0.65), (0, 0.65)]
        return points if rng.random() < 0.5 else [(1 - x, y) for x, y in points]  # pointing right or left
    raise ValueError(f"unknown shape {kind!r}")


def _polygon(kind: str, box: tuple[float, float, float, float], rng: random.Random) -> list[tuple[float, float]]:
    """The outline stretched so that its extremes touch the box (x0, y0, w, h) on all four sides."""
    points = _unit_outline(kind, rng)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, y0, w, h = box
    return [
        (x0 + (x - min(xs)) / (max(xs) - min(xs)) * w, y0 + (y - min(ys)) / (max(ys) - min(ys)) * h) for x, y in points
    ]


def draw_shape(draw: ImageDraw.ImageDraw, kind: str, box: tuple[float, float, float, float], fill, rng) -> None:
    x0, y0, w, h = box
    corners = [x0, y0, x0 + w - 1, y0 + h - 1]  # PIL includes both end pixels
    stroke = max(2, round(min(w, h) * 0.18))
    if kind == "circle":
        draw.ellipse(corners, fill=fill)
    elif kind == "ring":
        draw.ellipse(corners, outline=fill, width=stroke)
    elif kind == "square":
        draw.rectangle(corners, fill=fill)
    elif kind == "frame":
        draw.rectangle(corners, outline=fill, width=stroke)
    else:
        draw.polygon(_polygon(kind, (x0, y0, w - 1, h - 1), rng), fill=fill)

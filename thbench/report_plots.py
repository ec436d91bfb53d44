"""The report page's plots: inline SVG drawn from a :class:`Report`, no plotting library.

Deterministic (fixed jitter, fixed palette order), so the same records give the same page.
"""

from __future__ import annotations

import math
from html import escape

from thbench.report_table import ARROWS, DIRECTION_WORDS, OK, Column, Report, fmt

PALETTE = ("#1f6fb2", "#e07b00", "#138a5e", "#c8413c", "#8e5bb5", "#3fa6c8", "#8c6d31",
           "#5f6b7a")
MARKERS = ("circle", "square", "triangle", "diamond", "down", "cross")


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi - lo < 1e-12:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start, end = math.floor(lo / step) * step, math.ceil(hi / step) * step
    return [start + i * step for i in range(round((end - start) / step) + 1)]


def _tick_text(value: float, ticks: list[float]) -> str:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    digits = max(0, -math.floor(math.log10(step) + 1e-9))
    digits += 0 if abs(step * 10**digits - round(step * 10**digits)) < 1e-6 else 1
    return f"{value:,.{digits}f}"


def _marker(kind: str, x: float, y: float, colour: str, r: float = 5.0) -> str:
    fill = f'fill="{colour}" fill-opacity="0.85" stroke="#fff" stroke-width="1"'
    if kind == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" {fill}/>'
    if kind == "square":
        return f'<rect x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r}" height="{2 * r}" {fill}/>'
    shapes = {"triangle": [(0, -1.2), (1.1, 0.8), (-1.1, 0.8)],
              "down": [(0, 1.2), (1.1, -0.8), (-1.1, -0.8)],
              "diamond": [(0, -1.3), (1.1, 0), (0, 1.3), (-1.1, 0)],
              "cross": [(-.4, -1.1), (.4, -1.1), (.4, -.4), (1.1, -.4), (1.1, .4), (.4, .4),
                        (.4, 1.1), (-.4, 1.1), (-.4, .4), (-1.1, .4), (-1.1, -.4), (-.4, -.4)]}
    points = " ".join(f"{x + dx * r:.1f},{y + dy * r:.1f}" for dx, dy in shapes[kind])
    return f'<polygon points="{points}" {fill}/>'


def _axes(w: int, h: int, m: tuple[int, int, int, int], xt: list[float] | None,
          yt: list[float], xlabel: str, ylabel: str) -> tuple[list[str], callable, callable]:
    """Grid, ticks and labels; the x and y value → pixel maps. ``m`` = top, right, bottom, left."""
    top, right, bottom, left = m
    sx = (lambda v: left + (v - xt[0]) / (xt[-1] - xt[0]) * (w - left - right)) if xt else None
    sy = lambda v: h - bottom - (v - yt[0]) / (yt[-1] - yt[0]) * (h - top - bottom)  # noqa: E731
    parts = []
    for v in yt:
        parts.append(f'<line x1="{left}" x2="{w - right}" y1="{sy(v):.1f}" y2="{sy(v):.1f}" '
                     f'stroke="#e6eaf0"/><text x="{left - 7}" y="{sy(v) + 4:.1f}" font-size="11" '
                     f'text-anchor="end">{_e(_tick_text(v, yt))}</text>')
    for v in xt or []:
        parts.append(f'<line x1="{sx(v):.1f}" x2="{sx(v):.1f}" y1="{top}" y2="{h - bottom}" '
                     f'stroke="#f0f2f6"/><text x="{sx(v):.1f}" y="{h - bottom + 16}" '
                     f'font-size="11" text-anchor="middle">{_e(_tick_text(v, xt))}</text>')
    parts.append(f'<line x1="{left}" x2="{w - right}" y1="{h - bottom}" y2="{h - bottom}" '
                 f'stroke="#8792a2"/><line x1="{left}" x2="{left}" y1="{top}" y2="{h - bottom}" '
                 f'stroke="#8792a2"/>')
    parts.append(f'<text x="{(left + w - right) / 2}" y="{h - 8}" font-size="12" '
                 f'text-anchor="middle">{_e(xlabel)}</text><text transform="translate(14 '
                 f'{(top + h - bottom) / 2}) rotate(-90)" font-size="12" text-anchor="middle">'
                 f"{_e(ylabel)}</text>")
    return parts, sx, sy


def _lines(text: str, width: int) -> list[str]:
    """``text`` broken at spaces into lines of at most ``width`` characters (two at most)."""
    words, lines = text.split(), [""]
    for word in words:
        if lines[-1] and len(lines[-1]) + 1 + len(word) > width and len(lines) < 2:
            lines.append(word)
        else:
            lines[-1] = f"{lines[-1]} {word}".strip()
    return lines


def _svg(w: int, h: int, title: str, parts: list[str], subtitle: str = "") -> str:
    """A plot with its title (wrapped to fit: a clipped title hides what is plotted)."""
    heads = [(line, 13, 600, "#1f2733") for line in _lines(title, int(w / 7.6))]
    if subtitle:
        heads.append((subtitle, 11, 400, "#6b7686"))
    texts = "".join(f'<text x="{w / 2}" y="{16 + 15 * i}" font-size="{size}" '
                    f'font-weight="{weight}" fill="{colour}" text-anchor="middle">{_e(line)}</text>'
                    for i, (line, size, weight, colour) in enumerate(heads))
    shift = 15 * (len(heads) - 1)  # everything below moves down by the extra title lines
    return (f'<div class="plot"><svg xmlns="http://www.w3.org/2000/svg" width="{w}" '
            f'height="{h + shift}" viewBox="0 0 {w} {h + shift}" role="img" '
            f'aria-label="{_e(title)}">{texts}<g transform="translate(0 {shift})">'
            f'{"".join(parts)}</g></svg></div>')


def _style(report: Report, model: str) -> tuple[str, str]:
    i = report.models.index(model)
    return PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)]


def scatter(report: Report) -> str:
    """Inference seconds against speech seconds, one mark per run, with the RTF 1 line."""
    points = [(c.speech_s, c.measures.get("inference_s"), c.model) for c in report.cells
              if c.status == OK and c.speech_s and c.measures.get("inference_s") is not None]
    if not points:
        return '<p class="legend">No run recorded both speech and inference seconds.</p>'
    w, h, m = 640, 380, (34, 170, 44, 62)
    xt = _ticks(0, max(p[0] for p in points) * 1.08)  # room, so no mark sits on an edge
    yt = _ticks(0, max(p[1] for p in points) * 1.08)
    parts, sx, sy = _axes(w, h, m, xt, yt, "speech (s)", "inference (s)")
    top_x = min(xt[-1], yt[-1])  # the real-time line (RTF 1), as far as both axes reach
    parts.append(f'<line x1="{sx(0):.1f}" y1="{sy(0):.1f}" x2="{sx(top_x):.1f}" '
                 f'y2="{sy(top_x):.1f}" stroke="#9aa5b4" stroke-dasharray="5 4"/><text '
                 f'x="{sx(top_x) - 4:.1f}" y="{sy(top_x) + 14:.1f}" font-size="11" '
                 f'text-anchor="end" fill="#6b7686">real time (RTF 1)</text>')
    for x, y, model in points:
        parts.append(_marker(_style(report, model)[1], sx(x), sy(y), _style(report, model)[0]))
    for i, model in enumerate(dict.fromkeys(p[2] for p in points)):
        colour, kind = _style(report, model)
        y = m[0] + 14 + i * 20
        parts.append(_marker(kind, w - m[1] + 20, y - 4, colour) +
                     f'<text x="{w - m[1] + 32}" y="{y}" font-size="12">{_e(model)}</text>')
    return _svg(w, h, "Inference time vs speech length (one mark per run)", parts)


def strip(report: Report, column: Column) -> str:
    """One metric's values per model (a strip of marks, the mean as a bar)."""
    groups = [(model, [c for c in report.cells if c.model == model and c.status == OK])
              for model in report.models]
    values = {model: [c.metrics[column.id]["value"] for c in cells if not c.unscored and
                      (c.metrics.get(column.id) or {}).get("value") is not None]
              for model, cells in groups}
    every = [v for vs in values.values() for v in vs]
    w, h, m = max(340, 96 * len(report.models) + 90), 280, (34, 16, 58, 62)
    title = column.label
    subtitle = f"{ARROWS.get(column.direction, '·')} {DIRECTION_WORDS.get(column.direction, '')}"
    if not every:
        return _svg(w, 80, title, ['<text x="20" y="50" font-size="12" fill="#6b7686">no values '
                                   "(see the table for why)</text>"], subtitle)
    pad = (max(every) - min(every)) * 0.06
    yt = _ticks(min(every) - pad, max(every) + pad)
    parts, _, sy = _axes(w, h, m, None, yt, "", column.unit or column.label)
    band = (w - m[1] - m[3]) / len(report.models)
    for i, model in enumerate(report.models):
        colour, kind = _style(report, model)
        centre = m[3] + band * (i + 0.5)
        label = model if len(model) <= 14 else model[:13] + "…"
        parts.append(f'<text x="{centre:.1f}" y="{h - m[2] + 18}" font-size="12" '
                     f'text-anchor="middle">{_e(label)}</text>')
        if not values[model]:
            parts.append(f'<text x="{centre:.1f}" y="{h - m[2] + 34}" font-size="10" '
                         f'text-anchor="middle" fill="#8a94a3">no value</text>')
            continue
        for j, v in enumerate(values[model]):
            offset = ((j * 7) % 11 - 5) * 3.0  # a fixed spread, so the page is reproducible
            parts.append(_marker(kind, centre + offset, sy(v), colour, 4.5))
        mean = sum(values[model]) / len(values[model])
        parts.append(f'<line x1="{centre - band * 0.32:.1f}" x2="{centre + band * 0.32:.1f}" '
                     f'y1="{sy(mean):.1f}" y2="{sy(mean):.1f}" stroke="#1c2430" '
                     f'stroke-width="2.5"><title>mean {_e(fmt(mean))}</title></line>')
    return _svg(w, h, title, parts, subtitle)

"""Charts as inline SVG, drawn on the server: no chart library, no script.

Each function returns the ``<svg>`` markup of one chart, sized by its ``viewBox`` (it scales
to its container) and coloured by CSS classes (``series-0`` ...; the console's stylesheet),
with a ``<title>`` on every mark so hovering names its value. Missing values (None) leave a
gap. Text in labels is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 28, 28  # the plot's margins (legend, axis labels)


def _fmt(value: float) -> str:
    """A number for an axis or a tooltip: three significant figures."""
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _top(values: Sequence[float | None]) -> float:
    """The value axis' top: the largest value, at least a tiny positive one."""
    found = [v for v in values if v is not None]
    return max(max(found, default=0.0), 1e-9)


def _frame(
    title: str, top: float, unit: str, labels: Sequence[str], empty: bool = False
) -> list[str]:
    """The chart's opening tag, the value axis (0, half, top) and the time labels (first,
    middle, last); ``empty``: a note that there is nothing to draw."""
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for frac in (0.0, 0.5, 1.0):
        y = TOP + plot_h * (1 - frac)
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>'
        )
        label = escape(f"{_fmt(top * frac)} {unit}".strip())
        parts.append(
            f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>'
        )
    if empty:
        parts.append(
            f'<text class="axis" x="{WIDTH / 2}" y="{TOP + plot_h / 2}" text-anchor="middle">'
            "no data in this window</text>"
        )
    n = len(labels)
    for i in sorted({0, n // 2, n - 1}) if n else []:
        x = _x(i, n)
        label = escape(labels[i])
        parts.append(
            f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{label}</text>'
        )
    return parts


def _x(i: int, n: int) -> float:
    """The centre of slot ``i`` of ``n`` across the plot."""
    plot_w = WIDTH - LEFT - RIGHT
    return LEFT + plot_w * (i + 0.5) / max(n, 1)


def _y(value: float, top: float) -> float:
    plot_h = HEIGHT - TOP - BOTTOM
    return TOP + plot_h * (1 - value / top)


def line_chart(
    title: str, labels: Sequence[str], series: dict[str, Sequence[float | None]], unit: str = ""
) -> Markup:
    """One line per series over the time ``labels`` (a point per slot; a None breaks the
    line), with a legend."""
    found = [v for values in series.values() for v in values if v is not None]
    parts = _frame(title, _top(found), unit, labels, empty=not found)
    top = _top(found)
    n = len(labels)
    for k, (name, values) in enumerate(series.items()):
        runs: list[list[tuple[float, float]]] = [[]]
        for i, v in enumerate(values):
            if v is None:
                runs.append([])
                continue
            x, y = _x(i, n), _y(v, top)
            runs[-1].append((x, y))
            tip = escape(f"{name} at {labels[i]}: {_fmt(v)} {unit}".strip())
            parts.append(
                f'<circle class="dot series-{k}" cx="{x:.1f}" cy="{y:.1f}" r="3">'
                f"<title>{tip}</title></circle>"
            )
        for points in runs:
            if len(points) > 1:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
                parts.append(f'<polyline class="line series-{k}" points="{path}"/>')
    parts += _legend(list(series))
    parts.append("</svg>")
    return Markup("".join(parts))  # every text in it went through escape


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    unit: str = "",
) -> Markup:
    """Bars per time slot, the series stacked (one series: plain bars), with a legend when
    there is more than one."""
    n = len(labels)
    totals = [sum(values[i] or 0.0 for values in series.values()) for i in range(n)]
    top = _top(totals)
    parts = _frame(title, top, unit, labels, empty=not any(totals))
    slot = (WIDTH - LEFT - RIGHT) / max(n, 1)
    width = max(slot * 0.7, 1.0)
    for i in range(n):
        base = 0.0
        for k, (name, values) in enumerate(series.items()):
            v = values[i]
            if not v:
                continue
            y0, y1 = _y(base, top), _y(base + v, top)
            base += v
            tip = escape(f"{name} at {labels[i]}: {_fmt(v)} {unit}".strip())
            parts.append(
                f'<rect class="bar series-{k}" x="{_x(i, n) - width / 2:.1f}" y="{y1:.1f}" '
                f'width="{width:.1f}" height="{max(y0 - y1, 0.5):.1f}"><title>{tip}</title></rect>'
            )
    if len(series) > 1:
        parts += _legend(list(series))
    parts.append("</svg>")
    return Markup("".join(parts))  # every text in it went through escape


def hbar_chart(title: str, items: Sequence[tuple[str, float]], unit: str = "") -> Markup:
    """One horizontal bar per ``(label, value)``, largest scale first; empty items: a note."""
    row = 22
    height = TOP + row * max(len(items), 1) + 8
    top = _top([v for _, v in items])
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    if not items:
        parts.append(f'<text class="axis" x="{LEFT}" y="{TOP + 14}">nothing</text>')
    label_w = 180
    plot_w = WIDTH - label_w - RIGHT - 60
    for i, (label, value) in enumerate(items):
        y = TOP + i * row
        w = max(plot_w * value / top, 1.0 if value else 0.0)
        tip = escape(f"{label}: {_fmt(value)} {unit}".strip())
        parts.append(
            f'<text class="axis" x="{label_w - 6}" y="{y + 14}" text-anchor="end">'
            f"{escape(label)}</text>"
            f'<rect class="bar series-3" x="{label_w}" y="{y + 3}" width="{w:.1f}" '
            f'height="{row - 8}"><title>{tip}</title></rect>'
            f'<text class="axis" x="{label_w + w + 6:.1f}" y="{y + 14}">'
            f"{escape(_fmt(value))}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # every text in it went through escape


def meter(fraction: float | None, title: str) -> Markup:
    """A thin horizontal gauge of ``fraction`` (clipped to 0..1; over 1 drawn as ``over``)."""
    f = 0.0 if fraction is None else fraction
    cls = "over" if f > 1 else ("warn" if f >= 0.8 else "fine")
    w = round(min(max(f, 0.0), 1.0) * 200, 1)
    return Markup(  # the title is escaped
        f'<svg class="meter" viewBox="0 0 200 10" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f'<rect class="track" x="0" y="0" width="200" height="10"/>'
        f'<rect class="fill {cls}" x="0" y="0" width="{w}" height="10"/></svg>'
    )


def _legend(names: list[str]) -> list[str]:
    parts = []
    x = LEFT + 8
    for k, name in enumerate(names):
        parts.append(
            f'<rect class="bar series-{k}" x="{x}" y="4" width="10" height="10"/>'
            f'<text class="axis" x="{x + 14}" y="13">{escape(name)}</text>'
        )
        x += 24 + 8 * len(name)
    return parts


__all__ = ["bar_chart", "hbar_chart", "line_chart", "meter"]

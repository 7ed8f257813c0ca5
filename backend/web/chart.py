"""A bar chart drawn on the server as SVG: no script, no inline style (the CSP allows neither).

Colours come from classes in hub.css; every bar has its count written above
it and a ``<title>`` (a tooltip and screen-reader text), so the chart reads
without colour too.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 36, 8, 18, 34


def bar_chart(series: Sequence[tuple[str, int]], *, label: str) -> Markup:
    n = max(len(series), 1)
    peak = max((count for _, count in series), default=0)
    scale_top = max(peak + peak % 2, 2)  # even, so the half-way line has a whole number
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / n
    bar_w = max(slot * 0.7, 2)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
    ]
    for frac in (0.5, 1.0):
        y = TOP + plot_h * (1 - frac)
        parts.append(f'<line class="grid-line" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>')
        parts.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{round(scale_top * frac)}</text>')
    base_y = TOP + plot_h
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{base_y}" x2="{WIDTH - RIGHT}" y2="{base_y}"/>')
    every = max(1, round(n / 10))  # at most ~10 date labels
    for i, (day, count) in enumerate(series):
        x = LEFT + i * slot + (slot - bar_w) / 2
        h = plot_h * count / scale_top if count else 2
        cls = "bar" if count else "bar-zero"
        parts.append(
            f'<rect class="{cls}" x="{x:.1f}" y="{base_y - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}">'
            f"<title>{escape(day)}: {count} change{'s' if count != 1 else ''}</title></rect>"
        )
        if count:
            mid, top = x + bar_w / 2, base_y - h - 4
            parts.append(f'<text class="count" x="{mid:.1f}" y="{top:.1f}" text-anchor="middle">{count}</text>')
        if i % every == 0 or i == n - 1:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{base_y + 16}" text-anchor="middle">{escape(day[5:])}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))

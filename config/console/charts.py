"""Charts drawn by the app itself: SVG markup made on the server (nothing loaded at run time,
readable without JavaScript, each bar a link to the list behind it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

# Distinct for the common reasons, readable on white and on the dark theme.
PALETTE = (
    "#d9480f",
    "#1971c2",
    "#2f9e44",
    "#ae3ec9",
    "#f08c00",
    "#0c8599",
    "#c2255c",
    "#5c940d",
    "#495057",
    "#7048e8",
)


@dataclass(frozen=True)
class Segment:
    series: str  # e.g. a reason's label
    value: int
    link: str = ""


@dataclass(frozen=True)
class Bar:
    day: date
    segments: tuple[Segment, ...]

    @property
    def total(self) -> int:
        return sum(segment.value for segment in self.segments)


def _nice_max(value: int) -> int:
    if value <= 5:
        return 5
    step = 10 ** (len(str(value)) - 1)
    for factor in (1, 2, 5, 10):
        if value <= factor * step:
            return factor * step
    return value


def stacked_bars(bars: list[Bar], *, title: str, width: int = 640, height: int = 180) -> SafeString:
    """A stacked bar per day; a legend names each series with its colour."""
    series = sorted({s.series for bar in bars for s in bar.segments})
    colour = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(series)}
    left, bottom, top = 36, 22, 8
    plot_w, plot_h = width - left - 4, height - bottom - top
    peak = _nice_max(max((bar.total for bar in bars), default=0))
    slot = plot_w / max(len(bars), 1)
    bar_w = max(2.0, slot * 0.72)
    parts = [
        format_html(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999" stroke-width="1"/>',
            left,
            top + plot_h,
            width - 4,
            top + plot_h,
        ),
        format_html(
            '<text x="{}" y="{}" font-size="10" text-anchor="end" fill="currentColor">{}</text>',
            left - 4,
            top + 8,
            f"{peak:,}",
        ),
        format_html(
            '<text x="{}" y="{}" font-size="10" text-anchor="end" fill="currentColor">0</text>',
            left - 4,
            top + plot_h,
        ),
    ]
    for index, bar in enumerate(bars):
        x = left + index * slot + (slot - bar_w) / 2
        y = top + plot_h
        for segment in bar.segments:
            if segment.value <= 0:
                continue
            h = plot_h * segment.value / peak
            y -= h
            rect = format_html(
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}">'
                "<title>{}: {} {}</title></rect>",
                f"{x:.1f}",
                f"{y:.1f}",
                f"{bar_w:.1f}",
                f"{max(h, 0.5):.1f}",
                colour[segment.series],
                bar.day.isoformat(),
                f"{segment.value:,}",
                segment.series,
            )
            if segment.link:
                rect = format_html('<a href="{}">{}</a>', segment.link, rect)
            parts.append(rect)
        last = len(bars) - 1
        if (index % 7 == 0 and last - index >= 4) or index == last:
            parts.append(
                format_html(
                    '<text x="{}" y="{}" font-size="10" text-anchor="middle" '
                    'fill="currentColor">{}</text>',
                    f"{x + bar_w / 2:.1f}",
                    height - 6,
                    f"{bar.day:%b %d}",
                )
            )
    legend = format_html_join(
        "",
        '<li><span class="swatch" style="background:{}"></span>{}</li>',
        ((colour[name], name) for name in series),
    )
    svg = format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}" '
        'preserveAspectRatio="none">{}</svg>',
        width,
        height,
        title,
        mark_safe("".join(parts)),  # noqa: S308 (each part is escaped by format_html)
    )
    return format_html('{}<ul class="chart-legend">{}</ul>', svg, legend)

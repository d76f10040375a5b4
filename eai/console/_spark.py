"""The overview's 24 h sparkline of a flow, as inline SVG (no script, no library, no CDN).

Touches: nothing.

One polyline for the messages per interval (scaled to the flow's busiest interval), a
red bar under each interval with errors (scaled likewise, at least 3 px so that a
single error shows), and a ``<title>`` with the totals for a tooltip and for screen
readers (``aria-label``).
"""

from __future__ import annotations

from markupsafe import Markup

from eai.store import FlowSeries

__all__ = ["sparkline"]

STEP = 2
"""Pixels per interval."""
HEIGHT = 24
EMPTY = (0,) * 96


def sparkline(series: FlowSeries | None) -> Markup:
    """The SVG of ``series`` (a flat line when None: nothing in 24 h)."""
    totals = series.totals if series else EMPTY
    errors = series.errors if series else EMPTY
    width, minutes = STEP * len(totals), 24 * 60 // len(totals)
    top = max(max(totals), 1)
    n, bad = sum(totals), sum(errors)
    points = " ".join(
        f"{i * STEP + 1},{HEIGHT - 1 - round(t * (HEIGHT - 2) / top)}" for i, t in enumerate(totals)
    )
    bars = "".join(
        f'<rect class="err" x="{i * STEP}" y="{HEIGHT - h}" width="{STEP}" height="{h}"/>'
        for i, e in enumerate(errors)
        if e
        for h in (max(3, round(e * (HEIGHT - 2) / top)),)
    )
    label = f"last 24 h: {n} message(s), {bad} error(s); busiest {minutes} min: {max(totals)}"
    return Markup(
        f'<svg class="spark" width="{width}" height="{HEIGHT}" viewBox="0 0 {width} {HEIGHT}" '
        f'role="img" aria-label="{label}" data-total="{n}" data-errors="{bad}">'
        f"<title>{label}</title>{bars}"
        f'<polyline fill="none" stroke="#1d3557" stroke-width="1" points="{points}"/></svg>'
    )

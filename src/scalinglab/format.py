"""Numbers and intervals in words: the one formatting every output shares (terminal, JSON notes, HTML report).

Ground level: imports nothing of the project, so the report and the command line both read it.
"""

from __future__ import annotations

import math


def fmt(value: float | None, digits: int = 6) -> str:
    """A number in short form: `digits` significant digits, scientific notation outside [1e-3, 1e6)."""
    if value is None or not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}" if 1e-3 <= abs(value) < 1e6 or value == 0 else f"{value:.{digits - 2}e}"


def percent(fraction: float) -> str:
    """0.95 as "95%", 0.975 as "97.5%", 0.01 as "1%": interval levels and improvements in words."""
    return f"{fraction * 100:.3g}%"


def interval_text(lower: float | None, upper: float | None) -> str:
    """An interval, with a side the data leave open said in words instead of digits."""
    if lower is None and upper is None:
        return "not identified"
    if lower is None:
        return f"< {fmt(upper)} (not identified below)"
    if upper is None:
        return f"> {fmt(lower)} (not identified above)"
    return f"{fmt(lower)} .. {fmt(upper)}"


def short(value: float) -> str:
    """A number for a narrow table column: 4 significant digits, exponents as 2.04e7 (not 2.040e+07)."""
    if not math.isfinite(value):
        return str(value)
    text = f"{value:.4g}"
    if "e" in text:
        text = f"{value:.3g}"
    return text.replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def number(value: float) -> str:
    """A number for a sentence: 3 significant digits, exponents written 3.2e7 rather than 3.2e+07."""
    text = f"{value:.3g}"
    return text.replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")

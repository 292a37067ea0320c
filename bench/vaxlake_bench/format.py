"""How figures are written, in the log and in the report."""

from __future__ import annotations


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def ratio(a, b) -> str:
    return f"{a / b:.2f}×" if a is not None and b else "—"


def ms(seconds) -> str:
    if seconds is None:
        return "—"
    if seconds < 1e-6:  # vaxlake prints its runs to the microsecond
        return "< 1 µs"
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f} µs"
    return f"{seconds * 1e3:.1f} ms" if seconds < 0.1 else f"{seconds:.3f} s"


def fmt_ve(x) -> str:
    return "—" if x is None else f"{x:.3f}"

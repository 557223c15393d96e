"""How reports write amounts of money, volumes and shares (one place, so every figure and the
assumption printed next to it agree)."""

from __future__ import annotations

__all__ = ["count", "pct", "usd"]


def usd(value: float) -> str:
    """``$1,358.53``, ``$12.35``, ``$0.0001950``: cents for large amounts, four significant
    digits for the small ones a single request costs."""
    if value == 0:
        return "$0"
    if value < 0:
        return "-" + usd(-value)
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return f"${value:.4g}" if abs(value) >= 1e-4 else f"${value:.3e}"


def count(value: float) -> str:
    """``950``, ``12.3k``, ``6.97M``, ``4.88B``."""
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}" if value != int(value) else str(int(value))


def pct(share: float) -> str:
    """``13.3%``, ``0.05%``."""
    return f"{share * 100:.3g}%"

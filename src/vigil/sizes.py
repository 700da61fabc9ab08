"""Byte sizes as people read them, for tables and messages alike."""

from __future__ import annotations


def human_size(n: int | None) -> str:
    """1536 -> '1.5 KiB'; an unknown size (None) -> '-'."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"

"""Formatting shared by the bench reports (report.py, scale_report.py)."""

from __future__ import annotations


def mb(kb: int) -> float:
    """kB as /proc reports them (KiB) to MB (10^6 bytes)."""
    return kb * 1024 / 1e6


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else "PASS" if ok else "MISS"


def text_table(header: list[str], body: list[list[str]], left: tuple[int, ...] = (1,)) -> str:
    """A table for the terminal: columns as wide as their widest cell, the `left` ones
    left-aligned and the others right-aligned, a dashed rule under the header."""
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(header)] if body else [len(c) for c in header]
    line = lambda cells: "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(b) for b in body)])


def md_table(header: list[str], body: list[list[str]], align: str | None = None) -> str:
    """A markdown table; `align` has one letter per column, l or r (default: l then r)."""
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---" if a == "l" else "---:" for a in align]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in [header, sep, *body])

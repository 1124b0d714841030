"""How a benchmark prints its figures: the spread of its rounds, then one ``name = value`` line per headline."""

from __future__ import annotations

from collections.abc import Sequence


def print_range(label: str, values: Sequence[float], unit: str) -> None:
    """The lowest and highest round: how noisy the machine was."""
    print(f"{label} range: {min(values):,.0f} .. {max(values):,.0f} {unit}")


def print_headlines(**figures: str) -> None:
    """One line per headline figure, ``name = value``, last (what the issue notes record)."""
    for name, value in figures.items():
        print(f"{name} = {value}")

"""What is wrong with a file a person wrote: where (file, line), which field, and what to do."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file: where, which field, what is expected."""

    path: Path
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.field}: {self.message}"


class ProblemsError(Exception):
    """A file that cannot be used; ``problems`` says where and why, one line each."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def dotted(data_path: Iterable[Any], whole: str = "(top level)") -> str:
    """``stores[0].connector.url`` from a data path (a jsonschema path); ``whole`` names the empty path."""
    out = ""
    for key in data_path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out or whole

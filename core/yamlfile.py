"""YAML files whose errors can name the line: data plus a path-to-line locator."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

Locator = Callable[[Iterable[Any]], int | None]


class YamlSyntaxError(ValueError):
    def __init__(self, path: Path, line: int | None, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.message = message


def load_yaml(path: Path, text: str | None = None) -> tuple[Any, Locator]:
    """Parse ``path`` and return its data and a function from a data path to a 1-based line."""
    if text is None:
        text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise YamlSyntaxError(path, line, f"not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(path, None, f"not valid YAML: {exc}") from None

    def locate(data_path: Iterable[Any]) -> int | None:
        current = node
        line = current.start_mark.line + 1 if current is not None else None
        for key in data_path:
            if isinstance(current, yaml.MappingNode):
                for k, v in current.value:
                    if k.value == str(key):
                        current = v
                        line = k.start_mark.line + 1
                        break
                else:
                    return line
            elif isinstance(current, yaml.SequenceNode) and isinstance(key, int):
                if key >= len(current.value):
                    return line
                current = current.value[key]
                line = current.start_mark.line + 1
            else:
                return line
        return line

    return data, locate


def dotted(data_path: Iterable[Any]) -> str:
    """``stores[0].connector.url`` from a jsonschema path."""
    out = ""
    for key in data_path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out or "(top level)"

"""YAML files whose errors can name the line: data plus a path-to-line locator.

Read defensively, as a hostile file would be written: at most :data:`MAX_BYTES`,
UTF-8 only, parsed once, nested at most :data:`MAX_DEPTH` levels; aliases may
add at most :data:`MAX_ALIAS_VALUES` values (an alias bomb is refused before it
expands); a repeated key, a non-finite number (``.inf``, ``.nan``) or a
recursive alias is an error with its line. Dates stay text, written plain, quoted or
tagged ``!!timestamp``: the schemas check them (``format: date``), so a date is
accepted however it is written and a bad one is named as written, never as a
Python value. Values JSON has no type for (``!!binary``, ``!!set``, ``!!omap``,
``!!pairs``) are refused with their line: no schema could word them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from .problems import dotted
from .textfile import TextFileError, read_text

Locator = Callable[[Iterable[Any]], int | None]

#: The largest YAML file read (a setup file is a few KiB; the built-in matrix about 20).
MAX_BYTES = 256 * 1024
#: Values that aliases may add beyond those written out.
MAX_ALIAS_VALUES = 10_000
#: Deepest nesting of mappings and lists.
MAX_DEPTH = 50

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_FLOAT = "tag:yaml.org,2002:float"
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
#: Tags whose values JSON (and so the schemas) has no type for.
_NOT_JSON = {f"tag:yaml.org,2002:{name}" for name in ("binary", "set", "omap", "pairs")}
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when built


class YamlFileError(ValueError):
    """A YAML file that cannot be used: where (line, field) and what to do."""

    def __init__(self, path: Path, line: int | None, field: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.field = field
        self.message = message


class _Unreadable(Exception):
    """A scalar the constructor could not turn into a value (an int of 5,000 digits, a bad !!timestamp)."""

    def __init__(self, node: yaml.Node, reason: str) -> None:
        super().__init__(reason)
        self.node = node
        self.reason = reason


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """The safe loader, without dates (they stay text) and naming the node a value fails on."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
        for first, resolvers in _Base.yaml_implicit_resolvers.items()
    }

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            raise _Unreadable(node, str(exc)) from None


# An explicit ``!!timestamp`` stays text too, as written.
_Loader.add_constructor(_TIMESTAMP, lambda loader, node: loader.construct_scalar(node))


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _check(path: Path, loader: _Loader, root: yaml.Node) -> dict[int, list[Any]]:
    """Walk the node graph once, before anything is built from it; return each node's data path.

    Iterative, so a deep file cannot exhaust the stack; an alias is counted by
    the size of what it points at, so a bomb is found without expanding it.
    """
    paths: dict[int, list[Any]] = {}
    sizes: dict[int, int] = {}  # finished nodes: their size with every alias expanded
    added = 0  # values aliases add

    def fail(node: yaml.Node, data_path: list[Any], message: str) -> YamlFileError:
        return YamlFileError(path, _line(node), dotted(data_path), message)

    def not_json(node: yaml.Node, data_path: list[Any]) -> YamlFileError:
        return fail(node, data_path, f"a !!{node.tag.rpartition(':')[2]} value cannot be used here: "
                                     "write text, a number, true/false, a list or a mapping")

    def scalar(node: yaml.Node, data_path: list[Any]) -> None:
        if node.tag in _NOT_JSON:
            raise not_json(node, data_path)
        paths[id(node)] = data_path
        sizes[id(node)] = 1
        if node.tag == _FLOAT and not math.isfinite(loader.construct_object(node)):
            raise fail(node, data_path, f"{node.value} is not a finite number: write a number")

    # Frames: (node, its data path, depth, node it is in, done?). A list or a
    # mapping is entered, its children pushed, then left again to sum their
    # sizes; a scalar met for the first time is checked at once (most nodes are).
    frames: list[tuple[yaml.Node, list[Any], int, yaml.Node, bool]] = [(root, [], 0, root, False)]
    while frames:
        node, data_path, depth, parent, done = frames.pop()
        key = id(node)
        if done:
            children = [v for kv in node.value for v in kv] if isinstance(node, yaml.MappingNode) else node.value
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            continue
        if key in sizes:  # an alias to a value already read
            added += sizes[key]
            if added > MAX_ALIAS_VALUES:
                raise fail(parent, data_path, f"aliases here expand the file past {MAX_ALIAS_VALUES:,} values "
                                              "(an alias bomb?): write the values out or use fewer aliases")
            continue
        if key in paths:
            raise fail(parent, data_path, "an alias refers to a value that contains it: write the values out")
        if node.tag in _NOT_JSON:
            raise not_json(node, data_path)
        if isinstance(node, yaml.ScalarNode):
            scalar(node, data_path)
            continue
        paths[key] = data_path
        if depth >= MAX_DEPTH:
            raise fail(node, data_path, f"nested deeper than {MAX_DEPTH} levels: flatten it")
        frames.append((node, data_path, depth, parent, True))
        children_at: list[tuple[yaml.Node, list[Any]]] = []
        if isinstance(node, yaml.SequenceNode):
            children_at = [(child, [*data_path, i]) for i, child in enumerate(node.value)]
        else:
            seen: dict[Any, int] = {}
            for k, v in node.value:
                sizes[id(k)] = 1
                if k.tag == _MERGE:  # ``<<: *defaults``: the merged keys belong to this mapping
                    children_at.append((v, data_path))
                    continue
                if not isinstance(k, yaml.ScalarNode):
                    raise fail(k, data_path, "a key must be a plain value, not a list or a mapping")
                name = k.value if k.tag == _STR else loader.construct_object(k)
                where = [*data_path, name]
                if name in seen:
                    raise fail(k, where, f"key {name!r} on line {_line(k)} repeats line {seen[name]}: keep one "
                                         "(a repeated key silently replaces the first)")
                seen[name] = _line(k)
                children_at.append((v, where))
        for child, at in reversed(children_at):
            if isinstance(child, yaml.ScalarNode) and id(child) not in sizes:
                scalar(child, at)
            else:
                frames.append((child, at, depth + 1, node, False))
    return paths


def load_yaml(path: Path, *, kind: str = "file", max_bytes: int = MAX_BYTES) -> tuple[Any, Locator]:
    """Read and parse ``path`` once: its data and a function from a data path to a 1-based line.

    An ``OSError`` (missing, unreadable) is the caller's to word; everything else
    wrong with the file raises :class:`YamlFileError`.
    """
    try:
        text = read_text(path, max_bytes=max_bytes, kind=kind)
    except TextFileError as exc:
        raise YamlFileError(path, exc.line, "(file)", exc.message) from None
    loader = _Loader(text)
    paths: dict[int, list[Any]] = {}
    try:
        node = loader.get_single_node()
        if node is not None:
            paths = _check(path, loader, node)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        said = ", ".join(str(part) for part in (exc.context, exc.problem) if part) or str(exc)
        raise YamlFileError(path, line, "(syntax)", f"not valid YAML: {said}") from None
    except yaml.YAMLError as exc:
        raise YamlFileError(path, None, "(syntax)", f"not valid YAML: {exc}") from None
    except _Unreadable as exc:
        raise YamlFileError(path, _line(exc.node), dotted(paths.get(id(exc.node), [])),
                            f"{exc.node.value[:40]!r} cannot be read as {exc.node.tag.rpartition(':')[2]}: "
                            f"{exc.reason}") from None
    finally:
        loader.dispose()

    def locate(data_path: Iterable[Any]) -> int | None:
        current = node
        line = current.start_mark.line + 1 if current is not None else None
        for key in data_path:
            if isinstance(current, yaml.MappingNode):
                # The last pair with the key is the one in force (after a ``<<`` merge, a local override).
                for k, v in reversed(current.value):
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

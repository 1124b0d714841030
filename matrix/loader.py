"""Loading the shopping-cart matrix: the built-in rows, plugin rows and an operator's extra file.

Every problem names the file, the line and the field, and says what is expected.
A row that collides with a row already loaded (same key, or a name or alias that
another row answers to) is reported and left out: nothing silently replaces a
built-in row.

The matrix is a library: the rows plugins register and the connectors
installed are given to :func:`load_matrix` (``cartstatus.routing.cart_matrix``
gives the installed ones).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from cartstatus.connector import RateLimit
from cartstatus.problems import Problem, ProblemsError, dotted
from cartstatus.schema_errors import Wording, explain_all
from cartstatus.yamlfile import Locator, YamlFileError, load_yaml

MATRIX_ENV = "CARTSTATUS_MATRIX"
UPDATE_KINDS = ("native_api", "installed_script", "batch_file", "none")
#: Ways a cart takes updates itself (the rest need the OSS).
TAKES_UPDATES = ("native_api", "installed_script")
#: The connector that sends to the OSS: where a store goes when its cart takes no updates.
OSS_CONNECTOR = "oss"
#: A matrix file's errors point at the row or object that holds them (support staff read whole rows).
WORDING = Wording(unknown_at_key=False, missing_at_key=False)
UPDATE_WORDS = {
    "native_api": "through its own API",
    "installed_script": "through the Stone Edge script installed on the cart's server",
    "batch_file": "only as a batch file it imports",
    "none": "not at all",
}


@dataclass(frozen=True)
class PublishedLimit:
    """A cart's request limit as its documentation states it: in words, with the numbers when it gives them.

    The numbers are the connector contract's :class:`~cartstatus.connector.RateLimit`
    (what a connector paces by); the words stay here, because a cart may state a
    limit only in words ("none in WooCommerce core; the host may limit").
    """

    summary: str
    limit: RateLimit | None = None

    def as_dict(self) -> dict[str, Any]:
        numbers = {} if self.limit is None else {"requests": self.limit.requests,
                                                  "per_seconds": self.limit.per_seconds}
        return {"summary": self.summary, **numbers}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> PublishedLimit:
        requests, per_seconds = raw.get("requests"), raw.get("per_seconds")
        numbers = None if requests is None or per_seconds is None else RateLimit(requests, per_seconds, raw["summary"])
        return cls(raw["summary"], numbers)


@dataclass(frozen=True)
class CartRow:
    """One cart of the matrix."""

    key: str
    name: str
    updates: str
    connector: str | None
    tracking_numbers: bool
    inventory: bool
    caveats: tuple[str, ...]
    sources: tuple[str, ...]
    verified: dt.date | None
    aliases: tuple[str, ...] = ()
    api: str | None = None
    status_vocabulary: tuple[str, ...] | None = None
    rate_limit: PublishedLimit | None = None
    origin: str = "built-in"  # built-in, plugin NAME, or a file path

    @property
    def takes_updates(self) -> bool:
        """The cart itself takes status updates (its API or an installed script)."""
        return self.updates in TAKES_UPDATES

    @property
    def how(self) -> str:
        return UPDATE_WORDS[self.updates]

    def names(self) -> tuple[str, ...]:
        """Every name this row answers to: key, display name, aliases."""
        return (self.key, self.name, *self.aliases)

    def connector_installed(self, installed: Collection[str]) -> bool:
        """The row names a connector, and it is one of ``installed``."""
        return self.connector is not None and self.connector in installed

    def why_not_native(self, installed: Collection[str]) -> str | None:
        """Why this cart cannot be sent to directly with the ``installed`` connectors, or None when it can."""
        if not self.takes_updates:
            if self.updates == "batch_file":
                return f"{self.name} takes status updates only as a batch file it imports"
            return f"{self.name} cannot take status updates"
        if self.connector is None:
            return f"{self.name} takes status updates {self.how}, but no cartstatus connector for it is installed"
        if self.connector not in installed:
            return (f"{self.name} takes status updates {self.how}, but its connector {self.connector!r} "
                    "is not installed")
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "aliases": list(self.aliases),
            "updates": self.updates,
            "api": self.api,
            "connector": self.connector,
            "capabilities": {"tracking_numbers": self.tracking_numbers, "inventory": self.inventory},
            "status_vocabulary": list(self.status_vocabulary) if self.status_vocabulary is not None else None,
            "caveats": list(self.caveats),
            "rate_limit": None if self.rate_limit is None else self.rate_limit.as_dict(),
            "sources": list(self.sources),
            "verified": self.verified.isoformat() if self.verified else None,
            "origin": self.origin,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], origin: str) -> CartRow:
        """A row from data already checked against the schema."""
        caps = raw["capabilities"]
        rate = raw.get("rate_limit")
        verified = raw.get("verified")
        vocab = raw.get("status_vocabulary")
        return cls(
            key=raw["key"],
            name=raw["name"],
            aliases=tuple(raw.get("aliases") or ()),
            updates=raw["updates"],
            api=raw.get("api"),
            connector=raw.get("connector"),
            tracking_numbers=bool(caps["tracking_numbers"]),
            inventory=bool(caps["inventory"]),
            status_vocabulary=tuple(vocab) if vocab is not None else None,
            caveats=tuple(raw.get("caveats") or ()),
            rate_limit=None if rate is None else PublishedLimit.from_dict(rate),
            sources=tuple(raw["sources"]),
            verified=dt.date.fromisoformat(verified) if verified else None,
            origin=origin,
        )


class MatrixError(ProblemsError):
    """A matrix file cannot be used; ``problems`` says where and why."""


def normalize(name: str) -> str:
    """A name as matching sees it: lower case, letters and digits only."""
    return re.sub(r"[^0-9a-z]", "", name.casefold())


@dataclass
class Matrix:
    """The rows in force, with problems found while merging (collisions), and the connectors installed."""

    rows: dict[str, CartRow] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    installed: frozenset[str] = frozenset()
    _names: dict[str, str] = field(default_factory=dict)

    def __iter__(self) -> Iterator[CartRow]:
        return iter(self.rows.values())

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, key: object) -> bool:
        return key in self.rows

    def get(self, key: str) -> CartRow | None:
        return self.rows.get(key)

    def by_name(self, name: str) -> CartRow | None:
        """The row whose key, display name or alias is ``name`` (case, spaces, punctuation ignored)."""
        key = self._names.get(normalize(name))
        return self.rows[key] if key is not None else None

    def names(self) -> dict[str, str]:
        """Normalized name -> row key, for matching."""
        return dict(self._names)

    def add(self, row: CartRow, where: Path, line: int | None, field_name: str) -> bool:
        """Add ``row`` unless it collides with one already in; a collision is a problem."""
        if row.key in self.rows:
            other = self.rows[row.key]
            self.problems.append(Problem(where, line, field_name,
                                        f"cart key {row.key!r} is already defined by {other.origin}; "
                                        f"this row ({row.origin}) is ignored: rename its key"))
            return False
        clashes = sorted({self._names[n] for n in map(normalize, row.names()) if n and n in self._names})
        if clashes:
            self.problems.append(Problem(where, line, field_name,
                                        f"row {row.key!r} ({row.origin}) uses a name or alias that cart "
                                        f"{', '.join(repr(c) for c in clashes)} already answers to; "
                                        f"the row is ignored: change the alias"))
            return False
        self.rows[row.key] = row
        for n in map(normalize, row.names()):
            if n:
                self._names.setdefault(n, row.key)
        return True


@cache
def matrix_schema() -> dict[str, Any]:
    text = resources.files("cartstatus.matrix").joinpath("schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def builtin_path() -> Path:
    return Path(str(resources.files("cartstatus.matrix").joinpath("carts.yaml")))


def _dates_to_text(data: Any) -> Any:
    """A plugin's row may hold dates as ``datetime.date``; the schema checks text, so turn them into text."""
    if isinstance(data, dict):
        return {k: _dates_to_text(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_dates_to_text(v) for v in data]
    if isinstance(data, dt.date):
        return data.isoformat()
    return data


def read_matrix_file(path: Path, origin: str | None = None) -> tuple[list[tuple[CartRow, int | None]], Locator]:
    """Parse and check one matrix file: its rows with their lines, or :class:`MatrixError`."""
    origin = origin or str(path)
    try:
        data, locate = load_yaml(path, kind="matrix file")
    except FileNotFoundError:
        raise MatrixError([Problem(path, None, "(file)", "no such matrix file; check the path")]) from None
    except OSError as exc:
        raise MatrixError([Problem(path, None, "(file)", f"cannot read: {exc.strerror}")]) from None
    except YamlFileError as exc:
        raise MatrixError([Problem(path, exc.line, exc.field, exc.message)]) from None
    if data is None:
        raise MatrixError([Problem(path, 1, "(file)", "the file is empty; expected a mapping with a carts: list")])
    validator = jsonschema.Draft202012Validator(matrix_schema(),
                                                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    problems = [Problem(path, locate(data_path), dotted(data_path), message)
                for data_path, message in explain_all(validator.iter_errors(data), WORDING)]
    if problems:
        raise MatrixError(sorted(problems, key=lambda q: (q.line or 0, q.field)))
    rows = [(CartRow.from_dict(raw, origin), locate(["carts", i])) for i, raw in enumerate(data["carts"])]
    seen: dict[str, int | None] = {}
    for i, (row, line) in enumerate(rows):
        if row.key in seen:
            where = f"line {seen[row.key]}" if seen[row.key] else "an earlier row"
            problems.append(Problem(path, locate(["carts", i, "key"]), dotted(["carts", i, "key"]),
                                    f"cart key {row.key!r} is already used on {where}; keys must be unique"))
        seen.setdefault(row.key, line)
    if problems:
        raise MatrixError(problems)
    return rows, locate


@cache
def _builtin_rows() -> tuple[tuple[CartRow, int | None], ...]:
    rows, _ = read_matrix_file(builtin_path(), origin="built-in")
    return tuple(rows)


def plugin_source(plugin: str) -> Path:
    """Where a plugin's rows come from, as their problems name it."""
    return Path(f"<plugin {plugin}>")


def _add_plugin_rows(matrix: Matrix, plugin_rows: Iterable[tuple[str, Any]]) -> None:
    """Rows plugins registered, as (plugin, row); a bad or colliding row is a problem, not a crash."""
    validator = jsonschema.Draft202012Validator(matrix_schema()["$defs"]["row"],
                                                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    for plugin, raw in plugin_rows:
        where = plugin_source(plugin)
        if not isinstance(raw, dict):
            matrix.problems.append(Problem(where, None, "(row)", f"expected a mapping, got {type(raw).__name__}"))
            continue
        raw = _dates_to_text(raw)
        explained = explain_all(validator.iter_errors(raw), WORDING)
        for data_path, message in explained:
            matrix.problems.append(Problem(where, None, dotted(data_path), message))
        if not explained:
            matrix.add(CartRow.from_dict(raw, f"plugin {plugin}"), where, None, f"key ({raw['key']})")


@cache
def _extra_rows(path: Path, _stamp: tuple[int, int]) -> tuple[tuple[CartRow, int | None], ...]:
    rows, _ = read_matrix_file(path)
    return tuple(rows)


def load_matrix(extra: str | os.PathLike[str] | None = None, plugin_rows: Iterable[tuple[str, Any]] = (),
                installed: Iterable[str] = ()) -> Matrix:
    """The matrix: built-in rows, then ``plugin_rows`` ((plugin, row) pairs), then the operator's ``extra`` file.

    ``installed`` names the connectors installed. Raises :class:`MatrixError` when
    the extra file cannot be used. Collisions and bad plugin rows are kept in
    ``Matrix.problems``.
    """
    matrix = Matrix(installed=frozenset(installed))
    for i, (row, line) in enumerate(_builtin_rows()):
        matrix.add(row, builtin_path(), line, f"carts[{i}].key")
    _add_plugin_rows(matrix, plugin_rows)
    if extra is not None:
        p = Path(extra)
        try:
            st = p.stat()
        except OSError:
            raise MatrixError([Problem(p, None, "(file)", "no such matrix file; check the path "
                                                         "(setup file matrix.extra, --matrix or CARTSTATUS_MATRIX)")]) \
                from None
        for i, (row, line) in enumerate(_extra_rows(p.resolve(), (st.st_mtime_ns, st.st_size))):
            matrix.add(row, p, line, f"carts[{i}].key")
    return matrix
